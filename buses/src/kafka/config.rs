//! Settings of the Kafka bus and the librdkafka configurations derived from them.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::BusError;

/// Default partitions of a topic Herald creates (Knative's Kafka broker default is 10).
pub const DEFAULT_PARTITIONS: i32 = 10;
/// Default replication factor of a topic Herald creates (`1`: a single broker; use 3 on a
/// cluster, as Knative does).
pub const DEFAULT_REPLICATION_FACTOR: i16 = 1;
/// Default bound on one `publish`: librdkafka's `message.timeout.ms`, after which an undelivered
/// record fails with a retryable error.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on connecting, admin requests and the first group assignment of `subscribe`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest record (key, value, headers) the producer sends: librdkafka's and Kafka's
/// default `message.max.bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;
/// Default interval at which a group's contiguous acknowledged offsets are committed.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// librdkafka options Herald sets itself because its guarantees rest on them; `extra` may not
/// override them.
pub const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "message.max.bytes",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
];

/// How the Kafka bus connects and what it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap servers: `host:port`, several separated by commas.
    pub brokers: String,
    /// Partitions of a topic Herald creates; an existing topic keeps its own.
    pub partitions: i32,
    /// Replication factor of a topic Herald creates.
    pub replication_factor: i16,
    /// Largest record the producer sends; a larger event is rejected before producing.
    pub max_message_bytes: usize,
    /// Bound on one publish (`message.timeout.ms`).
    pub publish_timeout: Duration,
    /// Bound on connecting, topic creation and the first assignment of a subscription.
    pub request_timeout: Duration,
    /// `auto.commit.interval.ms`: how often acknowledged offsets are committed (also on every
    /// rebalance and on close).
    pub commit_interval: Duration,
    /// Extra librdkafka options. A key `producer.X` or `consumer.X` sets `X` for that client
    /// only; any other key is set on every client (producer, consumers, admin). The options in
    /// [`RESERVED`] are refused.
    pub extra: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Defaults for everything but the bootstrap servers.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            partitions: DEFAULT_PARTITIONS,
            replication_factor: DEFAULT_REPLICATION_FACTOR,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            extra: BTreeMap::new(),
        }
    }

    /// Refuses extra options that would undo a guarantee.
    pub(super) fn validate(&self) -> Result<(), BusError> {
        for key in self.extra.keys() {
            let bare = key
                .strip_prefix("producer.")
                .or_else(|| key.strip_prefix("consumer."))
                .unwrap_or(key);
            if RESERVED.contains(&bare) {
                return Err(BusError::Rejected {
                    reason: format!("kafka option {key} is set by herald and cannot be overridden"),
                });
            }
        }
        if self.partitions < 1 || self.replication_factor < 1 {
            return Err(BusError::Rejected {
                reason: format!(
                    "kafka partitions ({}) and replication factor ({}) must be at least 1",
                    self.partitions, self.replication_factor
                ),
            });
        }
        Ok(())
    }

    fn base(&self, role: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("herald-{role}"))
            .set(
                "socket.timeout.ms",
                millis(self.request_timeout.max(Duration::from_secs(10))),
            )
            .set("socket.keepalive.enable", "true");
        config
    }

    fn with_extra(&self, mut config: ClientConfig, role: &str) -> ClientConfig {
        for (key, value) in &self.extra {
            match key.split_once('.') {
                Some(("producer" | "consumer", rest)) => {
                    if key.starts_with(role) {
                        config.set(rest, value);
                    }
                }
                _ => {
                    config.set(key, value);
                }
            }
        }
        config
    }

    /// The producer: `acks=all`, idempotent, Java-compatible key hashing (`murmur2`: events of
    /// one `partitionkey` land where Knative's producers put them; events without one share a
    /// partition, so their order holds).
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.base("producer");
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2")
            .set("message.max.bytes", self.max_message_bytes.to_string())
            .set("message.timeout.ms", millis(self.publish_timeout))
            .set("linger.ms", "2");
        self.with_extra(config, "producer")
    }

    /// A consumer of `group`: offsets stored by Herald (only contiguous acknowledged ones) and
    /// committed by librdkafka every `commit_interval`, on rebalance and on close.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.base("consumer");
        config
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", millis(self.commit_interval))
            .set("auto.offset.reset", "latest")
            .set("enable.partition.eof", "false");
        self.with_extra(config, "consumer")
    }

    /// The admin client (topic creation, metadata).
    pub fn admin(&self) -> ClientConfig {
        let config = self.base("admin");
        self.with_extra(config, "admin")
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// Checks that `topic` is a legal Kafka topic name (`[A-Za-z0-9._-]`, 1 to 249 bytes).
/// Knative's names (`knative-broker-{ns}-{name}`) always are: Kubernetes names are DNS labels.
pub fn check_topic(topic: &str) -> Result<(), BusError> {
    let legal = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if legal {
        Ok(())
    } else {
        Err(BusError::Rejected {
            reason: format!("{topic:?} is not a legal kafka topic name"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_options_are_refused_and_role_prefixes_apply_to_one_client() {
        let mut config = KafkaConfig::new("127.0.0.1:9092");
        config.extra.insert("producer.acks".into(), "1".into());
        assert!(config.validate().is_err());
        config.extra.clear();
        config
            .extra
            .insert("producer.linger.ms".into(), "20".into());
        config
            .extra
            .insert("consumer.fetch.wait.max.ms".into(), "50".into());
        config.extra.insert("client.rack".into(), "r1".into());
        config.validate().unwrap();
        let producer = config.producer();
        let consumer = config.consumer("g");
        assert_eq!(producer.get("linger.ms"), Some("20"));
        assert_eq!(producer.get("fetch.wait.max.ms"), None);
        assert_eq!(consumer.get("fetch.wait.max.ms"), Some("50"));
        assert_eq!(consumer.get("client.rack"), Some("r1"));
        assert_eq!(producer.get("client.rack"), Some("r1"));
        assert_eq!(consumer.get("group.id"), Some("g"));
        assert_eq!(consumer.get("auto.offset.reset"), Some("latest"));
    }

    #[test]
    fn knative_topic_names_are_legal_and_others_rejected() {
        check_topic("knative-broker-default-default").unwrap();
        assert!(check_topic("a/b").is_err());
        assert!(check_topic("").is_err());
        assert!(check_topic(&"x".repeat(250)).is_err());
    }
}
