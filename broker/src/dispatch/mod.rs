//! The dispatcher: one consumer group per trigger, filtering and delivering what it reads.
//!
//! # Layout
//! - [`run_trigger`]: the read loop of one trigger, with its in-flight window and, for
//!   `ordered` triggers, one lane per `partitionkey`.
//! - [`supervise`]: (re)subscribes a trigger's dispatcher and restarts it when it ends.
//! - [`deliver`]: one event's attempts, dead letter or parking lot, and reply.
//! - [`parked`]: the parking lot's names and operations (`herald parked`); [`admin`]: the
//!   same over HTTP for a running Herald.
//! - [`retry`]: the wait before each retry (triggers and source sinks).
//! - [`sender`]: one HTTP attempt.
//! - [`health`], [`lag`]: a trigger's last delivery error and its lag while it takes nothing.

pub mod admin;
pub mod deliver;
pub mod health;
pub mod lag;
pub mod parked;
pub mod retry;
pub mod sender;
pub mod supervise;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::event::ExtensionValue;
use herald_buses::{BusError, Delivery, Subscription};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

pub use deliver::{Outcome, TriggerContext};

use crate::binding::encode::extension_string;
use crate::config::Ordering;

/// Events a trigger has in flight at most (the bounded window of `unordered` delivery).
pub const DEFAULT_WINDOW: usize = 256;
/// Consecutive failed reads (one a second) after which a subscription is replaced as if the
/// bus had closed it: a subscription that only fails (a NATS consumer deleted under it, say)
/// is no better than a closed one, and subscribing again re-creates what is missing.
pub const REPLACE_AFTER_ERRORS: u32 = 10;
/// How long shutdown waits for in-flight deliveries before handing them back.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// An event taken from the bus and not finished: its window place and its count in
/// `herald_trigger_in_flight_events`, both given back when it is dropped (finished, handed
/// back, or aborted with its task).
struct InFlight {
    _permit: OwnedSemaphorePermit,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl InFlight {
    fn new(permit: OwnedSemaphorePermit, gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self {
            _permit: permit,
            gauge: gauge.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

type Lanes = Arc<Mutex<HashMap<String, VecDeque<(Delivery, InFlight)>>>>;

/// Why [`run_trigger`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Shutdown,
    /// The subscription ended for good (`BusError::Closed`): subscribe again.
    Closed(String),
}

/// Reads `subscription` (of `topic`) until `shutdown` or until it closes, delivering through
/// `ctx`. In-flight deliveries then finish (at most [`SHUTDOWN_GRACE`]) unless `abandon`
/// turns true, which hands them back at once: a reconfigured trigger stops reading only, the
/// process shutting down does both.
pub async fn run_trigger(
    ctx: Arc<TriggerContext>,
    mut subscription: Box<dyn Subscription>,
    topic: &str,
    mut shutdown: watch::Receiver<bool>,
    abandon: watch::Receiver<bool>,
    window: usize,
) -> Ended {
    let permits = Arc::new(Semaphore::new(window));
    let lanes: Lanes = Arc::default();
    let mut tasks = JoinSet::new();
    let mut failed_reads = 0;
    let own_topic = ctx.trigger.broker.topic();
    let ended = loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closes"),
            _ = shutdown.wait_for(|s| *s) => break Ended::Shutdown,
        };
        let next = tokio::select! {
            d = subscription.next() => d,
            _ = shutdown.wait_for(|s| *s) => break Ended::Shutdown,
        };
        let delivery = match next {
            Ok(d) => {
                failed_reads = 0;
                d
            }
            Err(BusError::Closed { reason }) => break Ended::Closed(reason),
            Err(BusError::Corrupt { position, reason }) => {
                // The bus skipped and acknowledged it: count it and read on at once.
                ctx.metrics.corrupt_record(topic);
                tracing::error!(trigger = %ctx.label, %topic, position, reason = ?reason,
                    "corrupt record skipped");
                continue;
            }
            Err(e) => {
                failed_reads += 1;
                if failed_reads >= REPLACE_AFTER_ERRORS {
                    break Ended::Closed(format!(
                        "{failed_reads} reads in a row failed, last: {e}"
                    ));
                }
                tracing::warn!(trigger = %ctx.label, error = ?e.to_string(), "reading from the bus failed; retrying");
                if !deliver::pause(Duration::from_secs(1), &mut shutdown).await {
                    break Ended::Shutdown;
                }
                continue;
            }
        };
        // Redriven events are old by nature: only the trigger's own topic tells its lag.
        if topic == own_topic
            && let Some(age) = deliver::arrival_age(&delivery.event)
        {
            ctx.health.lag.taken(age);
        }
        let mut filter_errors = 0;
        let matched = ctx
            .trigger
            .filter
            .matches_counting(&delivery.event, &mut filter_errors);
        if filter_errors > 0 {
            ctx.stats.filter_errors.inc_by(u64::from(filter_errors));
            tracing::debug!(trigger = %ctx.label, event.id = ?cloudevents::AttributesReader::id(&delivery.event), "cesql filter evaluation failed: no match");
        }
        if !matched {
            ctx.stats.filtered.inc();
            delivery.ack();
            continue;
        }
        let permit = InFlight::new(permit, &ctx.stats.in_flight);
        match ctx.trigger.ordering {
            Ordering::Unordered => {
                let (ctx, shutdown) = (ctx.clone(), abandon.clone());
                tasks.spawn(async move {
                    deliver_one(&ctx, delivery, permit, shutdown).await;
                });
            }
            Ordering::Ordered => {
                let key = match delivery.event.extension("partitionkey") {
                    Some(ExtensionValue::String(s)) => s.clone(),
                    Some(other) => extension_string(other),
                    None => String::new(),
                };
                let mut map = lanes.lock().unwrap();
                if let Some(queue) = map.get_mut(&key) {
                    queue.push_back((delivery, permit));
                } else {
                    map.insert(key.clone(), VecDeque::from([(delivery, permit)]));
                    let (ctx, lanes, shutdown) = (ctx.clone(), lanes.clone(), abandon.clone());
                    tasks.spawn(run_lane(ctx, lanes, key, shutdown));
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    };
    drop(subscription);
    if let Ended::Closed(_) = ended {
        // Their events come back to the next subscription, unacknowledged: stop working on
        // them rather than deliver them twice at once.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        lanes.lock().unwrap().clear();
        return ended;
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(trigger = %ctx.label, "in-flight deliveries handed back at shutdown");
        tasks.abort_all();
    }
    ended
}

async fn deliver_one(
    ctx: &TriggerContext,
    delivery: Delivery,
    permit: InFlight,
    mut shutdown: watch::Receiver<bool>,
) -> Outcome {
    let outcome = ctx.process(&delivery.event, &mut shutdown).await;
    if outcome == Outcome::Finished {
        delivery.ack();
    }
    drop(permit);
    outcome
}

/// Delivers one `partitionkey`'s events one at a time, in bus order, until its queue is empty.
async fn run_lane(
    ctx: Arc<TriggerContext>,
    lanes: Lanes,
    key: String,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let next = {
            let mut map = lanes.lock().unwrap();
            let queue = map
                .get_mut(&key)
                .expect("a lane owns its queue until it removes it");
            match queue.pop_front() {
                Some(item) => item,
                None => {
                    map.remove(&key);
                    return;
                }
            }
        };
        let (delivery, permit) = next;
        if deliver_one(&ctx, delivery, permit, shutdown.clone()).await == Outcome::HandBack {
            // Later events of this key must not overtake the handed-back one.
            let mut map = lanes.lock().unwrap();
            // Dropping the queue gives back the window places and in-flight counts.
            drop(map.remove(&key));
            return;
        }
    }
}

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod supervise_tests;
#[cfg(test)]
mod tests;
