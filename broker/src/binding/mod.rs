//! The CloudEvents HTTP protocol binding: binary, structured and batched modes, both ways.
//!
//! # Layout
//! - [`decode`]: request (headers + body) into events, with spec validation.
//! - [`encode`]: an event into a request for a subscriber (binary or structured).
//! - [`validate`]: attribute naming and value rules of the CloudEvents spec.

pub mod decode;
pub mod encode;
pub mod validate;

pub const STRUCTURED: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";

/// Why a request is not a valid CloudEvent, shaped by the status it earns.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindingError {
    /// `400`: the request is not a valid CloudEvent.
    #[error("{0}")]
    Invalid(String),
    /// `415`: structured mode with an event format Herald does not read.
    #[error(
        "unsupported event format {0:?} (supported: application/cloudevents+json, application/cloudevents-batch+json)"
    )]
    UnsupportedFormat(String),
}

pub fn invalid(message: impl Into<String>) -> BindingError {
    BindingError::Invalid(message.into())
}
