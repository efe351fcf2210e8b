//! The Knative Eventing resources Herald reads, as written in YAML.
//!
//! These mirror the Kubernetes API shapes field by field, with `deny_unknown_fields` so a typo
//! fails the load; [`super::model`] turns them into typed, resolved values.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

// Knative's duck types (destinations, Subscriptions API filters) are shared with the sources
// crate, the lower layer, so triggers and sources read them identically.
pub use herald_sources::manifest::{Destination, FilterSpec, KReference};

/// `apiVersion` and `kind`, read first to pick the full type.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    pub api_version: Option<String>,
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest<Spec> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: Spec,
    /// Exported manifests carry the status the cluster wrote; it is not configuration.
    #[serde(default)]
    pub status: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    // Fields `kubectl get -o yaml` adds; accepted so exported manifests load as they are.
    #[serde(default)]
    pub uid: Option<IgnoredAny>,
    #[serde(default)]
    pub generation: Option<IgnoredAny>,
    #[serde(default)]
    pub resource_version: Option<IgnoredAny>,
    #[serde(default)]
    pub creation_timestamp: Option<IgnoredAny>,
    #[serde(default)]
    pub finalizers: Option<IgnoredAny>,
    #[serde(default)]
    pub managed_fields: Option<IgnoredAny>,
    #[serde(default)]
    pub owner_references: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerSpec {
    /// Knative's reference to a broker ConfigMap (class-specific); Herald has nothing to read there.
    #[serde(default)]
    pub config: Option<IgnoredAny>,
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerSpec {
    pub broker: String,
    #[serde(default)]
    pub filter: Option<TriggerFilter>,
    #[serde(default)]
    pub filters: Vec<FilterSpec>,
    pub subscriber: Destination,
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerFilter {
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliverySpec {
    #[serde(default)]
    pub dead_letter_sink: Option<Destination>,
    #[serde(default)]
    pub retry: Option<i64>,
    #[serde(default)]
    pub backoff_policy: Option<String>,
    #[serde(default)]
    pub backoff_delay: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retry_after_max: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
}
