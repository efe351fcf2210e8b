//! Replay: events a trigger's broker received in a time window, delivered again to that
//! trigger only.
//!
//! A temporary consumer group starts on the broker's topic at `from` (by arrival time, see
//! [`StartPosition::Time`]) and reads until an event that arrived more than [`ORDER_SLACK`]
//! after `to` (default: when the replay began) or until the topic is idle for [`IDLE`]. Each
//! event in the window
//! that matches the optional CESQL filter is marked with the extension
//! [`REPLAY_EXTENSION`] (the replay's id) and published, in batches, to the trigger's
//! redrive topic, whose dispatcher delivers it to this trigger alone with the trigger's own
//! filter and delivery policy (retries, dead letter, parking lot). The temporary group is
//! then deleted ([`Bus::forget_group`]): on NATS a consumer left behind would keep every
//! event of the stream (`interest` retention).

use std::time::Duration;

use chrono::{DateTime, Utc};
use cloudevents::Event;
use cloudevents::event::ExtensionValue;
use herald_buses::{Bus, BusError, StartPosition, arrival_time};

use crate::config::{Config, TriggerConfig};
use crate::dispatch::parked::ParkingLot;
use crate::filter::Filter;

/// The extension every replayed event carries: the id of the replay that sent it.
pub const REPLAY_EXTENSION: &str = "heraldreplay";
/// How long the reader waits for one more event before it decides the topic is read.
pub const IDLE: Duration = Duration::from_secs(1);
/// Arrival times are stamped before the append, so two requests at once can be stored a
/// little out of time order: reading goes on this far past `to` before it stops.
const ORDER_SLACK: chrono::Duration = chrono::Duration::seconds(1);
/// Events published to the redrive topic per batch.
const BATCH: usize = 256;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub from: DateTime<Utc>,
    /// Default: the time the replay began.
    pub to: Option<DateTime<Utc>>,
    /// Only events this CESQL expression matches (besides the trigger's own filter).
    pub filter: Option<Filter>,
}

/// What a replay did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    /// The value of [`REPLAY_EXTENSION`] on the replayed events.
    pub id: String,
    pub trigger: String,
    /// Events read from the window's start on.
    pub read: usize,
    /// Events republished for the trigger.
    pub replayed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no trigger {trigger} is configured")]
    NotFound { trigger: String },
    #[error("the window is empty: from {from} is after to {to}")]
    EmptyWindow { from: String, to: String },
    #[error("reading or republishing failed: {0}")]
    Bus(#[from] BusError),
}

/// Replays `request` for trigger `namespace/name` of `config`.
pub async fn replay(
    bus: &dyn Bus,
    config: &Config,
    trigger: &str,
    request: &ReplayRequest,
) -> Result<ReplayReport, ReplayError> {
    let Some(found) = config.triggers.iter().find(|t| t.to_string() == trigger) else {
        return Err(ReplayError::NotFound {
            trigger: trigger.to_owned(),
        });
    };
    let to = request.to.unwrap_or_else(Utc::now);
    if request.from > to {
        return Err(ReplayError::EmptyWindow {
            from: request.from.to_rfc3339(),
            to: to.to_rfc3339(),
        });
    }
    let id = uuid::Uuid::new_v4().to_string();
    let topic = found.broker.topic();
    let group = format!("herald-replay-{}-{}-{id}", found.namespace, found.name);
    let result = copy_window(bus, found, &topic, &group, &id, request.from, to, request).await;
    if let Err(e) = bus.forget_group(&topic, &group).await {
        tracing::warn!(%topic, %group, error = %e, "forgetting a replay's group failed; delete it by hand");
    }
    let (read, replayed) = result?;
    tracing::info!(trigger = %found, replay = %id, read, replayed, "replay published to the redrive topic");
    Ok(ReplayReport {
        id,
        trigger: trigger.to_owned(),
        read,
        replayed,
    })
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument named"
)]
async fn copy_window(
    bus: &dyn Bus,
    trigger: &TriggerConfig,
    topic: &str,
    group: &str,
    id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    request: &ReplayRequest,
) -> Result<(usize, usize), BusError> {
    let redrive = ParkingLot::new(&trigger.namespace, &trigger.name).redrive;
    let mut reader = bus
        .subscribe_from(topic, group, StartPosition::Time(from))
        .await?;
    let (mut read, mut replayed) = (0, 0);
    let mut batch: Vec<Event> = Vec::new();
    loop {
        let delivery = match tokio::time::timeout(IDLE, reader.next()).await {
            Err(_) => break,
            Ok(Ok(delivery)) => delivery,
            Ok(Err(BusError::Corrupt { position, reason })) => {
                tracing::warn!(position, reason = ?reason, "corrupt record skipped by a replay");
                continue;
            }
            Ok(Err(e)) => return Err(e),
        };
        read += 1;
        let arrived = arrival_time(&delivery.event);
        if arrived.is_some_and(|t| t > to + ORDER_SLACK) {
            break;
        }
        let in_window = arrived.is_some_and(|t| t >= from && t <= to);
        let wanted = request
            .filter
            .as_ref()
            .is_none_or(|f| f.matches(&delivery.event));
        if in_window && wanted {
            let mut event = delivery.event.clone();
            event.set_extension(REPLAY_EXTENSION, ExtensionValue::String(id.to_owned()));
            batch.push(event);
        }
        // Never acknowledged: the group is forgotten afterwards.
        drop(delivery);
        if batch.len() >= BATCH {
            bus.publish(&redrive, &batch).await?;
            replayed += batch.len();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        bus.publish(&redrive, &batch).await?;
        replayed += batch.len();
    }
    Ok((read, replayed))
}
