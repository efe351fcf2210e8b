//! ApiServerSource: Kubernetes object changes -> CloudEvents.
//!
//! [`to_event`] is the pure conversion; [`watcher`] is the transport: one list+watch per
//! resource type (never per namespace), with the "seen" state ([`seen::SeenState`]) persisted
//! so that after a restart or a `410 Gone` a fresh list is diffed against what was recorded
//! and the missed adds, updates and deletes are emitted.

mod event;
pub mod seen;
pub mod watcher;

pub use event::{Change, EventContext, to_event};

use crate::manifest::Overrides;

/// A compiled `ApiServerSource`.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    pub namespace: String,
    pub name: String,
    pub resources: Vec<ResourceSelector>,
    pub namespaces: NamespaceScope,
    pub mode: Mode,
    pub owner: Option<OwnerFilter>,
    pub overrides: Overrides,
    /// The longest attribute value taken from an object (see [`crate::attribute`]).
    pub max_attribute_bytes: usize,
}

/// One `spec.resources[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSelector {
    /// `v1` or `group/version`.
    pub api_version: String,
    pub kind: String,
    /// In the API server's query syntax; `None` selects all.
    pub label_selector: Option<String>,
}

/// Which namespaces are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    /// No `namespaceSelector`: the source's own namespace (Knative's default).
    Only(String),
    /// A `namespaceSelector` in query syntax; empty means every namespace.
    Matching(String),
}

/// `Reference` sends `{apiVersion, kind, name, namespace}`; `Resource` sends the object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Reference,
    Resource,
}

/// `spec.owner`: only objects with an owner reference of this apiVersion and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerFilter {
    pub api_version: String,
    pub kind: String,
}

impl OwnerFilter {
    pub fn matches(&self, object: &serde_json::Value) -> bool {
        object
            .pointer("/metadata/ownerReferences")
            .and_then(|v| v.as_array())
            .is_some_and(|refs| {
                refs.iter().any(|r| {
                    r.get("apiVersion").and_then(|v| v.as_str()) == Some(self.api_version.as_str())
                        && r.get("kind").and_then(|v| v.as_str()) == Some(self.kind.as_str())
                })
            })
    }
}

#[cfg(test)]
mod tests;
