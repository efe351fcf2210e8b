//! `GitHubSource` (`sources.knative.dev/v1alpha1`).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{
    CloudEventOverrides, Destination, ManifestError, Overrides, SecretKeySelector, SourceMeta,
    annotation_bool, parse_iso8601,
};
use crate::github::{EventTypes, GitHubConfig, Mapping, WebhookSecret};

/// `knative` (default) or `cloudevents-adapter`: which attribute mapping the source uses.
pub const GITHUB_MAPPING_ANNOTATION: &str = "herald.dev/github.mapping";
/// `"true"` also accepts deliveries signed only with SHA-1 (`X-Hub-Signature`).
pub const GITHUB_ALLOW_SHA1_ANNOTATION: &str = "herald.dev/github.allowSha1";
/// ISO-8601 duration (default `PT72H`): how long a delivery id is remembered.
pub const GITHUB_REDELIVERY_WINDOW_ANNOTATION: &str = "herald.dev/github.redeliveryWindow";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitHubSourceSpec {
    /// `owner/repo`, or `org` for an organisation-wide hook.
    pub owner_and_repository: String,
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Knative uses it to register the hook through GitHub's API; Herald does not (the hook is
    /// registered by hand), so it is accepted and never read.
    #[serde(default)]
    pub access_token: Option<SecretValueFromSource>,
    pub secret_token: SecretValueFromSource,
    /// GitHub Enterprise API URL, for hook registration: accepted, unused.
    #[serde(default, rename = "githubAPIURL")]
    pub github_api_url: Option<String>,
    /// Accepted so Knative manifests load; Herald runs no per-source pods.
    #[serde(default)]
    pub service_account_name: Option<String>,
    pub sink: Destination,
    #[serde(default)]
    pub ce_overrides: Option<CloudEventOverrides>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretValueFromSource {
    pub secret_key_ref: SecretKeySelector,
}

impl GitHubSourceSpec {
    /// Reads the webhook secret from `{secrets_dir}/{name}/{key}`, the way Kubernetes mounts it.
    ///
    /// Blocking (one small file read): call it where configuration is loaded, before serving,
    /// or on the blocking pool; never from a task on an async worker.
    #[allow(
        clippy::disallowed_methods,
        reason = "configuration loading: runs before serving, on the loading thread, not in a task"
    )]
    pub fn compile(
        &self,
        meta: &SourceMeta,
        secrets_dir: &Path,
    ) -> Result<GitHubConfig, ManifestError> {
        self.sink.check("spec.sink")?;
        let repo = self.owner_and_repository.trim();
        let parts: Vec<&str> = repo.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if parts.len() > 2 || !parts.iter().all(valid_part) {
            return Err(ManifestError::new(
                "spec.ownerAndRepository",
                format!("expected `owner/repository` or `organization`, got {repo:?}"),
            ));
        }
        let event_types = EventTypes::new(&self.event_types)
            .map_err(|(i, why)| ManifestError::new(format!("spec.eventTypes[{i}]"), why))?;
        let mapping = match meta
            .annotations
            .get(GITHUB_MAPPING_ANNOTATION)
            .map(String::as_str)
        {
            None | Some("knative") => Mapping::Knative,
            Some("cloudevents-adapter") => Mapping::CloudEventsAdapter,
            Some(other) => {
                return Err(ManifestError::new(
                    format!("metadata.annotations.{GITHUB_MAPPING_ANNOTATION}"),
                    format!("expected \"knative\" or \"cloudevents-adapter\", got {other:?}"),
                ));
            }
        };
        let redelivery_window = match meta.annotations.get(GITHUB_REDELIVERY_WINDOW_ANNOTATION) {
            None => crate::github::DEFAULT_REDELIVERY_WINDOW,
            Some(text) => parse_iso8601(text)
                .ok()
                .filter(|d| *d > Duration::ZERO)
                .ok_or_else(|| {
                    ManifestError::new(
                        format!("metadata.annotations.{GITHUB_REDELIVERY_WINDOW_ANNOTATION}"),
                        format!("expected a positive ISO-8601 duration like PT72H, got {text:?}"),
                    )
                })?,
        };
        let selector = &self.secret_token.secret_key_ref;
        let path = secrets_dir.join(&selector.name).join(&selector.key);
        let secret = std::fs::read(&path).map_err(|e| {
            ManifestError::new(
                "spec.secretToken.secretKeyRef",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Ok(GitHubConfig {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            source: format!("https://github.com/{repo}"),
            secret: WebhookSecret::new(secret).ok_or_else(|| {
                ManifestError::new("spec.secretToken.secretKeyRef", "the secret is empty")
            })?,
            allow_sha1: annotation_bool(meta, GITHUB_ALLOW_SHA1_ANNOTATION)?,
            event_types,
            mapping,
            redelivery_window,
            overrides: Overrides::compile(self.ce_overrides.as_ref())?,
            max_attribute_bytes: crate::attribute::DEFAULT_MAX_VALUE_BYTES,
        })
    }
}
