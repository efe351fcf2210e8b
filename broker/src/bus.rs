//! Which bus to run on, parsed once from `--bus`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use herald_buses::embedded::{EmbeddedBus, EmbeddedConfig, Retention};
use herald_buses::memory::MemoryBus;
use herald_buses::{Bus, BusError};

/// The `--bus` setting. Every variant always parses; buses not compiled in say so when opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusConfig {
    Embedded,
    Memory,
    Kafka {
        brokers: String,
    },
    Nats {
        url: String,
    },
    /// `pubsub://PROJECT`: the emulator at `PUBSUB_EMULATOR_HOST` if set, else Google Cloud.
    Pubsub {
        project: String,
        options: PubsubOptions,
    },
}

/// The `--pubsub-...` settings of the Pub/Sub bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PubsubOptions {
    /// `--pubsub-publish-timeout`: no acknowledgement within it is `503`.
    pub publish_timeout: Duration,
    /// `--pubsub-ack-deadline`: subscriptions' ack deadline (10 s to 600 s).
    pub ack_deadline: Duration,
    /// `--pubsub-topic-retention`: topics' `messageRetentionDuration`.
    pub topic_retention: Duration,
    /// `--pubsub-message-ordering`: subscriptions created with `enableMessageOrdering`.
    pub message_ordering: bool,
}

impl Default for PubsubOptions {
    fn default() -> Self {
        Self {
            publish_timeout: Duration::from_secs(5),
            ack_deadline: Duration::from_secs(30),
            topic_retention: Duration::from_secs(24 * 3600),
            message_ordering: true,
        }
    }
}

impl BusConfig {
    /// The same bus with these Pub/Sub settings (other buses ignore them).
    pub fn with_pubsub_options(self, new: PubsubOptions) -> Self {
        match self {
            BusConfig::Pubsub { project, .. } => BusConfig::Pubsub {
                project,
                options: new,
            },
            other => other,
        }
    }
}

impl FromStr for BusConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "embedded" => Ok(BusConfig::Embedded),
            "memory" => Ok(BusConfig::Memory),
            _ => {
                if let Some(rest) = s.strip_prefix("kafka://") {
                    if rest.is_empty() {
                        return Err("kafka:// needs host:port[,host:port]".into());
                    }
                    Ok(BusConfig::Kafka {
                        brokers: rest.to_owned(),
                    })
                } else if let Some(project) = s.strip_prefix("pubsub://") {
                    if project.is_empty() || project.contains('/') {
                        return Err("pubsub:// needs a project id: pubsub://PROJECT".into());
                    }
                    Ok(BusConfig::Pubsub {
                        project: project.to_owned(),
                        options: PubsubOptions::default(),
                    })
                } else if s.starts_with("nats://") {
                    Ok(BusConfig::Nats { url: s.to_owned() })
                } else {
                    Err(format!(
                        "unknown bus {s:?}: expected embedded, memory, kafka://host:port, nats://host:port or pubsub://PROJECT"
                    ))
                }
            }
        }
    }
}

/// Settings of the embedded bus beyond its directory (`--retention-max-age`,
/// `--retention-max-bytes`, `--segment-bytes`); the other buses refuse them (their servers keep
/// their own retention and files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddedOptions {
    pub retention: Retention,
    /// `None`: [`herald_buses::embedded::config::DEFAULT_SEGMENT_BYTES`].
    pub segment_bytes: Option<u64>,
}

/// Smallest `--segment-bytes`: smaller segments only multiply files and rolls.
pub const MIN_SEGMENT_BYTES: u64 = 64 * 1024;

/// Opens the bus with the embedded bus's defaults (see [`open_with`]).
pub async fn open(
    config: &BusConfig,
    data_dir: &Path,
    kafka_options: &[(String, String)],
) -> Result<Arc<dyn Bus>, BusError> {
    open_with(config, data_dir, kafka_options, EmbeddedOptions::default()).await
}

/// Opens the bus; network buses connect (bounded by their connect timeout).
pub async fn open_with(
    config: &BusConfig,
    data_dir: &Path,
    kafka_options: &[(String, String)],
    embedded: EmbeddedOptions,
) -> Result<Arc<dyn Bus>, BusError> {
    if embedded != EmbeddedOptions::default() && *config != BusConfig::Embedded {
        return Err(BusError::Rejected {
            reason: "--retention-max-age, --retention-max-bytes and --segment-bytes apply to the \
                     embedded bus only (Kafka and NATS keep their own retention and files)"
                .into(),
        });
    }
    match config {
        BusConfig::Embedded => {
            let options = embedded;
            let mut embedded = EmbeddedConfig::new(data_dir);
            embedded.retention = options.retention;
            if let Some(bytes) = options.segment_bytes {
                embedded.segment_bytes = bytes;
            }
            // Recovery reads and fixes files: off the async workers.
            let bus = tokio::task::spawn_blocking(move || EmbeddedBus::open(embedded))
                .await
                .map_err(|e| {
                    BusError::unavailable(format!("opening the embedded bus failed: {e}"))
                })??;
            Ok(Arc::new(bus))
        }
        BusConfig::Memory => Ok(Arc::new(MemoryBus::default())),
        #[cfg(feature = "kafka")]
        BusConfig::Kafka { brokers } => {
            let mut config = herald_buses::kafka::KafkaConfig::new(brokers.clone());
            config.extra.extend(kafka_options.iter().cloned());
            Ok(Arc::new(
                herald_buses::kafka::KafkaBus::connect(config).await?,
            ))
        }
        #[cfg(not(feature = "kafka"))]
        BusConfig::Kafka { .. } => {
            let _ = kafka_options;
            Err(BusError::unavailable(
                "the kafka bus is not compiled into this build of Herald (cargo feature `kafka`)",
            ))
        }
        #[cfg(feature = "nats")]
        BusConfig::Nats { url } => {
            let config = herald_buses::nats::NatsConfig::new(url.clone());
            Ok(Arc::new(
                herald_buses::nats::NatsBus::connect(config).await?,
            ))
        }
        #[cfg(not(feature = "nats"))]
        BusConfig::Nats { .. } => Err(BusError::unavailable(
            "the nats bus is not compiled into this build of Herald (cargo feature `nats`)",
        )),
        #[cfg(feature = "pubsub")]
        BusConfig::Pubsub { project, options } => {
            let mut config = herald_buses::pubsub::PubsubConfig::from_env(project.clone());
            config.publish_timeout = options.publish_timeout;
            config.ack_deadline = options.ack_deadline;
            config.topic_retention = options.topic_retention;
            config.message_ordering = options.message_ordering;
            Ok(Arc::new(
                herald_buses::pubsub::PubsubBus::connect(config).await?,
            ))
        }
        #[cfg(not(feature = "pubsub"))]
        BusConfig::Pubsub { .. } => Err(BusError::unavailable(
            "the pubsub bus is not compiled into this build of Herald (cargo feature `pubsub`)",
        )),
    }
}

/// Parses `--segment-bytes`: like [`crate::units::parse_bytes`], at least [`MIN_SEGMENT_BYTES`].
pub fn parse_segment_bytes(text: &str) -> Result<u64, String> {
    let bytes = crate::units::parse_bytes(text)?;
    if bytes < MIN_SEGMENT_BYTES {
        return Err(format!(
            "segment size {bytes} is below the minimum of {MIN_SEGMENT_BYTES} bytes"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pubsub_buses_name_a_project() {
        assert_eq!(
            "pubsub://my-proj".parse::<BusConfig>(),
            Ok(BusConfig::Pubsub {
                project: "my-proj".into(),
                options: PubsubOptions::default(),
            })
        );
        assert!("pubsub://".parse::<BusConfig>().is_err());
        assert!("pubsub://a/b".parse::<BusConfig>().is_err());
    }

    #[test]
    fn segment_sizes_have_a_minimum() {
        assert_eq!(parse_segment_bytes("64Ki"), Ok(65536));
        assert!(parse_segment_bytes("4Ki").unwrap_err().contains("minimum"));
    }
}
