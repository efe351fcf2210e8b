//! Command-line interface: `serve`, `send`, `bench`, `parked`.

mod bench;
mod parked;
mod send;

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
enum Command {
    /// Run the broker: ingress, triggers and delivery on one listener.
    Serve(ServeArgs),
    /// Publish one CloudEvent to a broker URL and print the answer.
    Send(send::SendArgs),
    /// A trigger's parking lot (events whose delivery failed for good): list, show, redrive,
    /// purge.
    Parked(parked::ParkedArgs),
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
    /// durability), kafka://host:port[,host:port] or nats://host:port.
    #[arg(long, env = "HERALD_BUS", default_value = "embedded")]
    bus: BusConfig,
    /// Extra librdkafka option for `--bus kafka://` (repeatable): `KEY=VALUE` for every client,
    /// `producer.KEY=VALUE` or `consumer.KEY=VALUE` for one kind, e.g.
    /// `security.protocol=SASL_SSL`. Options Herald's guarantees rest on are refused.
    /// The environment variable takes a comma-separated list.
    #[arg(long = "kafka-option", env = "HERALD_KAFKA_OPTIONS", value_delimiter = ',', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    kafka_options: Vec<(String, String)>,
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
    /// A file holding the bearer token of the admin endpoints (`herald parked --url`); without
    /// it they are not served.
    #[arg(long, env = "HERALD_ADMIN_TOKEN_FILE", value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
}

pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Send(args) => send::send(args).await,
        Command::Bench(args) => bench::bench(args).await,
        Command::Parked(args) => parked::parked(args).await,
        Command::BenchNoop { listen } => bench::noop_server(listen).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = if args.files.is_empty() {
        Config::default_broker()
    } else {
        let options = config::LoadOptions {
            secrets_dir: args.secrets_dir.clone(),
        };
        config::load_paths_with(&args.files, &options)?
    };
    let bus = herald::bus::open(&args.bus, &args.data_dir, &args.kafka_options)
        .await
        .context("opening the bus")?;
    let admin_token = match &args.admin_token_file {
        Some(file) => Some(read_admin_token(file).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let options = ServeOptions {
        max_body: args.max_body,
        window: args.delivery_window.max(1),
        jitter: true,
        state_dir: herald::sources::state_dir(&args.data_dir),
        admin_token,
    };
    run(listener, config, bus, options, shutdown_signal()).await
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
