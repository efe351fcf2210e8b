//! The CloudEvents HTTP protocol binding: binary, structured and batched modes, both ways.
//!
//! # Layout
//! - [`decode`]: request (headers + body) into events, with spec validation.
//! - [`encode`]: an event into a request for a subscriber (binary or structured).
//! - [`validate`]: attribute naming and value rules of the CloudEvents spec.
//! - [`limits`]: what every stored event satisfies (no control characters, bounded
//!   extensions and attribute bytes), checked by ingress for every entry point.

pub mod decode;
pub mod encode;
pub mod limits;
pub mod validate;

pub use limits::AttributeLimits;

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
    /// `400`: an attribute value holds a control character (forbidden in CloudEvents strings).
    #[error("attribute {attribute} contains the control character {character:?}")]
    ControlCharacter { attribute: String, character: char },
    /// `400`: more extensions than `--max-extensions`.
    #[error("the event has {count} extensions, more than the limit of {limit} (--max-extensions)")]
    TooManyExtensions { count: usize, limit: usize },
    /// `400`: attribute names and values over `--max-attributes-bytes` together.
    #[error(
        "the event's attributes (names and values) exceed the limit of {limit} bytes \
         (--max-attributes-bytes)"
    )]
    AttributesTooLarge { limit: usize },
}

impl BindingError {
    /// The reason label of `herald_events_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            BindingError::Invalid(_) | BindingError::ControlCharacter { .. } => "invalid",
            BindingError::UnsupportedFormat(_) => "unsupported_format",
            BindingError::TooManyExtensions { .. } | BindingError::AttributesTooLarge { .. } => {
                "attribute_limit"
            }
        }
    }
}

pub fn invalid(message: impl Into<String>) -> BindingError {
    BindingError::Invalid(message.into())
}
