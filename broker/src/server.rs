//! `run`: ingress and dispatcher on one listener until shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::binding::AttributeLimits;
use crate::config::Config;
use crate::dispatch::{self, TriggerContext};
use crate::ingress::{Ingress, router};
use crate::listener::{ListenerOptions, serve_http1};
use crate::metrics::Metrics;
use crate::sources::{self, SourceEnv};
use herald_buses::Bus;

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
        }
    }
}

/// Serves `config` on `listener` over `bus` until `shutdown` resolves; then stops accepting,
/// lets in-flight deliveries finish (or hands them back), flushes the bus and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    bus: Arc<dyn Bus>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
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
    for trigger in config.triggers {
        let topic = trigger.broker.topic();
        let group = trigger.group();
        // The first subscription is awaited (briefly) so that a new trigger on a local bus
        // counts every event accepted once Herald is ready; a network bus that cannot assign
        // the group yet (a crashed replica's session still open, more replicas than
        // partitions, NATS restarting) must not keep Herald from starting: it keeps trying.
        let first = tokio::time::timeout(FIRST_SUBSCRIBE, bus.subscribe(&topic, &group)).await;
        let ctx = Arc::new(TriggerContext::new(
            trigger,
            sender.clone(),
            ingress.clone(),
            metrics.clone(),
            options.jitter,
        ));
        let (stop, window, bus) = (stop_rx.clone(), options.window, bus.clone());
        match first {
            Ok(Ok(subscription)) => {
                tracing::info!(trigger = %ctx.label, subscriber = %ctx.trigger.subscriber, "trigger started");
                dispatchers.spawn(dispatch::run_trigger(ctx, subscription, stop, window));
            }
            Ok(Err(e)) if !e.is_retryable() => return Err(e.into()),
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {FIRST_SUBSCRIBE:?}"),
                };
                tracing::warn!(trigger = %ctx.label, error = %why, "trigger not subscribed yet; retrying in the background");
                dispatchers.spawn(async move {
                    let mut stop_wait = stop.clone();
                    let Some(subscription) = subscribe_until_stopped(&*bus, &topic, &group, &ctx.label, &mut stop_wait).await else {
                        return;
                    };
                    tracing::info!(trigger = %ctx.label, subscriber = %ctx.trigger.subscriber, "trigger started");
                    dispatch::run_trigger(ctx, subscription, stop, window).await;
                });
            }
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
    ingress.set_ready(true);
    tracing::info!(addr = %listener.local_addr()?, "herald serving");
    let ready = ingress.clone();
    let app = router(ingress).merge(sources::github::router(started.github.clone()));
    serve_http1(
        listener,
        app,
        options.listener,
        options.max_body,
        async move {
            shutdown.await;
            ready.set_ready(false);
            tracing::info!("shutting down: no new events accepted");
            let _ = stop_tx.send(true);
        },
    )
    .await;
    while dispatchers.join_next().await.is_some() {}
    while started.tasks.join_next().await.is_some() {}
    // Every other holder of the bus (the sources' ingress handle among them) must be gone for
    // a network bus to flush its last acknowledgements.
    drop((env, started));
    bus.close().await;
    tracing::info!("herald stopped");
    Ok(())
}

/// How long start-up waits for a trigger's first subscription before going on without it.
const FIRST_SUBSCRIBE: std::time::Duration = std::time::Duration::from_secs(5);

/// Subscribes with backoff (1 s doubling to 30 s) until it works or shutdown begins.
async fn subscribe_until_stopped(
    bus: &dyn herald_buses::Bus,
    topic: &str,
    group: &str,
    label: &str,
    stop: &mut watch::Receiver<bool>,
) -> Option<Box<dyn herald_buses::Subscription>> {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        if !dispatch::deliver::pause(wait, stop).await {
            return None;
        }
        match bus.subscribe(topic, group).await {
            Ok(subscription) => return Some(subscription),
            Err(e) => {
                tracing::warn!(trigger = %label, error = %e, retry_in = ?wait, "subscribing failed");
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}
