//! Live configuration: what the running broker serves, changed without a restart.
//!
//! Two producers of configuration meet here: the `-f` files (watched, and re-read on
//! `SIGHUP`) and the resources created through the management API. [`Apply`] is the contract
//! between them and the running broker: the API hands over the whole set of its documents,
//! the implementation validates files and API documents together as one configuration and
//! switches to it, or changes nothing and says why.
//!
//! # Layout
//! - [`runtime`]: the running set (brokers in ingress, trigger dispatchers, sources) and the
//!   diff that applies a new configuration.
//! - [`apply`]: [`Live`], which implements [`Apply`]: files and API documents resolved
//!   together, the pause overlay on top.
//! - [`reload`]: polling the `-f` files and `SIGHUP`.
//! - [`pause`]: triggers paused by command, kept in the data directory.
//! - [`replay`]: a time window copied to one trigger's redrive topic.
//! - [`status`]: Knative conditions of every running resource.
//! - [`admin`]: the pause, resume and replay endpoints under `/admin/triggers/{ns}/{name}/`.

use async_trait::async_trait;

use crate::config::ConfigError;

/// One manifest as the management API stores it (JSON; the YAML loader reads JSON too).
pub type ApiDocument = serde_json::Value;

/// The running broker's side of live configuration.
#[async_trait]
pub trait Apply: Send + Sync + 'static {
    /// Replaces every API-created document with `documents`, validates them together with the
    /// files' documents, and applies the result. On error nothing changed.
    async fn set_api_documents(&self, documents: Vec<ApiDocument>) -> Result<(), ConfigError>;

    /// Whether `documents` (the API's, as they would be after a change) would be accepted
    /// together with the files' documents, without applying anything.
    fn validate(&self, documents: &[ApiDocument]) -> Result<(), ConfigError>;

    /// The documents loaded from `-f` files now, each with its file (listed read-only).
    fn file_documents(&self) -> Vec<FileDocument>;

    /// The running state of every resource, for `status`.
    fn status(&self) -> Vec<ResourceStatus>;
}

/// A document read from a file given with `-f`.
#[derive(Debug, Clone)]
pub struct FileDocument {
    pub path: std::path::PathBuf,
    /// 1-based position of the document in its file.
    pub index: usize,
    pub value: ApiDocument,
}

/// What the running broker reports about one resource.
#[derive(Debug, Clone)]
pub struct ResourceStatus {
    /// `apiVersion` group, e.g. `eventing.knative.dev`.
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Knative-style conditions (`Ready`, `SubscriberResolved`, ...).
    pub conditions: Vec<Condition>,
    /// A Broker's (or channel's) address.
    pub address: Option<String>,
}

/// A Knative condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

pub mod admin;
pub mod apply;
pub mod pause;
pub mod reload;
pub mod replay;
pub mod runtime;
pub mod status;

pub use apply::{Live, ReloadError, SharedLive};

#[cfg(test)]
mod tests;
