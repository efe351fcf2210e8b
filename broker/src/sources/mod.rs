//! Running the configured sources: GitHub webhook endpoints, Ping schedulers and
//! ApiServerSource watchers, each handing its events to the sink its `spec.sink` names.
//!
//! # Layout
//! - [`sink`]: [`sink::BrokerSink`] (in-process ingress), [`sink::UrlSink`] (HTTP with retries)
//!   and [`sink::MeteredSink`] (the per-source counters).
//! - [`github`]: `POST /sources/{namespace}/{name}`.
//! - [`start`]: opens the GitHub delivery logs and spawns the schedulers and watchers.
//!
//! State lives under one directory (`{--data-dir}/sources` by default): `github/` (delivery
//! logs), `ping/` (last emitted scheduled time), `apiserver/` (objects seen per resource).
//! At start, the state of sources that are no longer configured is removed (logged).

pub mod github;
#[cfg(feature = "pubsub")]
pub mod pubsub;
pub mod sink;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use herald_sources::Sink;
use herald_sources::cleanup::{self, API_SERVER_DIR, GITHUB_DIR, Kept, PING_DIR};
use herald_sources::github::{DEFAULT_CAPACITY, DeliveryLog, GitHubConfig};
use herald_sources::kubernetes::ApiServerConfig;
use herald_sources::kubernetes::watcher::{self, EventFilter};
use herald_sources::ping::{self, Clock, PingOutcome};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{DeliveryPolicy, SourceConfig, SourceKind, Target};
use crate::dispatch::sender::Sender;
use crate::filter::Filter;
use crate::ingress::Ingress;
use crate::metrics::SourceMetrics;

use self::github::{GitHubEndpoint, GitHubEndpoints};
use self::sink::{BrokerSink, MeteredSink, UrlSink};

/// How long a GitHub webhook's URL sink may take: GitHub gives up on a delivery after 10 s.
pub const GITHUB_SINK_BUDGET: Duration = Duration::from_secs(8);
/// The longest pause between attempts to build a Kubernetes client.
const KUBE_CLIENT_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What the sources need from the server around them.
pub struct SourceEnv {
    pub ingress: Arc<Ingress>,
    pub sender: Sender,
    /// Root of the sources' persisted state.
    pub state_dir: PathBuf,
    /// `Clock::System` in production; tests under paused time start a fixed clock.
    pub clock: Clock,
    pub jitter: bool,
    /// The longest attribute value a source takes from a payload or object
    /// (`--source-attribute-max-bytes`).
    pub attribute_max_bytes: usize,
    /// CloudPubSubSource pulls.
    pub pubsub: PubsubSourceOptions,
}

/// How CloudPubSubSources pull (`--pubsub-source-ack-deadline`, `--pubsub-source-pull-max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PubsubSourceOptions {
    pub ack_deadline: Duration,
    pub pull_max: u32,
}

impl Default for PubsubSourceOptions {
    fn default() -> Self {
        Self {
            ack_deadline: Duration::from_secs(600),
            pull_max: 64,
        }
    }
}

/// The running sources: the webhook endpoints to route, and the background tasks to await.
pub struct Started {
    pub github: Arc<GitHubEndpoints>,
    pub tasks: JoinSet<()>,
}

/// Opens every GitHubSource's delivery log and spawns every Ping scheduler and ApiServerSource
/// watcher; they stop when `shutdown` turns true.
pub async fn start(
    sources: &[SourceConfig],
    env: &SourceEnv,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Started> {
    remove_unconfigured_state(sources, &env.state_dir).await;
    let mut github = GitHubEndpoints::empty(env.ingress.max_body);
    let mut tasks = JoinSet::new();
    for source in sources {
        let label = source.to_string();
        let metrics = SourceMetrics::new(env.ingress.metrics.clone(), label, source.kind_name());
        let sink = |budget, permanent_is_rejection| -> Arc<dyn Sink> {
            Arc::new(MeteredSink {
                inner: sink_for(source, env, budget),
                metrics: metrics.clone(),
                permanent_is_rejection,
            })
        };
        match &source.kind {
            SourceKind::GitHub(config) => {
                let log = DeliveryLog::open(
                    &env.state_dir.join(GITHUB_DIR),
                    &config.namespace,
                    &config.name,
                    config.redelivery_window,
                    DEFAULT_CAPACITY,
                    Utc::now(),
                )
                .await?;
                tracing::info!(source = %source, path = %format!("/sources/{source}"), sink = %source.sink, "github source listening");
                github.endpoints.insert(
                    source.to_string(),
                    GitHubEndpoint {
                        config: Arc::new(GitHubConfig {
                            max_attribute_bytes: env.attribute_max_bytes,
                            ..(**config).clone()
                        }),
                        log,
                        sink: sink(Some(GITHUB_SINK_BUDGET), false),
                        metrics: metrics.clone(),
                    },
                );
            }
            SourceKind::Ping(config) => {
                let on_outcome = {
                    let metrics = metrics.clone();
                    Arc::new(move |outcome: PingOutcome| {
                        metrics.received.inc();
                        if let PingOutcome::SinkFailed { reason, .. } = outcome {
                            metrics.rejected(reason);
                        }
                    })
                };
                tracing::info!(source = %source, sink = %source.sink, "ping source started");
                tasks.spawn(ping::run(
                    config.clone(),
                    sink(None, false),
                    env.state_dir.join(PING_DIR),
                    env.clock,
                    on_outcome,
                    stopped(shutdown.clone()),
                ));
            }
            SourceKind::ApiServer(config, filter) => {
                let filter = counting_filter(filter.clone(), metrics.clone());
                tracing::info!(source = %source, sink = %source.sink, "apiserver source starting");
                let config = Arc::new(ApiServerConfig {
                    max_attribute_bytes: env.attribute_max_bytes,
                    ..(**config).clone()
                });
                tasks.spawn(run_api_server(
                    config,
                    sink(None, true),
                    env.state_dir.join(API_SERVER_DIR),
                    filter,
                    shutdown.clone(),
                ));
            }
            #[cfg(feature = "pubsub")]
            SourceKind::CloudPubSub(config) => {
                tracing::info!(source = %source, sink = %source.sink, "cloudpubsub source starting");
                tasks.spawn(pubsub::run(
                    config.clone(),
                    env.pubsub,
                    sink(None, true),
                    metrics.clone(),
                    shutdown.clone(),
                ));
            }
            #[cfg(not(feature = "pubsub"))]
            SourceKind::CloudPubSub(_) => anyhow::bail!(
                "CloudPubSubSource {source} needs the pubsub bus, which is not compiled into \
                 this build of Herald (cargo feature `pubsub`)"
            ),
        }
    }
    Ok(Started {
        github: Arc::new(github),
        tasks,
    })
}

/// Removes what sources no longer configured left under the state directory (see
/// `herald_sources::cleanup`), logging each removal; a failure is logged and start goes on.
async fn remove_unconfigured_state(sources: &[SourceConfig], state_dir: &Path) {
    let kept: Vec<Kept<'_>> = sources
        .iter()
        .filter_map(|s| {
            let (namespace, name) = (s.namespace.as_str(), s.name.as_str());
            Some(match s.kind {
                SourceKind::GitHub(_) => Kept::GitHub { namespace, name },
                SourceKind::Ping(_) => Kept::Ping { namespace, name },
                SourceKind::ApiServer(..) => Kept::ApiServer { namespace, name },
                // Its position is its Pub/Sub subscription: no local state.
                SourceKind::CloudPubSub(_) => return None,
            })
        })
        .collect();
    let (removed, failed) = cleanup::remove_unconfigured(state_dir, &kept).await;
    for path in removed {
        tracing::info!(path = ?path, "removed the state of a source that is no longer configured");
    }
    for e in failed {
        tracing::warn!(error = ?e.to_string(), "state of a source that is no longer configured not removed");
    }
}

fn sink_for(source: &SourceConfig, env: &SourceEnv, budget: Option<Duration>) -> Arc<dyn Sink> {
    match &source.sink {
        Target::Broker(id) => Arc::new(BrokerSink {
            ingress: env.ingress.clone(),
            broker: id.clone(),
            identity: crate::identity::SenderIdentity::resource(
                source.kind_name(),
                &source.namespace,
                &source.name,
            ),
        }),
        Target::Url(endpoint) => Arc::new(UrlSink {
            sender: env.sender.clone(),
            endpoint: endpoint.clone(),
            from: crate::outbound::SendAs::resource(
                source.kind_name(),
                &source.namespace,
                &source.name,
                "source",
                source.signer.clone(),
            ),
            policy: DeliveryPolicy::default(),
            budget,
            jitter: env.jitter,
        }),
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// `spec.filters` as the watcher calls it, counting every change it sees and what it drops.
fn counting_filter(filter: Filter, metrics: SourceMetrics) -> EventFilter {
    Arc::new(move |event| {
        metrics.received.inc();
        let keep = filter.matches(event);
        if !keep {
            metrics.rejected("filtered");
        }
        keep
    })
}

/// Builds a Kubernetes client (in-cluster, else `KUBECONFIG`/`~/.kube/config`), retrying with
/// backoff while there is none, then runs the watcher. A cluster that is unreachable or not
/// configured never stops Herald: the broker and the other sources keep running.
async fn run_api_server(
    config: Arc<ApiServerConfig>,
    sink: Arc<dyn Sink>,
    state_dir: PathBuf,
    filter: EventFilter,
    mut shutdown: watch::Receiver<bool>,
) {
    let source = format!("{}/{}", config.namespace, config.name);
    let mut backoff = Duration::from_secs(1);
    let (client, api_server) = loop {
        match kube_client().await {
            Ok(found) => break found,
            Err(e) => {
                tracing::warn!(%source, error = ?e.to_string(), retry_in = ?backoff, "no kubernetes client for the apiserver source; retrying");
                if !crate::dispatch::deliver::pause(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(KUBE_CLIENT_BACKOFF_MAX);
            }
        }
    };
    tracing::info!(%source, %api_server, "apiserver source watching");
    watcher::run(
        config,
        client,
        api_server,
        sink,
        state_dir,
        filter,
        stopped(shutdown),
    )
    .await;
}

async fn kube_client() -> Result<(kube::Client, String), String> {
    // `infer` reads the service-account files or the kubeconfig with blocking file I/O: it runs
    // on the blocking pool, driven by this runtime's handle.
    let runtime = tokio::runtime::Handle::current();
    let config = tokio::task::spawn_blocking(move || runtime.block_on(kube::Config::infer()))
        .await
        .map_err(|e| format!("kubernetes configuration task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let api_server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    Ok((client, api_server))
}

/// Where sources keep state under a data directory.
pub fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sources")
}

#[cfg(test)]
mod tests;
