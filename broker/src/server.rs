//! `run`: ingress and dispatcher on one listener (or a public and an admin one) until
//! shutdown.

mod routers;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::binding::AttributeLimits;
use crate::config::Config;
use crate::dispatch::parked::ParkingLot;
use crate::dispatch::supervise::{self, DispatcherSpec};
use crate::dispatch::{self, TriggerContext};
use crate::ingress::Ingress;
use crate::listener::{ListenerOptions, TlsOptions, TlsServer, serve};
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
    /// Where sources keep their state (GitHub delivery ids, Ping progress, objects seen).
    pub state_dir: PathBuf,
    /// Attribute limits of every published event (`--max-extensions`, `--max-attributes-bytes`).
    pub limits: AttributeLimits,
    /// Connection limits (timeouts, connection cap, body bytes in flight).
    pub listener: ListenerOptions,
    /// The longest attribute value a source takes from a payload or a cluster object.
    pub source_attribute_max_bytes: usize,
    /// The bearer token of the admin endpoints (`--admin-token-file`); without it they are
    /// not mounted.
    pub admin_token: Option<String>,
    /// HTTPS on both listeners (`--tls-cert`, `--tls-key`, `--tls-client-ca`, ...).
    pub tls: Option<TlsOptions>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_body: crate::ingress::DEFAULT_MAX_BODY,
            window: dispatch::DEFAULT_WINDOW,
            jitter: true,
            state_dir: sources::state_dir(std::path::Path::new("herald-data")),
            limits: AttributeLimits::default(),
            listener: ListenerOptions::default(),
            source_attribute_max_bytes: herald_sources::attribute::DEFAULT_MAX_VALUE_BYTES,
            admin_token: None,
            tls: None,
        }
    }
}

/// Serves `config` on `listener` over `bus` until `shutdown` resolves; then stops accepting,
/// lets in-flight deliveries finish (or hands them back), flushes the bus and returns.
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
    let ingress = Arc::new(
        Ingress::new(
            config.brokers.iter().map(|b| b.id.clone()),
            bus.clone(),
            metrics.clone(),
            options.max_body,
        )
        .with_limits(options.limits),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let sender = dispatch::sender::Sender::default();
    for broker in &config.brokers {
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
    let mut dispatchers = JoinSet::new();
    let trigger_names = config.triggers.iter().map(|t| t.to_string()).collect();
    for trigger in config.triggers {
        let lot = ParkingLot::new(&trigger.namespace, &trigger.name);
        let ctx = Arc::new(TriggerContext::new(
            trigger,
            sender.clone(),
            ingress.clone(),
            bus.clone(),
            options.jitter,
        ));
        let [main_task, redrive_task] = supervise::task_names(&ctx.label);
        let specs = [
            DispatcherSpec {
                ctx: ctx.clone(),
                bus: bus.clone(),
                topic: ctx.trigger.broker.topic(),
                group: ctx.trigger.group(),
                task: main_task,
                window: options.window,
                lot: Some(lot.clone()),
            },
            // Redriven parked events come back to this trigger only, through its own topic.
            DispatcherSpec {
                ctx: ctx.clone(),
                bus: bus.clone(),
                topic: lot.redrive.clone(),
                group: lot.redrive.clone(),
                task: redrive_task,
                window: options.window,
                lot: None,
            },
        ];
        for spec in specs {
            // The first subscription is awaited (briefly) so that a new trigger on a local bus
            // counts every event accepted once Herald is ready; a network bus that cannot
            // assign the group yet (a crashed replica's session still open, more replicas than
            // partitions, NATS restarting) must not keep Herald from starting: it keeps
            // trying in the background, and /readyz answers 503 naming it meanwhile.
            let first =
                tokio::time::timeout(FIRST_SUBSCRIBE, bus.subscribe(&spec.topic, &spec.group))
                    .await;
            let first = match first {
                Ok(Ok(subscription)) => Some(subscription),
                Ok(Err(e)) if !e.is_retryable() => return Err(e.into()),
                outcome => {
                    let why = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {FIRST_SUBSCRIBE:?}"),
                    };
                    tracing::warn!(task = %spec.task, error = %why, "trigger not subscribed yet; retrying in the background");
                    None
                }
            };
            supervise::spawn(&mut dispatchers, spec, first, stop_rx.clone());
        }
    }
    let env = SourceEnv {
        ingress: ingress.clone(),
        sender: sender.clone(),
        state_dir: options.state_dir.clone(),
        clock: herald_sources::ping::Clock::System,
        jitter: options.jitter,
        attribute_max_bytes: options.source_attribute_max_bytes,
    };
    let mut started = sources::start(&config.sources, &env, stop_rx.clone()).await?;
    let sources_watch = watch_sources(
        std::mem::take(&mut started.tasks),
        metrics.clone(),
        stop_rx.clone(),
    );
    let tls_watch = tls
        .clone()
        .map(|tls| tokio::spawn(tls.watch_files(stop_rx.clone())));
    ingress.set_ready(true);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %public.local_addr()?, %scheme, "herald serving");
    let ready = ingress.clone();
    let public_app = public_router(ingress.clone(), started.github.clone());
    let admin_app = admin_router(
        ingress,
        options.admin_token.clone(),
        bus.clone(),
        trigger_names,
    );
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
    while dispatchers.join_next().await.is_some() {}
    let _ = sources_watch.await;
    // Every other holder of the bus (the sources' ingress handle among them) must be gone for
    // a network bus to flush its last acknowledgements.
    drop((env, started));
    bus.close().await;
    tracing::info!("herald stopped");
    Ok(())
}

/// Awaits the sources' tasks; one that ends (or panics) before shutdown is shown in /readyz
/// and `herald_task_running{task="sources"}` (the number still running).
fn watch_sources(
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

/// How long start-up waits for a trigger's first subscription before going on without it.
const FIRST_SUBSCRIBE: std::time::Duration = std::time::Duration::from_secs(5);

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
