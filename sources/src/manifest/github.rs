//! `GitHubSource` (`sources.knative.dev/v1alpha1`).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{
    CloudEventOverrides, Destination, ManifestError, Overrides, SecretKeySelector, SecretRef,
    SourceMeta, annotation_bool, parse_iso8601,
};
use crate::github::{EventTypes, GitHubConfig, Mapping, WebhookSecret};

/// `knative` (default) or `cloudevents-adapter`: which attribute mapping the source uses.
pub const GITHUB_MAPPING_ANNOTATION: &str = "herald.dev/github.mapping";
/// `"true"` also accepts deliveries signed only with SHA-1 (`X-Hub-Signature`).
pub const GITHUB_ALLOW_SHA1_ANNOTATION: &str = "herald.dev/github.allowSha1";
/// ISO-8601 duration (default `PT72H`): how long a delivery id is remembered.
pub const GITHUB_REDELIVERY_WINDOW_ANNOTATION: &str = "herald.dev/github.redeliveryWindow";
/// `{secretName}/{key}`: the webhook secret being rotated out; deliveries signed with it are
/// accepted too while the annotation is there.
pub const GITHUB_PREVIOUS_SECRET_ANNOTATION: &str = "herald.dev/github.previousSecret";

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
        const SECRET_FIELD: &str = "spec.secretToken.secretKeyRef";
        let secret = SecretRef::from_selector(SECRET_FIELD, &self.secret_token.secret_key_ref)?
            .read(SECRET_FIELD, secrets_dir)?;
        if let Some(access) = &self.access_token {
            // Never read, but a reference out of the secrets directory is refused all the same.
            SecretRef::from_selector("spec.accessToken.secretKeyRef", &access.secret_key_ref)?;
        }
        let previous_field = format!("metadata.annotations.{GITHUB_PREVIOUS_SECRET_ANNOTATION}");
        let previous_secret =
            match meta.annotations.get(GITHUB_PREVIOUS_SECRET_ANNOTATION) {
                None => None,
                Some(text) => {
                    let bytes = SecretRef::parse(&previous_field, text)?
                        .read(&previous_field, secrets_dir)?;
                    Some(WebhookSecret::new(bytes).ok_or_else(|| {
                        ManifestError::new(&previous_field, "the secret is empty")
                    })?)
                }
            };
        Ok(GitHubConfig {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            source: format!("https://github.com/{repo}"),
            secret: WebhookSecret::new(secret)
                .ok_or_else(|| ManifestError::new(SECRET_FIELD, "the secret is empty"))?,
            previous_secret,
            allow_sha1: annotation_bool(meta, GITHUB_ALLOW_SHA1_ANNOTATION)?,
            event_types,
            mapping,
            redelivery_window,
            overrides: Overrides::compile(self.ce_overrides.as_ref())?,
            max_attribute_bytes: crate::attribute::DEFAULT_MAX_VALUE_BYTES,
        })
    }
}
