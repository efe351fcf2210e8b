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
    }
}

/// Parses `--retention-max-age`: a positive whole number with a unit, `s`, `m`, `h` or `d`
/// (`168h`, `7d`).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let err =
        || format!("invalid age {text:?}: expected a positive number and s, m, h or d (e.g. 7d)");
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let number: u64 = text[..unit_at].parse().map_err(|_| err())?;
    let scale = match &text[unit_at..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    match number.checked_mul(scale) {
        Some(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(err()),
    }
}

/// Parses `--retention-max-bytes`: a positive whole number of bytes, optionally with a binary
/// unit `Ki`, `Mi`, `Gi` or `Ti` (`10Gi`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let err = || {
        format!(
            "invalid size {text:?}: expected a positive number of bytes, optionally with Ki, Mi, Gi or Ti"
        )
    };
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..unit_at].parse().map_err(|_| err())?;
    let scale: u64 = match &text[unit_at..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(err()),
    };
    match number.checked_mul(scale) {
        Some(bytes) if bytes > 0 => Ok(bytes),
        _ => Err(err()),
    }
}

/// Parses `--segment-bytes`: like [`parse_bytes`], at least [`MIN_SEGMENT_BYTES`].
pub fn parse_segment_bytes(text: &str) -> Result<u64, String> {
    let bytes = parse_bytes(text)?;
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
    fn retention_limits_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        for bad in [
            "",
            "7",
            "0h",
            "1.5h",
            "7w",
            "-1d",
            "99999999999999999999d",
            "18446744073709551615d",
        ] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_bytes("10Gi"), Ok(10 << 30));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        for bad in ["", "0", "1GB", "-5", "16777216Ti"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_segment_bytes("64Ki"), Ok(65536));
        assert!(parse_segment_bytes("4Ki").unwrap_err().contains("minimum"));
    }
}
