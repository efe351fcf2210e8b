//! `herald parked list|show|redrive|purge --trigger NS/NAME` (or `--subscription NS/NAME`):
//! a trigger's (a subscription's) parking lot.
//!
//! On a stopped Herald (or any network bus) the command opens the bus itself from `--bus` and
//! `--data-dir`; a running embedded Herald locks its data directory, so with `--url` (and
//! `--admin-token-file`) the command asks the running Herald's admin endpoints instead.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use cloudevents::{AttributesReader, Event};

use herald::bus::BusConfig;
use herald::dispatch::admin::{DEFAULT_LIST, MAX_LIST, TakeAnswer, TakeRequest};
use herald::dispatch::parked::{ParkingLot, Selection};

#[derive(Debug, clap::Args)]
pub struct ParkedArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print parked events (structured JSON, one per line), oldest first.
    List {
        /// Print at most this many.
        #[arg(long, default_value_t = DEFAULT_LIST)]
        limit: usize,
    },
    /// Print one parked event (looked for among the first --limit).
    Show {
        #[arg(long)]
        id: String,
        #[arg(long, default_value_t = MAX_LIST)]
        limit: usize,
    },
    /// Deliver parked events to this trigger again (its redrive topic), removing them from
    /// the parking lot.
    Redrive(Which),
    /// Delete parked events for good.
    Purge(Which),
}

/// The events to take: always named.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct Which {
    /// The event id (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Every parked event of the trigger.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The trigger, `namespace/name`.
    #[arg(long, global = true, value_parser = parse_trigger)]
    trigger: Option<(String, String)>,
    /// A subscription (a flow's step too, e.g. `ns/flow-kn-sequence-1`), `namespace/name`,
    /// instead of a trigger.
    #[arg(long, global = true, value_parser = parse_trigger, conflicts_with = "trigger")]
    subscription: Option<(String, String)>,
    /// A running Herald's base URL, e.g. http://127.0.0.1:8080 (needs --admin-token-file);
    /// without it the bus is opened directly.
    #[arg(long, global = true)]
    url: Option<String>,
    /// The file holding the running Herald's admin bearer token.
    #[arg(long, global = true, env = "HERALD_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// A running Herald's management API (instead of --url): the parking lot is
    /// `/apis/herald.dev/v1alpha1/namespaces/{ns}/triggers/{name}/parked` there.
    #[arg(long, global = true, env = "HERALD_SERVER", conflicts_with = "url")]
    server: Option<String>,
    /// The API's bearer token for --server (or --token-file, or HERALD_TOKEN).
    #[arg(long, global = true, env = "HERALD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the API's bearer token for --server.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// The bus, as for `herald serve`.
    #[arg(long, global = true, env = "HERALD_BUS", default_value = "embedded")]
    bus: BusConfig,
    /// The data directory of the embedded bus, as for `herald serve`.
    #[arg(
        long,
        global = true,
        env = "HERALD_DATA_DIR",
        default_value = "./herald-data"
    )]
    data_dir: PathBuf,
    /// Extra librdkafka option for the Kafka bus, as for `herald serve` (repeatable; the
    /// environment variable takes a comma-separated list).
    #[arg(long = "kafka-option", global = true, env = "HERALD_KAFKA_OPTIONS", value_delimiter = ',', value_name = "KEY=VALUE", value_parser = super::parse_key_value)]
    kafka_options: Vec<(String, String)>,
    /// How long reading the parking lot waits for one more event before it ends, in ms.
    #[arg(long, global = true, default_value_t = 1000)]
    wait_ms: u64,
}

pub(super) fn parse_trigger(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{text:?} is not namespace/name")),
    }
}

pub async fn parked(args: ParkedArgs) -> anyhow::Result<()> {
    let (namespace, name) = match (&args.target.trigger, &args.target.subscription) {
        (Some(t), _) | (None, Some(t)) => t.clone(),
        (None, None) => bail!("--trigger (or --subscription) namespace/name is required"),
    };
    if let Action::List { limit } | Action::Show { limit, .. } = &args.action
        && *limit > MAX_LIST
    {
        bail!("--limit {limit} is above {MAX_LIST}");
    }
    let kind = match args.target.subscription {
        Some(_) => "subscriptions",
        None => "triggers",
    };
    if let Some(server) = &args.target.server {
        let token = match (&args.target.token, &args.target.token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(file)) => tokio::fs::read_to_string(file)
                .await
                .with_context(|| format!("reading {}", file.display()))?,
            (None, None) => bail!("--server needs --token-file, --token or HERALD_TOKEN"),
        };
        let base = format!(
            "{}/apis/herald.dev/v1alpha1/namespaces/{namespace}/{kind}/{name}/parked",
            server.trim_end_matches('/')
        );
        return over_http(&args, base, token.trim()).await;
    }
    match &args.target.url {
        Some(url) => {
            let Some(file) = &args.target.admin_token_file else {
                bail!("--url needs --admin-token-file");
            };
            let token = tokio::fs::read_to_string(file)
                .await
                .with_context(|| format!("reading {}", file.display()))?;
            let base = format!(
                "{}/admin/{kind}/{namespace}/{name}/parked",
                url.trim_end_matches('/')
            );
            over_http(&args, base, token.trim()).await
        }
        None => on_bus(&args, &namespace, &name).await,
    }
}

async fn on_bus(args: &ParkedArgs, namespace: &str, name: &str) -> anyhow::Result<()> {
    let bus = herald::bus::open(
        &args.target.bus,
        &args.target.data_dir,
        &args.target.kafka_options,
    )
    .await
    .context("opening the bus (for a running embedded Herald, use --url and --admin-token-file)")?;
    let lot = match args.target.subscription {
        Some(_) => ParkingLot::subscription(namespace, name),
        None => ParkingLot::new(namespace, name),
    };
    let idle = Duration::from_millis(args.target.wait_ms);
    let result = match &args.action {
        Action::List { limit } => lot.list(&*bus, *limit, idle).await.map(|events| {
            print_events(&events);
        }),
        Action::Show { id, limit } => lot.list(&*bus, *limit, idle).await.map(|events| {
            show(&events, id);
        }),
        Action::Redrive(which) | Action::Purge(which) => {
            let redrive = matches!(args.action, Action::Redrive(_));
            lot.take(&*bus, &selection(which), redrive, idle)
                .await
                .map(|taken| {
                    print_taken(&TakeAnswer {
                        taken: taken.taken.iter().map(|e| e.id().to_owned()).collect(),
                        missing: taken.missing,
                    })
                })
        }
    };
    // Flushes the acknowledgements (purge, redrive) before the process ends.
    bus.close().await;
    result.map_err(Into::into)
}

fn selection(which: &Which) -> Selection {
    if which.all {
        Selection::All
    } else {
        Selection::Ids(which.ids.iter().cloned().collect::<BTreeSet<_>>())
    }
}

fn print_events(events: &[Event]) {
    for event in events {
        println!("{}", serde_json::to_string(event).unwrap_or_default());
    }
}

fn show(events: &[Event], id: &str) {
    match events.iter().find(|e| e.id() == id) {
        Some(event) => println!(
            "{}",
            serde_json::to_string_pretty(event).unwrap_or_default()
        ),
        None => eprintln!("no parked event with id {id:?}"),
    }
}

fn print_taken(answer: &TakeAnswer) {
    for id in &answer.taken {
        println!("{id}");
    }
    for id in &answer.missing {
        eprintln!("not parked: {id:?}");
    }
}

/// Asks a running Herald's parking-lot endpoints under `base` (the admin path or the API's).
async fn over_http(args: &ParkedArgs, base: String, token: &str) -> anyhow::Result<()> {
    let (method, uri, body) = match &args.action {
        Action::List { limit } | Action::Show { limit, .. } => {
            ("GET", format!("{base}?limit={limit}"), Bytes::new())
        }
        Action::Redrive(which) | Action::Purge(which) => {
            let action = if matches!(args.action, Action::Redrive(_)) {
                "redrive"
            } else {
                "purge"
            };
            let request = TakeRequest {
                ids: which.ids.clone(),
                all: which.all,
            };
            (
                "POST",
                format!("{base}/{action}"),
                Bytes::from(serde_json::to_vec(&request)?),
            )
        }
    };
    let body = super::admin_http::request(method, &uri, token, body).await?;
    match &args.action {
        Action::List { .. } | Action::Show { .. } => {
            #[derive(serde::Deserialize)]
            struct Listed {
                events: Vec<Event>,
            }
            let listed: Listed = serde_json::from_slice(&body).context("reading the answer")?;
            match &args.action {
                Action::Show { id, .. } => show(&listed.events, id),
                _ => print_events(&listed.events),
            }
        }
        _ => print_taken(&serde_json::from_slice(&body).context("reading the answer")?),
    }
    Ok(())
}
