//! `run`: ingress and dispatcher on one listener (or a public and an admin one) until
//! shutdown.

mod admin_auth;
mod routers;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::binding::AttributeLimits;
use crate::config::{Config, FileText, LoadOptions};
use crate::dispatch;
use crate::ingress::Ingress;
use crate::listener::{ListenerOptions, TlsOptions, TlsServer, serve};
use crate::live::Live;
use crate::live::pause::PauseOverlay;
use crate::live::runtime::{Runtime, RuntimeEnv};
use crate::metrics::Metrics;
use crate::sources::{self, SourceEnv};
use herald_buses::Bus;
pub use routers::{Listeners, admin_router, public_router};

/// Runtime settings besides the configuration.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub max_body: usize,
    pub window: usize,
    pub jitter: bool,
    /// How often each trigger's backlog is asked for (`--lag-probe-interval`).
    pub lag_probe: std::time::Duration,
    /// Where sources keep their state (GitHub delivery ids, Ping progress, objects seen).
    pub state_dir: PathBuf,
    /// Attribute limits of every published event (`--max-extensions`, `--max-attributes-bytes`).
    pub limits: AttributeLimits,
    /// Connection limits (timeouts, connection cap, body bytes in flight).
    pub listener: ListenerOptions,
    /// The longest attribute value a source takes from a payload or a cluster object.
    pub source_attribute_max_bytes: usize,
    /// CloudPubSubSource pulls (`--pubsub-source-ack-deadline`, `--pubsub-source-pull-max`).
    pub pubsub_source: crate::sources::PubsubSourceOptions,
    /// The bearer token of the admin endpoints (`--admin-token-file`); without it they are
    /// not mounted.
    pub admin_token: Option<String>,
    /// HTTPS on both listeners (`--tls-cert`, `--tls-key`, `--tls-client-ca`, ...).
    pub tls: Option<TlsOptions>,
    /// Sender authentication (OIDC) and authorization (EventPolicy); default: none.
    pub auth: crate::auth::AuthOptions,
    /// Outbound clients (egress policy, system roots) and Herald's OIDC issuer; `None`: the
    /// defaults with an in-memory key (see [`crate::outbound`]).
    pub outbound: Option<crate::outbound::Outbound>,
    /// The `-f` files the configuration came from, watched for changes.
    pub config_files: ConfigFiles,
    /// The management API's settings; served with `admin_token`.
    pub api: Option<crate::api::ApiOptions>,
}

/// The `-f` files of `herald serve`: what was read at start and how to read them again.
#[derive(Debug, Clone, Default)]
pub struct ConfigFiles {
    /// As given (files or directories); empty: nothing is watched.
    pub paths: Vec<PathBuf>,
    /// Their content when the configuration given to [`run`] was resolved from them.
    pub texts: Vec<FileText>,
    pub load: LoadOptions,
    /// How often they are compared with what runs (`None`: only on `SIGHUP`).
    pub poll_interval: Option<std::time::Duration>,
    /// Where triggers paused by command are kept (`{--data-dir}/live/paused.json`); `None`:
    /// in memory.
    pub pause_file: Option<PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_body: crate::ingress::DEFAULT_MAX_BODY,
            window: dispatch::DEFAULT_WINDOW,
            jitter: true,
            lag_probe: dispatch::lag::DEFAULT_PROBE_INTERVAL,
            state_dir: sources::state_dir(std::path::Path::new("herald-data")),
            limits: AttributeLimits::default(),
            listener: ListenerOptions::default(),
            source_attribute_max_bytes: herald_sources::attribute::DEFAULT_MAX_VALUE_BYTES,
            pubsub_source: crate::sources::PubsubSourceOptions::default(),
            admin_token: None,
            tls: None,
            auth: crate::auth::AuthOptions::default(),
            outbound: None,
            config_files: ConfigFiles::default(),
            api: None,
        }
    }
}

/// Serves `config` on `listener` over `bus` until `shutdown` resolves; then stops accepting,
/// lets in-flight deliveries finish (or hands them back), flushes the bus and returns.
/// With `options.config_files`, the files `config` was read from are watched and reloaded
/// (see [`crate::live`]).
pub async fn run(
    listeners: impl Into<Listeners>,
    config: Config,
    bus: Arc<dyn Bus>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Listeners { public, admin } = listeners.into();
    let metrics = Arc::new(Metrics::default());
    let tls = match options.tls.clone() {
        Some(tls) => Some(Arc::new(TlsServer::load(tls, metrics.clone()).await?)),
        None => None,
    };
    metrics.read_bus_counters(bus.clone());
    let ingress_auth = options.auth.start(&config).await?;
    let admin_auth = admin_auth::build(&options, ingress_auth.authenticator.clone())?;
    let ingress = Arc::new(
        Ingress::new(
            config.brokers.iter().map(|b| b.id.clone()),
            bus.clone(),
            metrics.clone(),
            options.max_body,
        )
        .with_limits(options.limits)
        .with_auth(ingress_auth),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let sender = crate::outbound::sender_for(options.outbound.clone(), &metrics, &config).await?;
    // At start, cursors of triggers no longer configured are forgotten (a reload forgets
    // those it removes itself).
    for broker in config.brokers.iter().filter(|b| !b.id.is_alias()) {
        let topic = broker.id.topic();
        let groups: Vec<String> = config
            .triggers
            .iter()
            .filter(|t| t.broker == broker.id)
            .map(|t| t.group())
            .collect();
        let keep: Vec<&str> = groups.iter().map(String::as_str).collect();
        for group in bus.forget_other_groups(&topic, &keep).await? {
            tracing::info!(%group, broker = %broker.id, "forgot the cursor of a trigger no longer configured");
        }
    }
    let github = Arc::new(sources::github::LiveEndpoints::new(Arc::new(
        sources::github::GitHubEndpoints::empty(options.max_body),
    )));
    let trigger_names: dispatch::admin::TriggerNames = Arc::default();
    let env = RuntimeEnv {
        bus: bus.clone(),
        ingress: ingress.clone(),
        sender: sender.clone(),
        window: options.window,
        jitter: options.jitter,
        sources: SourceEnv {
            ingress: ingress.clone(),
            sender: sender.clone(),
            state_dir: options.state_dir.clone(),
            clock: herald_sources::ping::Clock::System,
            jitter: options.jitter,
            attribute_max_bytes: options.source_attribute_max_bytes,
            pubsub: options.pubsub_source,
        },
        github: github.clone(),
        trigger_names: trigger_names.clone(),
        stop: stop_rx.clone(),
        lag_probe: options.lag_probe,
    };
    let overlay = match &options.config_files.pause_file {
        Some(path) => PauseOverlay::open(path.clone()).await?,
        None => PauseOverlay::in_memory(),
    };
    let live = Arc::new(Live::new(
        Runtime::new(env),
        options.config_files.paths.clone(),
        options.config_files.load.clone(),
        overlay,
    ));
    live.start(config, options.config_files.texts.clone())
        .await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    live.set_address_base(format!("{scheme}://{}", public.local_addr()?));
    let reloader = (!options.config_files.paths.is_empty()).then(|| {
        crate::live::reload::spawn(
            live.clone(),
            metrics.clone(),
            options.config_files.poll_interval,
            stop_rx.clone(),
        )
    });
    let tls_watch = tls
        .clone()
        .map(|tls| tokio::spawn(tls.watch_files(stop_rx.clone())));
    // Stored API resources are applied before Herald reports ready.
    let api = match (&admin_auth, &options.api) {
        (Some(auth), Some(api)) => Some(
            crate::api::mount(
                auth.clone(),
                live.clone(),
                metrics.clone(),
                api.clone(),
                stop_rx.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    ingress.set_ready(true);
    tracing::info!(addr = %public.local_addr()?, %scheme, "herald serving");
    let ready = ingress.clone();
    let public_app = public_router(ingress.clone(), github)
        .merge(crate::outbound::issuer::router(sender.issuer().clone()));
    let mut admin_app = admin_router(ingress, admin_auth.clone(), bus.clone(), trigger_names);
    if let Some(auth) = admin_auth {
        admin_app = admin_app.merge(crate::live::admin::router(auth, live.clone()));
    }
    if let Some(api) = api {
        admin_app = admin_app.merge(api);
    }
    let stopping = async move {
        shutdown.await;
        ready.set_ready(false);
        tracing::info!("shutting down: no new events accepted");
        let _ = stop_tx.send(true);
    };
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    match admin {
        None => {
            let app = public_app.merge(admin_app);
            let serving = serve(
                public,
                app,
                options.listener,
                options.max_body,
                tls,
                stopped(stop_rx.clone()),
            );
            tokio::join!(stopping, serving);
        }
        Some(admin) => {
            tracing::info!(addr = %admin.local_addr()?, %scheme, "admin listener serving metrics, health and /admin");
            let serving = serve(
                public,
                public_app,
                options.listener,
                options.max_body,
                tls.clone(),
                stopped(stop_rx.clone()),
            );
            let admin_serving = serve(
                admin,
                admin_app,
                options.listener,
                options.max_body,
                tls,
                stopped(stop_rx.clone()),
            );
            tokio::join!(stopping, serving, admin_serving);
        }
    }
    if let Some(task) = tls_watch {
        let _ = task.await;
    }
    if let Some(reloader) = reloader {
        let _ = reloader.await;
    }
    live.runtime().stop_all().await;
    // Every other holder of the bus (the sources' ingress handle among them) must be gone for
    // a network bus to flush its last acknowledgements.
    drop(live);
    bus.close().await;
    tracing::info!("herald stopped");
    Ok(())
}

/// Awaits the sources' tasks; one that ends (or panics) before shutdown is shown in /readyz
/// and `herald_task_running{task="sources"}` (the number still running).
pub(crate) fn watch_sources(
    mut tasks: JoinSet<()>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let running = metrics
        .task_running
        .get_or_create(&crate::metrics::TaskLabels {
            task: "sources".into(),
        })
        .clone();
    running.set(tasks.len() as i64);
    tokio::spawn(async move {
        let mut ended = 0usize;
        while let Some(result) = tasks.join_next().await {
            running.dec();
            if *stop.borrow() {
                continue;
            }
            ended += 1;
            let why = match result {
                Err(e) if e.is_panic() => "panicked".to_owned(),
                Err(e) => e.to_string(),
                Ok(()) => "ended".to_owned(),
            };
            tracing::error!(error = %why, "a source's task stopped before shutdown");
            metrics.set_unready(
                "sources",
                Some(format!(
                    "{ended} source task(s) stopped before shutdown (last: {why})"
                )),
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_source_task_that_panics_before_shutdown_shows_in_readiness_and_metrics() {
        let metrics = Arc::new(Metrics::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(async { panic!("source bug") });
        tasks.spawn(std::future::pending::<()>());
        let watcher = watch_sources(tasks, metrics.clone(), stop_rx);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while metrics.unready().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never marked unready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(metrics.unready()[0].starts_with("sources: 1 source task(s) stopped"));
        assert!(
            metrics
                .encode()
                .contains(r#"herald_task_running{task="sources"} 1"#)
        );
        let _ = stop_tx.send(true);
        watcher.abort();
    }
}
