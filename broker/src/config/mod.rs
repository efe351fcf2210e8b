//! Configuration: Knative Eventing manifests (`-f FILE|DIR`) loaded into a typed [`Config`].
//!
//! # Layout
//! - [`resources`]: the YAML shapes, field for field (`deny_unknown_fields`).
//! - [`load`]: files and directories, `---` documents, errors naming file, document and field.
//! - [`resolve`]: resources into the model (destinations, filters, delivery policies).
//! - [`sources`]: `PingSource`, `ApiServerSource` and `GitHubSource`, compiled by
//!   `herald-sources`, with their sinks resolved here.
//! - [`channels`]: Channels, Subscriptions, Sequences and Parallels, compiled into brokers'
//!   and triggers' machinery.
//! - [`policies`]: `EventPolicy`, compiled for authorization.
//! - [`model`]: the typed result the broker runs on.

mod channels;
mod flows;
mod load;
pub mod model;
pub mod policies;
mod resolve;
pub mod resources;
mod sources;

pub use load::{
    ConfigError, DEFAULT_SECRETS_DIR, FileText, LoadOptions, file_documents, load_paths,
    load_paths_with, load_str, load_str_with, read_files, resolve_all,
};
pub use model::*;
pub use policies::EventPolicyConfig;

#[cfg(test)]
mod tests;
