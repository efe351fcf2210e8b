//! The dispatcher: one consumer group per trigger, filtering and delivering what it reads.
//!
//! # Layout
//! - [`run_trigger`]: the read loop of one trigger, with its in-flight window and, for
//!   `ordered` triggers, one lane per `partitionkey`.
//! - [`deliver`]: one event's attempts, dead letter and reply.
//! - [`sender`]: one HTTP attempt.

pub mod deliver;
pub mod sender;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::event::ExtensionValue;
use herald_buses::{Delivery, Subscription};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

pub use deliver::{Outcome, TriggerContext};

use crate::binding::encode::extension_string;
use crate::config::Ordering;

/// Events a trigger has in flight at most (the bounded window of `unordered` delivery).
pub const DEFAULT_WINDOW: usize = 256;
/// How long shutdown waits for in-flight deliveries before handing them back.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

type Lanes = Arc<Mutex<HashMap<String, VecDeque<(Delivery, OwnedSemaphorePermit)>>>>;

/// Reads `subscription` until shutdown, delivering through `ctx`.
pub async fn run_trigger(
    ctx: Arc<TriggerContext>,
    mut subscription: Box<dyn Subscription>,
    mut shutdown: watch::Receiver<bool>,
    window: usize,
) {
    let permits = Arc::new(Semaphore::new(window));
    let lanes: Lanes = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closes"),
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let next = tokio::select! {
            d = subscription.next() => d,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let delivery = match next {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(trigger = %ctx.label, error = %e, "reading from the bus failed; retrying");
                if !deliver::pause(Duration::from_secs(1), &mut shutdown).await {
                    break;
                }
                continue;
            }
        };
        if let Some(age) = deliver::arrival_age(&delivery.event) {
            ctx.stats.lag_seconds.set(age.max(0.0));
        }
        let mut filter_errors = 0;
        let matched = ctx
            .trigger
            .filter
            .matches_counting(&delivery.event, &mut filter_errors);
        if filter_errors > 0 {
            ctx.stats.filter_errors.inc_by(u64::from(filter_errors));
            tracing::debug!(trigger = %ctx.label, event.id = %cloudevents::AttributesReader::id(&delivery.event), "cesql filter evaluation failed: no match");
        }
        if !matched {
            ctx.stats.filtered.inc();
            delivery.ack();
            continue;
        }
        ctx.stats.in_flight.inc();
        match ctx.trigger.ordering {
            Ordering::Unordered => {
                let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
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
                    let (ctx, lanes, shutdown) = (ctx.clone(), lanes.clone(), shutdown.clone());
                    tasks.spawn(run_lane(ctx, lanes, key, shutdown));
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(subscription);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(trigger = %ctx.label, "in-flight deliveries handed back at shutdown");
        tasks.abort_all();
    }
}

async fn deliver_one(
    ctx: &TriggerContext,
    delivery: Delivery,
    permit: OwnedSemaphorePermit,
    mut shutdown: watch::Receiver<bool>,
) -> Outcome {
    let outcome = ctx.process(&delivery.event, &mut shutdown).await;
    if outcome == Outcome::Finished {
        delivery.ack();
    }
    ctx.stats.in_flight.dec();
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
            if let Some(queue) = map.remove(&key) {
                for _ in queue {
                    ctx.stats.in_flight.dec();
                }
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests;
