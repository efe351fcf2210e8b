//! GitHubSource: GitHub webhook deliveries -> CloudEvents.
//!
//! The HTTP handler (the broker's `POST /sources/{namespace}/{name}`) runs these steps:
//! 1. read the body with a size limit into [`Unverified`];
//! 2. [`Unverified::verify`] -> [`Verified`], or [`GithubError`] (`401` for signatures, `400`
//!    for missing `X-GitHub-Event`/`X-GitHub-Delivery`): nothing is parsed before this;
//! 3. [`EventTypes::allows`] on [`Verified::event_name`]: not allowed -> `204`, not emitted;
//! 4. [`DeliveryLog::claim`] on [`Verified::delivery_id`]: a known id -> `200`, not emitted;
//! 5. [`Verified::to_event`] with the source's [`GitHubConfig`] and the receive time;
//! 6. the sink; once it accepted, [`Claim::commit`] and answer `202`; a sink error -> `503`.
//!
//! Two mappings: [`Mapping::Knative`] (default, what Knative's GitHubSource emits, per
//! SOURCES.md) and [`Mapping::CloudEventsAdapter`] (the CloudEvents GitHub adapter spec),
//! chosen with the `herald.dev/github.mapping` annotation. Both carry the raw body as data.

mod adapter;
mod delivery_log;
mod knative;
mod payload;
mod verify;

use std::time::Duration;

use chrono::{DateTime, Utc};
use cloudevents::Event;

use crate::manifest::Overrides;

pub use delivery_log::{Claim, DEFAULT_CAPACITY, DeliveryLog, Seen};
pub use verify::{Unverified, Verified};

/// How long a delivery id is remembered unless `herald.dev/github.redeliveryWindow` says.
pub const DEFAULT_REDELIVERY_WINDOW: Duration = Duration::from_secs(72 * 3600);

/// A compiled `GitHubSource`.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    pub namespace: String,
    pub name: String,
    /// `https://github.com/{ownerAndRepository}`: the Knative mapping's `source`.
    pub source: String,
    pub secret: WebhookSecret,
    /// Accept deliveries signed only with SHA-1 `X-Hub-Signature` (annotation, default off).
    pub allow_sha1: bool,
    pub event_types: EventTypes,
    pub mapping: Mapping,
    pub redelivery_window: Duration,
    pub overrides: Overrides,
    /// The longest attribute value taken from a payload (see [`crate::attribute`]).
    pub max_attribute_bytes: usize,
}

/// Which attribute mapping a GitHubSource uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mapping {
    /// Knative's GitHubSource: `dev.knative.source.github.{event}`, the table in SOURCES.md.
    #[default]
    Knative,
    /// The CloudEvents GitHub adapter spec: `com.github.{event}.{action}`.
    CloudEventsAdapter,
}

/// The webhook secret; never printed.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// `None` for an empty secret. A trailing newline (what `echo secret > file` leaves) is
    /// dropped: GitHub's secret field is one line, so it can never be part of the secret.
    pub fn new(mut bytes: Vec<u8>) -> Option<Self> {
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        (!bytes.is_empty()).then_some(Self(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `other` is the same secret (a reload compares them to restart a source whose
    /// secret rotated); constant time in the secret's bytes.
    pub fn same_as(&self, other: &WebhookSecret) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_slice(), other.0.as_slice()).into()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// `spec.eventTypes`: the GitHub event names to emit; empty emits every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTypes(Vec<String>);

impl EventTypes {
    /// Checks each name (GitHub event names are lowercase letters and `_`); on error, returns
    /// the index of the bad entry and why.
    pub fn new(names: &[String]) -> Result<Self, (usize, String)> {
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Err((i, format!("{name:?} is not a GitHub event name")));
            }
        }
        Ok(Self(names.to_vec()))
    }

    pub fn allows(&self, event_name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n == event_name)
    }
}

/// Why a delivery was refused; [`GithubError::status`] is the HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("missing signature header X-Hub-Signature-256")]
    MissingSignature,
    #[error("signature does not match the body")]
    WrongSignature,
    #[error("malformed signature header {header}")]
    MalformedSignature { header: &'static str },
    #[error("missing header {header}")]
    MissingHeader { header: &'static str },
    #[error("invalid header {header}: {message}")]
    InvalidHeader {
        header: &'static str,
        message: String,
    },
    #[error("payload is not a JSON object: {message}")]
    InvalidPayload { message: String },
}

impl GithubError {
    /// `401` for anything about the signature, `400` for the rest.
    pub fn status(&self) -> http::StatusCode {
        match self {
            GithubError::MissingSignature
            | GithubError::WrongSignature
            | GithubError::MalformedSignature { .. } => http::StatusCode::UNAUTHORIZED,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// A short, fixed label for the "rejected" metric.
    pub fn reason(&self) -> &'static str {
        match self {
            GithubError::MissingSignature => "missing_signature",
            GithubError::WrongSignature => "wrong_signature",
            GithubError::MalformedSignature { .. } => "malformed_signature",
            GithubError::MissingHeader { .. } => "missing_header",
            GithubError::InvalidHeader { .. } => "invalid_header",
            GithubError::InvalidPayload { .. } => "invalid_payload",
        }
    }
}

impl Verified {
    /// Converts the delivery with `config`'s mapping; `now` is the receive time.
    pub fn to_event(
        &self,
        config: &GitHubConfig,
        now: DateTime<Utc>,
    ) -> Result<Event, GithubError> {
        let payload = payload::Payload::parse(self.json_body())?;
        let mut event = match config.mapping {
            Mapping::Knative => knative::to_event(
                self,
                &payload,
                &config.source,
                now,
                config.max_attribute_bytes,
            ),
            Mapping::CloudEventsAdapter => adapter::to_event(
                self,
                &payload,
                &config.source,
                now,
                config.max_attribute_bytes,
            ),
        };
        config.overrides.apply(&mut event);
        Ok(event)
    }
}
