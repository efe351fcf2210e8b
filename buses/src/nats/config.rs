//! Settings of the NATS bus and the names it derives from topics and groups.

use std::time::Duration;

use crate::BusError;

/// Default replicas of each stream (`1`: a single NATS server; use 3 on a cluster).
pub const DEFAULT_REPLICAS: usize = 1;
/// Default time a consumer has to acknowledge a delivery before JetStream redelivers it. Herald
/// keeps deliveries it is still working on alive (`+WPI` every third of this), so this bounds
/// how long the events of a killed replica wait before another replica gets them.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// Default deliveries a group may have unacknowledged at once (the in-flight window; the
/// broker's default window is the same).
pub const DEFAULT_MAX_ACK_PENDING: usize = 256;
/// Default window in which JetStream drops a publish whose `Nats-Msg-Id` it already stored.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Default bound on one `publish` (stream lookup, sends and every PubAck) and on JetStream API
/// calls. Past it the publish fails with a retryable error.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on establishing the connection in [`NatsBus::connect`](super::NatsBus::connect).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Prefix of every subject Herald publishes to.
pub const SUBJECT_PREFIX: &str = "herald";

/// How the NATS bus connects and what it creates.
///
/// Stream settings (`replicas`, `max_age`, `max_bytes`, `duplicate_window`) apply when Herald
/// creates a stream; an existing stream keeps its own. Consumer settings (`ack_wait`,
/// `max_ack_pending`) are applied (created or updated) on every `subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URL(s): `nats://host:port`, several separated by commas.
    pub url: String,
    /// Stream replicas (JetStream `num_replicas`).
    pub replicas: usize,
    /// Events older than this are deleted even if a group has not acknowledged them. `None`:
    /// kept until every group acknowledged them.
    pub max_age: Option<Duration>,
    /// Bytes a stream may hold; a publish past it fails with `Overloaded` (discard policy
    /// `new`: nothing unacknowledged is dropped to make room). `None`: bounded only by the
    /// server's JetStream storage.
    pub max_bytes: Option<u64>,
    pub ack_wait: Duration,
    pub max_ack_pending: usize,
    pub duplicate_window: Duration,
    pub publish_timeout: Duration,
    pub connect_timeout: Duration,
}

impl NatsConfig {
    /// Defaults for everything but the server URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            replicas: DEFAULT_REPLICAS,
            max_age: None,
            max_bytes: None,
            ack_wait: DEFAULT_ACK_WAIT,
            max_ack_pending: DEFAULT_MAX_ACK_PENDING,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// The JetStream names of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicNames {
    /// Stream name: the topic, escaped.
    pub stream: String,
    /// The stream's only subject: `herald.{stream}`.
    pub subject: String,
}

impl TopicNames {
    pub fn new(topic: &str) -> Result<Self, BusError> {
        let stream = escape(topic, "topic")?;
        let subject = format!("{SUBJECT_PREFIX}.{stream}");
        Ok(Self { stream, subject })
    }
}

/// The durable consumer name of a group: the group, escaped.
pub fn consumer_name(group: &str) -> Result<String, BusError> {
    escape(group, "group")
}

/// Keeps `[A-Za-z0-9-]` and writes every other byte as `_xx` (lower-case hex), so the result is
/// a valid stream, consumer and subject-token name, and distinct inputs stay distinct.
/// `knative-broker-default-default` is its own escape.
fn escape(name: &str, what: &str) -> Result<String, BusError> {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    if out.is_empty() || out.len() > MAX_NAME_LEN {
        return Err(BusError::Rejected {
            reason: format!(
                "{what} {name:?} escapes to {} bytes, JetStream allows 1 to {MAX_NAME_LEN}",
                out.len()
            ),
        });
    }
    Ok(out)
}

/// JetStream's limit on stream and consumer names.
const MAX_NAME_LEN: usize = 255;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knative_names_are_kept_and_others_escaped() {
        let names = TopicNames::new("knative-broker-default-default").unwrap();
        assert_eq!(names.stream, "knative-broker-default-default");
        assert_eq!(names.subject, "herald.knative-broker-default-default");
        assert_eq!(consumer_name("a.b c_d*").unwrap(), "a_2eb_20c_5fd_2a");
        assert_ne!(consumer_name("a_2e").unwrap(), consumer_name("a.").unwrap());
        assert!(TopicNames::new("").is_err());
    }
}
