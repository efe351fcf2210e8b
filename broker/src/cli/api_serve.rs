//! `herald serve` flags of the management API (served with `--admin-token-file`).

use std::path::Path;

use herald::api::StoreConfig;
use herald::bus::BusConfig;

/// Management API settings.
#[derive(Debug, clap::Args)]
pub struct ApiServeArgs {
    /// Largest request body the management API reads (`1Mi`; larger: 413 Status).
    #[arg(long, env = "HERALD_API_MAX_BODY", default_value = "1Mi", value_parser = herald::units::parse_bytes)]
    api_max_body: u64,
    /// Most resources created through the management API, all kinds together (more: 403).
    #[arg(long, env = "HERALD_API_MAX_OBJECTS", default_value_t = herald::api::DEFAULT_MAX_OBJECTS)]
    api_max_objects: usize,
    /// How often an open watch compares resources' status (and the `-f` files' resources)
    /// with what it last sent, and reports the difference (`1s`).
    #[arg(long, env = "HERALD_API_WATCH_STATUS_INTERVAL", default_value = "1s", value_parser = herald::units::parse_duration)]
    api_watch_status_interval: std::time::Duration,
    /// The longest a watch stays open (`30m`); a client's `timeoutSeconds` may ask for less.
    #[arg(long, env = "HERALD_API_WATCH_MAX", default_value = "30m", value_parser = herald::units::parse_duration)]
    api_watch_max: std::time::Duration,
    /// With `--bus nats://`: the JetStream key-value bucket holding the API's resources,
    /// shared by every replica.
    #[arg(long, env = "HERALD_API_NATS_BUCKET", default_value = "herald-api")]
    api_nats_bucket: String,
    /// With `--bus nats://`: how long connecting to NATS and opening that bucket may take at
    /// start (`10s`).
    #[arg(long, env = "HERALD_API_NATS_CONNECT_TIMEOUT", default_value = "10s", value_parser = herald::units::parse_duration)]
    api_nats_connect_timeout: std::time::Duration,
    /// With `--bus kafka://`: the compacted topic holding the API's resources, shared by
    /// every replica.
    #[arg(long, env = "HERALD_API_KAFKA_TOPIC", default_value = "herald-api")]
    api_kafka_topic: String,
    /// With `--bus kafka://`: how long one request of the API's store may take (creating its
    /// topic, a write, reading it at start) (`10s`).
    #[arg(long, env = "HERALD_API_KAFKA_TIMEOUT", default_value = "10s", value_parser = herald::units::parse_duration)]
    api_kafka_timeout: std::time::Duration,
    /// The audience an OIDC token must carry to use the management API.
    #[arg(long, env = "HERALD_API_AUDIENCE", default_value = herald::auth::admin::DEFAULT_API_AUDIENCE)]
    api_audience: String,
    /// A subject (`sub`) whose OIDC tokens (of an --oidc-issuer, for --api-audience) may use
    /// the management API besides the admin token; repeatable. None by default: trusting an
    /// issuer never makes its subjects administrators by itself.
    #[arg(
        long = "api-subject",
        env = "HERALD_API_SUBJECTS",
        value_delimiter = ','
    )]
    api_subjects: Vec<String>,
}

impl ApiServeArgs {
    /// The API's settings; its resources live where `bus` keeps events (`kafka_options` as
    /// for the Kafka bus).
    #[cfg_attr(
        not(feature = "kafka"),
        allow(unused_variables, reason = "only the Kafka store takes them")
    )]
    pub fn options(
        &self,
        data_dir: &Path,
        bus: &BusConfig,
        kafka_options: &[(String, String)],
    ) -> herald::api::ApiOptions {
        let store = match bus {
            #[cfg(feature = "nats")]
            BusConfig::Nats { url } => StoreConfig::Nats {
                url: url.clone(),
                bucket: self.api_nats_bucket.clone(),
                connect_timeout: self.api_nats_connect_timeout,
            },
            #[cfg(feature = "kafka")]
            BusConfig::Kafka { brokers } => {
                let mut config = herald_buses::kafka::KafkaConfig::new(brokers.clone());
                config.extra.extend(kafka_options.iter().cloned());
                StoreConfig::Kafka {
                    config,
                    topic: self.api_kafka_topic.clone(),
                    timeout: self.api_kafka_timeout,
                }
            }
            _ => StoreConfig::Dir(data_dir.to_owned()),
        };
        herald::api::ApiOptions {
            store,
            max_objects: self.api_max_objects,
            max_body: usize::try_from(self.api_max_body).unwrap_or(usize::MAX),
            watch_status_interval: self
                .api_watch_status_interval
                .max(std::time::Duration::from_millis(10)),
            watch_max: self.api_watch_max,
            access: herald::auth::admin::ApiAccess {
                audience: self.api_audience.clone(),
                subjects: self.api_subjects.iter().cloned().collect(),
            },
        }
    }
}
