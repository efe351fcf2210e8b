//! Keeps a trigger's dispatchers running: subscribes with backoff, re-subscribes when the
//! subscription closes, restarts a dispatcher that panicked, and tells `/readyz` and
//! `/metrics` while it is not subscribed.

use std::sync::Arc;
use std::time::Duration;

use herald_buses::{Bus, BusError, Subscription};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio::time::Instant;

use super::deliver::pause;
use super::parked::ParkingLot;
use super::{Ended, TriggerContext, run_trigger};
use crate::metrics::TaskLabels;

/// First wait before subscribing again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One dispatcher of a trigger: on its broker's topic, or on its redrive topic.
pub struct DispatcherSpec {
    pub ctx: Arc<TriggerContext>,
    pub bus: Arc<dyn Bus>,
    pub topic: String,
    pub group: String,
    /// The name `/readyz` and `herald_task_running{task}` show: `trigger ns/name` or
    /// `redrive ns/name`.
    pub task: String,
    pub window: usize,
    /// Created with the first subscription (the main dispatcher creates the parking lot's
    /// reader group, so that every event parked later is listed).
    pub lot: Option<ParkingLot>,
    /// Where the group starts if it has no position yet (`herald.dev/startFrom`).
    pub start: herald_buses::StartPosition,
    /// Turns true when in-flight deliveries must be handed back (process shutdown); the
    /// supervisor's own stop only ends reading.
    pub abandon: watch::Receiver<bool>,
}

/// The names of a trigger's two dispatchers.
pub fn task_names(trigger: &str) -> [String; 2] {
    [format!("trigger {trigger}"), format!("redrive {trigger}")]
}

/// Marks `spec` unready at once (so `/readyz` never sees it missing), then supervises it in
/// the background until shutdown. `first` is a subscription start-up already opened.
pub fn spawn(
    tasks: &mut tokio::task::JoinSet<()>,
    spec: DispatcherSpec,
    first: Option<Box<dyn Subscription>>,
    stop: watch::Receiver<bool>,
) {
    spec.ctx
        .metrics
        .set_unready(&spec.task, Some("not subscribed yet".into()));
    tasks.spawn(supervise(spec, first, stop));
}

async fn supervise(
    spec: DispatcherSpec,
    mut first: Option<Box<dyn Subscription>>,
    mut stop: watch::Receiver<bool>,
) {
    let metrics = spec.ctx.metrics.clone();
    let labels = TaskLabels {
        task: spec.task.clone(),
    };
    let running: Gauge = metrics.task_running.get_or_create(&labels).clone();
    let restarts: Counter = metrics.task_restarts.get_or_create(&labels).clone();
    let subscribed: Gauge = metrics
        .trigger_subscribed
        .get_or_create(&metrics.trigger(&spec.ctx.label))
        .clone();
    let mut wait = FIRST_BACKOFF;
    loop {
        let subscription = match first.take() {
            Some(s) => s,
            None => match subscribe(&spec, &mut stop, &mut wait).await {
                Some(s) => s,
                None => break,
            },
        };
        // Parking needs the lot's reader group first: a bus may keep only what some group
        // will read (NATS `interest` retention drops events no consumer is interested in).
        if let Some(lot) = &spec.lot
            && let Err(e) = lot.create_reader(&*spec.bus).await
        {
            drop(subscription);
            let why = format!("creating the parking lot's reader failed: {e}");
            tracing::warn!(task = %spec.task, error = %why, retry_in = ?wait);
            metrics.set_unready(&spec.task, Some(why));
            if !pause(wait, &mut stop).await {
                break;
            }
            wait = next_backoff(wait);
            continue;
        }
        subscribed.inc();
        running.set(1);
        metrics.set_unready(&spec.task, None);
        tracing::info!(task = %spec.task, topic = %spec.topic, subscriber = %spec.ctx.trigger.subscriber, "trigger subscribed");
        let started = Instant::now();
        let (ctx, topic, window, stop_rx, abandon) = (
            spec.ctx.clone(),
            spec.topic.clone(),
            spec.window,
            stop.clone(),
            spec.abandon.clone(),
        );
        // Its own task, so that a panic ends this dispatcher only and is seen here.
        let outcome = tokio::spawn(async move {
            run_trigger(ctx, subscription, &topic, stop_rx, abandon, window).await
        })
        .await;
        subscribed.dec();
        running.set(0);
        let why = match outcome {
            Ok(Ended::Shutdown) => break,
            Ok(Ended::Closed(reason)) => format!("subscription closed: {reason}"),
            Err(e) if e.is_panic() => "dispatcher panicked".to_owned(),
            Err(e) => format!("dispatcher ended: {e}"),
        };
        if *stop.borrow() {
            break;
        }
        restarts.inc();
        if started.elapsed() >= MAX_BACKOFF {
            wait = FIRST_BACKOFF;
        }
        tracing::error!(task = %spec.task, error = %why, retry_in = ?wait, "dispatcher stopped; subscribing again");
        metrics.set_unready(&spec.task, Some(why));
        if !pause(wait, &mut stop).await {
            break;
        }
        wait = next_backoff(wait);
    }
    metrics.set_unready(&spec.task, None);
}

/// Subscribes with backoff until it works (`Some`) or shutdown begins (`None`).
async fn subscribe(
    spec: &DispatcherSpec,
    stop: &mut watch::Receiver<bool>,
    wait: &mut Duration,
) -> Option<Box<dyn Subscription>> {
    loop {
        let error = match spec
            .bus
            .subscribe_from(&spec.topic, &spec.group, spec.start)
            .await
        {
            Ok(subscription) => return Some(subscription),
            Err(e) => e,
        };
        let why = format!("subscribing failed: {error}");
        tracing::warn!(task = %spec.task, error = %error, retry_in = ?*wait, "subscribing failed");
        spec.ctx.metrics.set_unready(&spec.task, Some(why));
        if let BusError::Rejected { .. } = error {
            // A name the bus can never take: retrying slowly keeps it visible in /readyz.
            *wait = MAX_BACKOFF;
        }
        if !pause(*wait, stop).await {
            return None;
        }
        *wait = next_backoff(*wait);
    }
}

/// 1 s doubling to 30 s; saturating.
pub fn next_backoff(wait: Duration) -> Duration {
    wait.saturating_mul(2).min(MAX_BACKOFF)
}
