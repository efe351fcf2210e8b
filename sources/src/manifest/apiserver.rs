//! `ApiServerSource` (`sources.knative.dev/v1`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{CloudEventOverrides, Destination, ManifestError, Overrides, SourceMeta};
use crate::kubernetes::{ApiServerConfig, Mode, NamespaceScope, OwnerFilter, ResourceSelector};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiServerSourceSpec {
    pub resources: Vec<ApiVersionKindSelector>,
    #[serde(default)]
    pub owner: Option<ApiVersionKind>,
    /// `Reference` (default) or `Resource`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Accepted so Knative manifests load; Herald watches with its own credentials.
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Unset: the source's own namespace (as Knative); `{}`: every namespace.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// The trigger filter dialects, applied to each event before it is sent; same shape as a
    /// Trigger's `spec.filters`, compiled by the broker.
    #[serde(default)]
    pub filters: Vec<FilterSpec>,
    pub sink: Destination,
    #[serde(default)]
    pub ce_overrides: Option<CloudEventOverrides>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiVersionKindSelector {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiVersionKind {
    pub api_version: String,
    pub kind: String,
}

/// Kubernetes `metav1.LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// One entry of `spec.filters` (CloudEvents Subscriptions API dialects); exactly one key set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    #[serde(default)]
    pub exact: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub prefix: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub suffix: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub all: Option<Vec<FilterSpec>>,
    #[serde(default)]
    pub any: Option<Vec<FilterSpec>>,
    #[serde(default)]
    pub not: Option<Box<FilterSpec>>,
    #[serde(default)]
    pub cesql: Option<String>,
}

impl LabelSelector {
    /// The selector in the API server's query syntax (`a=b,c in (d,e),!f`); empty selects all.
    pub fn to_query(&self, field: &str) -> Result<String, ManifestError> {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for (i, req) in self.match_expressions.iter().enumerate() {
            let values = req.values.join(",");
            let needs_values = |ok: bool| {
                if ok {
                    Ok(())
                } else {
                    Err(ManifestError::new(
                        format!("{field}.matchExpressions[{i}].values"),
                        format!("operator {} needs values (In, NotIn) or none", req.operator),
                    ))
                }
            };
            parts.push(match req.operator.as_str() {
                "In" => needs_values(!req.values.is_empty())
                    .map(|()| format!("{} in ({values})", req.key))?,
                "NotIn" => needs_values(!req.values.is_empty())
                    .map(|()| format!("{} notin ({values})", req.key))?,
                "Exists" => needs_values(req.values.is_empty()).map(|()| req.key.clone())?,
                "DoesNotExist" => {
                    needs_values(req.values.is_empty()).map(|()| format!("!{}", req.key))?
                }
                other => {
                    return Err(ManifestError::new(
                        format!("{field}.matchExpressions[{i}].operator"),
                        format!("expected In, NotIn, Exists or DoesNotExist, got {other:?}"),
                    ));
                }
            });
        }
        Ok(parts.join(","))
    }
}

impl ApiServerSourceSpec {
    pub fn compile(&self, meta: &SourceMeta) -> Result<ApiServerConfig, ManifestError> {
        self.sink.check("spec.sink")?;
        if self.resources.is_empty() {
            return Err(ManifestError::new(
                "spec.resources",
                "at least one resource is required",
            ));
        }
        let mut resources = Vec::new();
        for (i, r) in self.resources.iter().enumerate() {
            if r.kind.is_empty() || r.api_version.is_empty() || r.api_version.split('/').count() > 2
            {
                return Err(ManifestError::new(
                    format!("spec.resources[{i}]"),
                    "needs `apiVersion` (`v1` or `group/version`) and `kind`",
                ));
            }
            let field = format!("spec.resources[{i}].selector");
            resources.push(ResourceSelector {
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
                label_selector: r
                    .selector
                    .as_ref()
                    .map(|s| s.to_query(&field))
                    .transpose()?,
            });
        }
        let mode = match self.mode.as_deref() {
            None | Some("Reference") => Mode::Reference,
            Some("Resource") => Mode::Resource,
            Some(other) => {
                return Err(ManifestError::new(
                    "spec.mode",
                    format!("expected Reference or Resource, got {other:?}"),
                ));
            }
        };
        let namespaces = match &self.namespace_selector {
            None => NamespaceScope::Only(meta.namespace.clone()),
            Some(sel) => NamespaceScope::Matching(sel.to_query("spec.namespaceSelector")?),
        };
        Ok(ApiServerConfig {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            resources,
            namespaces,
            mode,
            owner: self.owner.as_ref().map(|o| OwnerFilter {
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
            }),
            overrides: Overrides::compile(self.ce_overrides.as_ref())?,
            max_attribute_bytes: crate::attribute::DEFAULT_MAX_VALUE_BYTES,
        })
    }
}
