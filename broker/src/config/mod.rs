//! Configuration: Knative Eventing manifests (`-f FILE|DIR`) loaded into a typed [`Config`].
//!
//! # Layout
//! - [`resources`]: the YAML shapes, field for field (`deny_unknown_fields`).
//! - [`load`]: files and directories, `---` documents, errors naming file, document and field.
//! - [`resolve`]: resources into the model (destinations, filters, delivery policies).
//! - [`model`]: the typed result the broker runs on.
//! - [`duration`]: ISO-8601 durations.

pub mod duration;
mod load;
pub mod model;
mod resolve;
pub mod resources;

pub use load::{ConfigError, load_paths, load_str};
pub use model::*;

#[cfg(test)]
mod tests;
