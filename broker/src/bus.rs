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

/// An open bus, plus what readiness and graceful shutdown need of it.
pub enum OpenBus {
    Embedded(Arc<EmbeddedBus>),
    Memory(Arc<MemoryBus>),
    #[cfg(feature = "nats")]
    Nats(Arc<herald_buses::nats::NatsBus>),
    #[cfg(feature = "kafka")]
    Kafka(Arc<herald_buses::kafka::KafkaBus>),
}

impl OpenBus {
    pub fn bus(&self) -> Arc<dyn Bus> {
        match self {
            OpenBus::Embedded(b) => b.clone(),
            OpenBus::Memory(b) => b.clone(),
            #[cfg(feature = "nats")]
            OpenBus::Nats(b) => b.clone(),
            #[cfg(feature = "kafka")]
            OpenBus::Kafka(b) => b.clone(),
        }
    }

    /// Whether the bus can take events now (for `/readyz`).
    pub fn readiness(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        match self {
            #[cfg(feature = "nats")]
            OpenBus::Nats(b) => {
                let b = b.clone();
                Arc::new(move || b.is_connected())
            }
            #[cfg(feature = "kafka")]
            OpenBus::Kafka(b) => {
                // Asking Kafka costs a metadata round trip: a background probe every 5 s
                // keeps `/readyz` cheap.
                let reachable = Arc::new(std::sync::atomic::AtomicBool::new(true));
                let (weak, flag) = (Arc::downgrade(b), reachable.clone());
                tokio::spawn(async move {
                    while let Some(bus) = weak.upgrade() {
                        let ok = bus.reachable(std::time::Duration::from_secs(3)).await;
                        flag.store(ok, std::sync::atomic::Ordering::Release);
                        drop(bus);
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    }
                });
                Arc::new(move || reachable.load(std::sync::atomic::Ordering::Acquire))
            }
            _ => Arc::new(|| true),
        }
    }

    /// Forgets consumer groups of `topic` other than `keep` (triggers removed from the
    /// configuration), so their old cursors do not hold back retention. Only the embedded bus
    /// keeps groups Herald must clean up; Kafka and NATS groups are the operator's.
    pub async fn forget_other_groups(
        &self,
        topic: &str,
        keep: &[&str],
    ) -> Result<Vec<String>, BusError> {
        match self {
            OpenBus::Embedded(b) => b.retain_groups(topic, keep).await,
            _ => Ok(Vec::new()),
        }
    }

    /// Flushes what the bus keeps lazily: the embedded bus's cursors, NATS's queued acks,
    /// Kafka's stored offsets.
    /// Call it after everything else that held the bus is dropped.
    pub async fn close(self) {
        match self {
            OpenBus::Embedded(b) => b.close().await,
            OpenBus::Memory(_) => {}
            #[cfg(feature = "nats")]
            OpenBus::Nats(b) => {
                let flushed = b.flushed();
                drop(b);
                await_flushed("nats acknowledgements", flushed).await;
            }
            #[cfg(feature = "kafka")]
            OpenBus::Kafka(b) => {
                let flushed = b.flushed();
                drop(b);
                await_flushed("kafka offsets", flushed).await;
            }
        }
    }
}

#[cfg(any(feature = "nats", feature = "kafka"))]
async fn await_flushed(what: &str, flushed: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(std::time::Duration::from_secs(5), flushed)
        .await
        .is_err()
    {
        tracing::warn!("{what} not flushed within 5 s; those events will be delivered again");
    }
}

/// Opens the bus; network buses connect (bounded by their connect timeout).
pub async fn open(
    config: &BusConfig,
    data_dir: &Path,
    kafka_options: &[(String, String)],
) -> Result<OpenBus, BusError> {
    match config {
        BusConfig::Embedded => Ok(OpenBus::Embedded(Arc::new(EmbeddedBus::open(
            EmbeddedConfig::new(data_dir),
        )?))),
        BusConfig::Memory => Ok(OpenBus::Memory(Arc::new(MemoryBus::default()))),
        #[cfg(feature = "kafka")]
        BusConfig::Kafka { brokers } => {
            let mut config = herald_buses::kafka::KafkaConfig::new(brokers.clone());
            config.extra.extend(kafka_options.iter().cloned());
            Ok(OpenBus::Kafka(Arc::new(
                herald_buses::kafka::KafkaBus::connect(config).await?,
            )))
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
            Ok(OpenBus::Nats(Arc::new(
                herald_buses::nats::NatsBus::connect(config).await?,
            )))
        }
        #[cfg(not(feature = "nats"))]
        BusConfig::Nats { .. } => Err(BusError::unavailable(
            "the nats bus is not compiled into this build of Herald (cargo feature `nats`)",
        )),
    }
}
