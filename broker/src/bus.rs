//! Which bus to run on, parsed once from `--bus`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use herald_buses::embedded::{EmbeddedBus, EmbeddedConfig};
use herald_buses::memory::MemoryBus;
use herald_buses::{Bus, BusError};

/// The `--bus` setting. Every variant always parses; buses not compiled in say so when opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusConfig {
    Embedded,
    Memory,
    Kafka { brokers: String },
    Nats { url: String },
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
                } else if s.starts_with("nats://") {
                    Ok(BusConfig::Nats { url: s.to_owned() })
                } else {
                    Err(format!(
                        "unknown bus {s:?}: expected embedded, memory, kafka://host:port or nats://host:port"
                    ))
                }
            }
        }
    }
}

/// Opens the bus; network buses connect (bounded by their connect timeout).
pub async fn open(
    config: &BusConfig,
    data_dir: &Path,
    kafka_options: &[(String, String)],
) -> Result<Arc<dyn Bus>, BusError> {
    match config {
        BusConfig::Embedded => Ok(Arc::new(EmbeddedBus::open(EmbeddedConfig::new(data_dir))?)),
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
    }
}
