//! `CloudPubSubSource` (`events.cloud.google.com/v1`, Knative GCP's archived source).

use serde::Deserialize;

use super::{CloudEventOverrides, Destination, ManifestError, Overrides, SourceMeta};
use crate::pubsub::PubsubSourceConfig;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudPubSubSourceSpec {
    /// The topic id (not its `projects/.../topics/...` path).
    pub topic: String,
    /// The topic's project. Knative GCP defaulted it from the cluster's metadata server;
    /// Herald needs it written.
    #[serde(default)]
    pub project: Option<String>,
    pub sink: Destination,
    #[serde(default)]
    pub ce_overrides: Option<CloudEventOverrides>,
    /// Knative GCP fields Herald accepts and does not use (it authenticates with Application
    /// Default Credentials and keeps its own subscription settings).
    #[serde(default)]
    pub secret: Option<serde_json::Value>,
    #[serde(default)]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub ack_deadline: Option<String>,
    #[serde(default)]
    pub retain_acked_messages: Option<bool>,
    #[serde(default)]
    pub retention_duration: Option<String>,
}

impl CloudPubSubSourceSpec {
    pub fn compile(&self, meta: &SourceMeta) -> Result<PubsubSourceConfig, ManifestError> {
        self.sink.check("spec.sink")?;
        let project = self
            .project
            .clone()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ManifestError::new("spec.project", "the topic's project is required"))?;
        let valid_project = project
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_project {
            return Err(ManifestError::new(
                "spec.project",
                "a project id is letters, digits, '-' and '_'",
            ));
        }
        check_id("spec.topic", &self.topic)?;
        let subscription = format!("herald-source-{}-{}", meta.namespace, meta.name);
        check_id("metadata.name", &subscription)?;
        Ok(PubsubSourceConfig {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            project,
            topic: self.topic.clone(),
            subscription,
            overrides: Overrides::compile(self.ce_overrides.as_ref())?,
        })
    }
}

/// Pub/Sub's resource id rules: 3 to 255 characters, a letter first, then letters, digits and
/// `-_.~+%`, not starting with `goog`.
fn check_id(field: &str, id: &str) -> Result<(), ManifestError> {
    let ok = (3..=255).contains(&id.len())
        && id.as_bytes()[0].is_ascii_alphabetic()
        && !id.to_ascii_lowercase().starts_with("goog")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ManifestError::new(
            field,
            format!(
                "{id:?} is not a Pub/Sub resource id (3 to 255 letters, digits and -_.~+%, \
                 a letter first, not starting with goog)"
            ),
        ))
    }
}
