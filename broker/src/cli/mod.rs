//! Command-line interface: `serve`, `send`, `bench`, `parked`, and `apply`, `get`,
//! `describe`, `delete` over the management API.

mod admin_http;
mod api_client;
mod api_serve;
mod auth;
mod bench;
mod outbound;
mod parked;
mod pause;
mod replay;
mod resources;
mod send;
mod tls;
mod yaml;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use herald::bus::BusConfig;
use herald::config::{self, Config};
use herald::{ServeOptions, run};

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "A CloudEvents broker with Knative Eventing's data plane"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; the size of the parsed command does not matter"
)]
enum Command {
    /// Run the broker: ingress, triggers and delivery on one listener.
    // Boxed: its flags outweigh every other command's many times over.
    Serve(Box<ServeArgs>),
    /// Publish one CloudEvent to a broker URL and print the answer.
    Send(send::SendArgs),
    /// A trigger's parking lot (events whose delivery failed for good): list, show, redrive,
    /// purge.
    Parked(parked::ParkedArgs),
    /// Create or replace resources from manifests through the management API.
    Apply(resources::ApplyArgs),
    /// List resources (brokers, triggers, sources, ...) or show one, through the API.
    Get(resources::GetArgs),
    /// One resource in words: conditions, subscriber, filter, origin.
    Describe(resources::DescribeArgs),
    /// Delete a resource created through the API.
    Delete(resources::DeleteArgs),
    /// Stop delivering to a trigger of a running Herald; it keeps its position (durable
    /// across restarts).
    Pause(pause::PauseArgs),
    /// Deliver again to a paused trigger, from where it stopped, in order.
    Resume(pause::PauseArgs),
    /// Deliver the events a trigger's broker received in a time window again, to that
    /// trigger only (marked with the extension heraldreplay).
    Replay(replay::ReplayArgs),
    /// Load-test Herald and print throughput and latency as ratios of a no-op server.
    Bench(bench::BenchArgs),
    /// The no-op HTTP server `herald bench` measures against (answers 202, does nothing).
    #[command(hide = true)]
    BenchNoop {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Knative manifests (Broker, Trigger, PingSource, ApiServerSource, GitHubSource) to load: a file or a directory of *.yaml files.
    /// Repeatable. Without any, broker default/default exists and no triggers run.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    files: Vec<PathBuf>,
    /// Address to listen on for events, health and metrics.
    #[arg(long, env = "HERALD_LISTEN", default_value = "0.0.0.0:8080")]
    listen: String,
    /// Where events are stored: embedded (durable, files under --data-dir), memory (no
    /// durability), kafka://host:port[,host:port], nats://host:port or pubsub://PROJECT
    /// (the emulator at `PUBSUB_EMULATOR_HOST` if set, else Google Cloud with Application
    /// Default Credentials).
    #[arg(long, env = "HERALD_BUS", default_value = "embedded")]
    bus: BusConfig,
    /// Extra librdkafka option for `--bus kafka://` (repeatable): `KEY=VALUE` for every client,
    /// `producer.KEY=VALUE` or `consumer.KEY=VALUE` for one kind, e.g.
    /// `security.protocol=SASL_SSL`. Options Herald's guarantees rest on are refused.
    /// The environment variable takes a comma-separated list.
    // `hide_env_values`: `--help` would otherwise print the variable's value (SASL passwords).
    #[arg(long = "kafka-option", env = "HERALD_KAFKA_OPTIONS", hide_env_values = true, value_delimiter = ',', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    kafka_options: Vec<(String, String)>,
    /// Pub/Sub bus: how long a publish waits for Pub/Sub's acknowledgement before ingress
    /// answers 503.
    #[arg(long, env = "HERALD_PUBSUB_PUBLISH_TIMEOUT", default_value = "5s", value_parser = herald::units::parse_duration)]
    pubsub_publish_timeout: std::time::Duration,
    /// Pub/Sub bus: the ack deadline of the subscriptions Herald creates (10s to 600s); held
    /// deliveries are extended every third of it, a killed replica's come back after it.
    #[arg(long, env = "HERALD_PUBSUB_ACK_DEADLINE", default_value = "30s", value_parser = herald::units::parse_duration)]
    pubsub_ack_deadline: std::time::Duration,
    /// Pub/Sub bus: `messageRetentionDuration` of the topics Herald creates, how far back a
    /// new trigger can start (`herald.dev/startFrom`).
    #[arg(long, env = "HERALD_PUBSUB_TOPIC_RETENTION", default_value = "24h", value_parser = herald::units::parse_duration)]
    pubsub_topic_retention: std::time::Duration,
    /// Pub/Sub bus: create subscriptions with message ordering (one `partitionkey`'s events in
    /// order). The emulator cannot start those at `earliest` or a time.
    #[arg(long, env = "HERALD_PUBSUB_MESSAGE_ORDERING", default_value_t = true, action = clap::ArgAction::Set)]
    pubsub_message_ordering: bool,
    /// Directory of the embedded bus and of the sources' state (under `sources/`).
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "./herald-data")]
    data_dir: PathBuf,
    /// Where `secretKeyRef {name, key}` is read: the file `{secrets-dir}/{name}/{key}`, the
    /// way Kubernetes mounts a secret.
    #[arg(long, env = "HERALD_SECRETS_DIR", default_value = config::DEFAULT_SECRETS_DIR)]
    secrets_dir: PathBuf,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "HERALD_MAX_BODY", default_value_t = herald::ingress::DEFAULT_MAX_BODY)]
    max_body: usize,
    /// Events each trigger has in flight at most.
    #[arg(long, env = "HERALD_DELIVERY_WINDOW", default_value_t = herald::dispatch::DEFAULT_WINDOW)]
    delivery_window: usize,
    /// Embedded bus: delete sealed segments older than this even if a trigger has not consumed
    /// them (`7d`, `168h`; counted in herald_events_expired_total). Default: keep until consumed.
    #[arg(long, env = "HERALD_RETENTION_MAX_AGE", value_parser = herald::units::parse_duration)]
    retention_max_age: Option<std::time::Duration>,
    /// Embedded bus: delete the oldest sealed segments while a broker's log holds more than
    /// this (`10Gi`), consumed or not. Default: no limit.
    #[arg(long, env = "HERALD_RETENTION_MAX_BYTES", value_parser = herald::units::parse_bytes)]
    retention_max_bytes: Option<u64>,
    /// Embedded bus: size at which a segment file is sealed and the next begins (`32Mi`,
    /// at least `64Ki`); segments are preallocated at this size and retention deletes whole ones.
    #[arg(long, env = "HERALD_SEGMENT_BYTES", value_parser = herald::bus::parse_segment_bytes)]
    segment_bytes: Option<u64>,
    /// Most extensions one event may carry (more: 400).
    #[arg(long, env = "HERALD_MAX_EXTENSIONS", default_value_t = herald::binding::limits::DEFAULT_MAX_EXTENSIONS)]
    max_extensions: usize,
    /// Most bytes of attribute names and values one event may carry (more: 400).
    #[arg(long, env = "HERALD_MAX_ATTRIBUTES_BYTES", default_value_t = herald::binding::limits::DEFAULT_MAX_ATTRIBUTES_BYTES)]
    max_attributes_bytes: usize,
    /// Time a connection has to send a request's headers, counted from when it starts
    /// waiting for them (so also the keep-alive idle timeout), e.g. `10s`, `500ms`.
    #[arg(long, env = "HERALD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = herald::units::parse_duration)]
    header_read_timeout: std::time::Duration,
    /// Time a request has to send its whole body (then 408 and the connection is closed).
    #[arg(long, env = "HERALD_BODY_READ_TIMEOUT", default_value = "30s", value_parser = herald::units::parse_duration)]
    body_read_timeout: std::time::Duration,
    /// Most connections open at once; lowered to leave a quarter of the descriptor limit
    /// (at least 64) free. Further connections wait in the listen backlog.
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", default_value_t = herald::listener::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Most request-body bytes in flight (being received, or not yet answered), all
    /// connections together, counted with hyper's read buffers (beyond: 503 with Retry-After).
    #[arg(long, env = "HERALD_MAX_BODY_BYTES_IN_FLIGHT", default_value_t = herald::listener::DEFAULT_MAX_BODY_BYTES_IN_FLIGHT)]
    max_body_bytes_in_flight: usize,
    /// Longest attribute value a source takes from a GitHub payload or a Kubernetes object, in
    /// bytes (at least 64): longer values are cut, control characters percent-encoded, so
    /// ingress never refuses a source's event; the data keeps the original.
    #[arg(long, env = "HERALD_SOURCE_ATTRIBUTE_MAX_BYTES", default_value_t = herald_sources::attribute::DEFAULT_MAX_VALUE_BYTES, value_parser = parse_attribute_max)]
    source_attribute_max_bytes: usize,
    /// CloudPubSubSource: the ack deadline of the subscription Herald creates (10s to 600s),
    /// longer than a sink's retries take, so a message is not redelivered while its event is
    /// still being sent.
    #[arg(long, env = "HERALD_PUBSUB_SOURCE_ACK_DEADLINE", default_value = "600s", value_parser = herald::units::parse_duration)]
    pubsub_source_ack_deadline: std::time::Duration,
    /// CloudPubSubSource: messages one pull asks for.
    #[arg(long, env = "HERALD_PUBSUB_SOURCE_PULL_MAX", default_value_t = 64)]
    pubsub_source_pull_max: u32,
    /// A file holding the bearer token of the admin endpoints (`herald parked --url`); without
    /// it they are not served.
    #[arg(long, env = "HERALD_ADMIN_TOKEN_FILE", value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    #[command(flatten)]
    tls: tls::TlsArgs,
    #[command(flatten)]
    auth: auth::AuthArgs,
    #[command(flatten)]
    outbound: outbound::OutboundArgs,
    /// How often the `-f` files are compared with what runs, and a change applied (`1s`,
    /// `500ms`); `0s`: only on SIGHUP.
    #[arg(long, env = "HERALD_CONFIG_POLL_INTERVAL", default_value = "1s", value_parser = parse_poll_interval)]
    config_poll_interval: std::time::Duration,
    /// How often each trigger's backlog is asked of the bus, so that a paused or stuck
    /// trigger's lag keeps growing; `0s`: never.
    #[arg(long, env = "HERALD_LAG_PROBE_INTERVAL", default_value = "1s", value_parser = parse_poll_interval)]
    lag_probe_interval: std::time::Duration,
    #[command(flatten)]
    api: api_serve::ApiServeArgs,
}

pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Send(args) => send::send(args).await,
        Command::Bench(args) => bench::bench(args).await,
        Command::Parked(args) => parked::parked(args).await,
        Command::Apply(args) => resources::apply(args).await,
        Command::Get(args) => resources::get(args).await,
        Command::Describe(args) => resources::describe(args).await,
        Command::Delete(args) => resources::delete(args).await,
        Command::Pause(args) => pause::run(args, true).await,
        Command::Resume(args) => pause::run(args, false).await,
        Command::Replay(args) => replay::run(args).await,
        Command::BenchNoop { listen } => bench::noop_server(listen).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let load = config::LoadOptions {
        secrets_dir: args.secrets_dir.clone(),
    };
    let (config, texts) = if args.files.is_empty() {
        (Config::default_broker(), Vec::new())
    } else {
        // Reading manifests and secrets is file I/O: off the async workers.
        let (files, load) = (args.files.clone(), load.clone());
        tokio::task::spawn_blocking(move || {
            let texts = config::read_files(&files)?;
            config::resolve_all(&texts, &[], &load).map(|config| (config, texts))
        })
        .await??
    };
    let embedded = herald::bus::EmbeddedOptions {
        retention: herald_buses::embedded::Retention {
            max_age: args.retention_max_age,
            max_bytes: args.retention_max_bytes,
        },
        segment_bytes: args.segment_bytes,
    };
    let bus_config = args
        .bus
        .clone()
        .with_pubsub_options(herald::bus::PubsubOptions {
            publish_timeout: args.pubsub_publish_timeout,
            ack_deadline: args.pubsub_ack_deadline,
            topic_retention: args.pubsub_topic_retention,
            message_ordering: args.pubsub_message_ordering,
        });
    let bus = herald::bus::open_with(&bus_config, &args.data_dir, &args.kafka_options, embedded)
        .await
        .context("opening the bus")?;
    let admin_token = match &args.admin_token_file {
        Some(file) => Some(read_admin_token(file).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let mut options = ServeOptions {
        max_body: args.max_body,
        window: args.delivery_window.max(1),
        jitter: true,
        lag_probe: args.lag_probe_interval,
        state_dir: herald::sources::state_dir(&args.data_dir),
        limits: herald::binding::AttributeLimits {
            max_extensions: args.max_extensions,
            max_attributes_bytes: args.max_attributes_bytes,
        },
        listener: herald::listener::ListenerOptions {
            header_read_timeout: args.header_read_timeout,
            body_read_timeout: args.body_read_timeout,
            max_connections: args.max_connections,
            max_body_bytes_in_flight: args.max_body_bytes_in_flight,
        },
        source_attribute_max_bytes: args.source_attribute_max_bytes,
        pubsub_source: herald::sources::PubsubSourceOptions {
            ack_deadline: args.pubsub_source_ack_deadline,
            pull_max: args.pubsub_source_pull_max,
        },
        admin_token,
        tls: args.tls.options(),
        auth: args.auth.options(),
        outbound: Some(args.outbound.load(&args.listen, &args.data_dir).await?),
        config_files: herald::ConfigFiles {
            paths: args.files.clone(),
            texts,
            load,
            poll_interval: (!args.config_poll_interval.is_zero())
                .then_some(args.config_poll_interval),
            pause_file: Some(args.data_dir.join("live").join("paused.json")),
        },
        api: Some(
            args.api
                .options(&args.data_dir, &args.bus, &args.kafka_options),
        ),
    };
    // A verified client certificate is a sender identity: authorization applies with it even
    // when no OIDC issuer or policy is configured.
    options.auth.client_certificates = options
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_ca.is_some());
    let listeners = herald::Listeners {
        public: listener,
        admin: args.tls.bind_admin().await?,
    };
    run(listeners, config, bus, options, shutdown_signal()).await
}

/// A duration, or `0`/`0s` for "do not poll".
fn parse_poll_interval(text: &str) -> Result<std::time::Duration, String> {
    match text.trim() {
        "0" | "0s" => Ok(std::time::Duration::ZERO),
        other => herald::units::parse_duration(other).map_err(|e| e.to_string()),
    }
}

/// At least 64 bytes, so a Kubernetes uid (36) and resourceVersion stay whole in an event id.
fn parse_attribute_max(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 64 => Ok(n),
        Ok(n) => Err(format!("{n} is below the minimum of 64 bytes")),
        Err(e) => Err(format!("not a byte count: {e}")),
    }
}

/// The admin token: the file's content without surrounding white space, at least 16 bytes.
async fn read_admin_token(file: &std::path::Path) -> anyhow::Result<String> {
    let text = tokio::fs::read_to_string(file)
        .await
        .with_context(|| format!("reading --admin-token-file {}", file.display()))?;
    let token = text.trim();
    if token.len() < 16 {
        anyhow::bail!(
            "--admin-token-file {}: the token has {} bytes, at least 16 are needed",
            file.display(),
            token.len()
        );
    }
    Ok(token.to_owned())
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed now, not when the future is
/// first polled: a SIGTERM that comes right after `/readyz` answered 200 must stop Herald
/// gracefully, not kill it with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    async move {
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let int = async {
            match int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => {},
            _ = int => {},
        }
    }
}
