//! Which bus to run on, parsed once from `--bus`.

use std::path::PathBuf;
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

/// An open bus, plus what graceful shutdown must do to it.
pub enum OpenBus {
    Embedded(Arc<EmbeddedBus>),
    Other(Arc<dyn Bus>),
}

impl OpenBus {
    pub fn bus(&self) -> Arc<dyn Bus> {
        match self {
            OpenBus::Embedded(b) => b.clone(),
            OpenBus::Other(b) => b.clone(),
        }
    }

    /// Flushes what the bus keeps lazily (consumer cursors).
    pub async fn close(&self) {
        if let OpenBus::Embedded(b) = self {
            b.close().await;
        }
    }
}

pub fn open(config: &BusConfig, data_dir: &PathBuf) -> Result<OpenBus, BusError> {
    match config {
        BusConfig::Embedded => Ok(OpenBus::Embedded(Arc::new(EmbeddedBus::open(
            EmbeddedConfig::new(data_dir),
        )?))),
        BusConfig::Memory => Ok(OpenBus::Other(Arc::new(MemoryBus::default()))),
        BusConfig::Kafka { .. } => Err(BusError::unavailable(
            "the kafka bus is not compiled into this build of Herald",
        )),
        BusConfig::Nats { .. } => Err(BusError::unavailable(
            "the nats bus is not compiled into this build of Herald",
        )),
    }
}
