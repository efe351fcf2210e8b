//! The Knative source resources as written in YAML, and their `compile` steps.
//!
//! The spec types mirror the Kubernetes API field by field with `deny_unknown_fields`, like the
//! broker's `config::resources`; the broker reads `apiVersion`/`kind`/`metadata` itself and
//! hands each `spec` plus a [`SourceMeta`] to `compile`, which returns the typed config a
//! source runs with, or a [`ManifestError`] naming the field.
//!
//! | kind | apiVersion | spec | compiles to |
//! | --- | --- | --- | --- |
//! | `PingSource` | `sources.knative.dev/v1` | [`PingSourceSpec`] | [`crate::ping::PingConfig`] |
//! | `ApiServerSource` | `sources.knative.dev/v1` | [`ApiServerSourceSpec`] | [`crate::kubernetes::ApiServerConfig`] |
//! | `GitHubSource` | `sources.knative.dev/v1alpha1` | [`GitHubSourceSpec`] | [`crate::github::GitHubConfig`] |
//! | `CloudPubSubSource` | `events.cloud.google.com/v1` | [`CloudPubSubSourceSpec`] | [`crate::pubsub::PubsubSourceConfig`] |

mod apiserver;
mod duration;
mod github;
mod ping;
mod pubsub;
mod secret;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use apiserver::{
    ApiServerSourceSpec, ApiVersionKind, ApiVersionKindSelector, FilterSpec, LabelSelector,
    LabelSelectorRequirement,
};
pub use duration::{parse_go_duration, parse_iso8601};
pub use github::{
    GITHUB_ALLOW_SHA1_ANNOTATION, GITHUB_MAPPING_ANNOTATION, GITHUB_PREVIOUS_SECRET_ANNOTATION,
    GITHUB_REDELIVERY_WINDOW_ANNOTATION, GitHubSourceSpec, SecretValueFromSource,
};
pub use ping::PingSourceSpec;
pub use pubsub::CloudPubSubSourceSpec;
pub use secret::SecretRef;

/// `(apiVersion, kind)` of each source resource this crate compiles.
pub const PING_SOURCE: (&str, &str) = ("sources.knative.dev/v1", "PingSource");
pub const API_SERVER_SOURCE: (&str, &str) = ("sources.knative.dev/v1", "ApiServerSource");
pub const GITHUB_SOURCE: (&str, &str) = ("sources.knative.dev/v1alpha1", "GitHubSource");
pub const CLOUD_PUBSUB_SOURCE: (&str, &str) = ("events.cloud.google.com/v1", "CloudPubSubSource");

/// What `compile` needs from the resource's metadata.
#[derive(Debug, Clone, Default)]
pub struct SourceMeta {
    pub namespace: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
}

/// A source spec that cannot run; `field` is the path inside the resource (`spec.schedule`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ManifestError {
    pub field: String,
    pub message: String,
}

impl ManifestError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `spec.sink`: Knative's `duck/v1.Destination`. The broker resolves it (a `Broker` ref is its
/// own ingress, other refs a cluster URL) and builds the [`crate::Sink`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    #[serde(default, rename = "ref")]
    pub reference: Option<KReference>,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default, rename = "CACerts")]
    pub ca_certs: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KReference {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
}

impl Destination {
    /// Knative requires `ref` or `uri`; checked here so the error names the field.
    fn check(&self, field: &str) -> Result<(), ManifestError> {
        if self.reference.is_none() && self.uri.is_none() {
            return Err(ManifestError::new(field, "needs `ref` or `uri`"));
        }
        Ok(())
    }
}

/// `spec.ceOverrides`: extensions added to every event the source emits.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudEventOverrides {
    #[serde(default)]
    pub extensions: BTreeMap<String, String>,
}

/// The most `ceOverrides` extensions a source may set: with a source's own (at most 9) they
/// stay well under ingress's default cap of 64 extensions.
pub const MAX_OVERRIDES: usize = 32;
/// The most bytes of `ceOverrides` names and values: with the at most ~12 KiB a source derives
/// from its input (see [`crate::attribute`]) they stay under ingress's default 16 KiB.
pub const MAX_OVERRIDES_BYTES: usize = 4096;

/// Checked `ceOverrides` extensions, applied last by every source's `to_event`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(pub Vec<(String, String)>);

impl Overrides {
    fn compile(spec: Option<&CloudEventOverrides>) -> Result<Self, ManifestError> {
        let mut out = Vec::new();
        for (name, value) in spec.map(|s| &s.extensions).into_iter().flatten() {
            if !is_extension_name(name) {
                return Err(ManifestError::new(
                    format!("spec.ceOverrides.extensions.{name}"),
                    "extension names are lowercase letters and digits",
                ));
            }
            if crate::attribute::has_control(value) {
                return Err(ManifestError::new(
                    format!("spec.ceOverrides.extensions.{name}"),
                    "control characters are not allowed in CloudEvents attributes",
                ));
            }
            out.push((name.clone(), value.clone()));
        }
        let size: usize = out.iter().map(|(n, v)| n.len() + v.len()).sum();
        if out.len() > MAX_OVERRIDES || size > MAX_OVERRIDES_BYTES {
            return Err(ManifestError::new(
                "spec.ceOverrides.extensions",
                format!(
                    "{} extensions of {size} bytes; at most {MAX_OVERRIDES} of {MAX_OVERRIDES_BYTES} \
                     bytes in total, so that every event stays under ingress's attribute caps",
                    out.len()
                ),
            ));
        }
        Ok(Self(out))
    }

    /// Sets each override on `event`, replacing an attribute of the same name.
    pub fn apply(&self, event: &mut cloudevents::Event) {
        use cloudevents::event::ExtensionValue;
        for (name, value) in &self.0 {
            event.set_extension(name, ExtensionValue::String(value.clone()));
        }
    }
}

/// CloudEvents attribute names: `[a-z0-9]+` (the spec recommends at most 20 characters).
pub fn is_extension_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `secretKeyRef {name, key}` as Kubernetes writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
    #[serde(default)]
    pub optional: Option<bool>,
}

/// A boolean annotation: `"true"`/`"false"`; anything else fails the load.
fn annotation_bool(meta: &SourceMeta, key: &str) -> Result<bool, ManifestError> {
    match meta.annotations.get(key).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ManifestError::new(
            format!("metadata.annotations.{key}"),
            format!("expected \"true\" or \"false\", got {other:?}"),
        )),
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write secret files directly"
)]
mod tests;
