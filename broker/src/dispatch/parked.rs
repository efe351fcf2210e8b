//! A trigger's parking lot: where an event goes once its attempts and the dead-letter sink
//! failed, and how an operator lists, shows, redrives or purges it.
//!
//! # Names
//! For trigger `ns/name` (consumer group `knative-trigger-{ns}-{name}`):
//! - parking lot: topic `knative-trigger-{ns}-{name}-parked`, read by the group of the same
//!   name (only `herald parked` reads it);
//! - redrive: topic `knative-trigger-{ns}-{name}-redrive`, read by the trigger's dispatcher
//!   with the group of the same name, so a redriven event goes to that trigger only (a
//!   publish to the broker's topic would reach every trigger of the broker again).
//!
//! Only `[a-z0-9-]` plus the trigger's own name: valid as an embedded directory, a NATS
//! stream and consumer name (Herald escapes anything else), a Kafka topic and group.
//!
//! # Acknowledgement
//! The groups of every bus acknowledge up to a contiguous position, so taking some events out
//! of the lot (redrive, purge) reads the lot from its start up to the last selected event,
//! writes the ones not selected back to the end of the lot, and then acknowledges all it read.
//! A crash in between leaves duplicates in the lot, never a loss.

use std::collections::BTreeSet;
use std::time::Duration;

use cloudevents::{AttributesReader, Event};
use herald_buses::{Bus, BusError, Delivery, Subscription};

/// The extensions the dead-letter path adds, removed again when an event is redriven.
pub const ERROR_EXTENSIONS: [&str; 3] =
    ["knativeerrordest", "knativeerrorcode", "knativeerrordata"];

/// How long reading the lot waits for one more event before it takes the lot as read.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(1);

/// The parking lot and redrive names of one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkingLot {
    pub trigger: String,
    pub parked: String,
    pub redrive: String,
}

impl ParkingLot {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self::of_group(
            format!("{namespace}/{name}"),
            &format!("knative-trigger-{namespace}-{name}"),
        )
    }

    /// The lot of a trigger or subscription, named after its consumer group (a
    /// subscription's is `knative-subscription-{ns}-{name}-parked`).
    pub fn of(dispatcher: &crate::config::TriggerConfig) -> Self {
        Self::of_group(dispatcher.to_string(), &dispatcher.group())
    }

    /// The lot of subscription `namespace/name`.
    pub fn subscription(namespace: &str, name: &str) -> Self {
        Self::of_group(
            format!("subscriptions/{namespace}/{name}"),
            &format!("knative-subscription-{namespace}-{name}"),
        )
    }

    fn of_group(trigger: String, group: &str) -> Self {
        Self {
            trigger,
            parked: format!("{group}-parked"),
            redrive: format!("{group}-redrive"),
        }
    }

    /// Creates the lot's reader group (at the end of the lot, which is its start when the
    /// trigger first runs), so that the events parked from now on are listed.
    pub async fn create_reader(&self, bus: &dyn Bus) -> Result<(), BusError> {
        drop(bus.subscribe(&self.parked, &self.parked).await?);
        Ok(())
    }

    /// Up to `limit` parked events, oldest first; nothing is acknowledged.
    pub async fn list(
        &self,
        bus: &dyn Bus,
        limit: usize,
        idle: Duration,
    ) -> Result<Vec<Event>, BusError> {
        let mut reader = bus.subscribe(&self.parked, &self.parked).await?;
        let mut out = Vec::new();
        while out.len() < limit {
            match next(&mut *reader, idle).await? {
                Some(delivery) => out.push(delivery.event),
                None => break,
            }
        }
        Ok(out)
    }

    /// Takes the `selection` out of the lot: republished to the redrive topic (`redrive`) or
    /// dropped (purge). Returns what was taken and the ids asked for but not found.
    pub async fn take(
        &self,
        bus: &dyn Bus,
        selection: &Selection,
        redrive: bool,
        idle: Duration,
    ) -> Result<Taken, BusError> {
        let mut reader = bus.subscribe(&self.parked, &self.parked).await?;
        let mut wanted = match selection {
            Selection::All => BTreeSet::new(),
            Selection::Ids(ids) => ids.clone(),
        };
        let mut read: Vec<Delivery> = Vec::new();
        let mut selected = Vec::new();
        let mut kept = Vec::new();
        while matches!(selection, Selection::All) || !wanted.is_empty() {
            let Some(delivery) = next(&mut *reader, idle).await? else {
                break;
            };
            let is_selected = match selection {
                Selection::All => true,
                Selection::Ids(_) => wanted.remove(delivery.event.id()),
            };
            if is_selected {
                selected.push(delivery.event.clone());
            } else {
                kept.push(delivery.event.clone());
            }
            read.push(delivery);
        }
        if redrive && !selected.is_empty() {
            let events: Vec<Event> = selected.iter().map(without_error_extensions).collect();
            bus.publish(&self.redrive, &events).await?;
        }
        if !kept.is_empty() {
            bus.publish(&self.parked, &kept).await?;
        }
        for delivery in read {
            delivery.ack();
        }
        Ok(Taken {
            taken: selected,
            missing: wanted.into_iter().collect(),
        })
    }
}

/// Which parked events `redrive` and `purge` take: always explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Ids(BTreeSet<String>),
}

/// What [`ParkingLot::take`] did.
#[derive(Debug)]
pub struct Taken {
    pub taken: Vec<Event>,
    pub missing: Vec<String>,
}

/// The next delivery, or `None` after `idle` without one. Corrupt records are skipped (the
/// bus already acknowledged them).
async fn next(reader: &mut dyn Subscription, idle: Duration) -> Result<Option<Delivery>, BusError> {
    loop {
        match tokio::time::timeout(idle, reader.next()).await {
            Err(_) => return Ok(None),
            Ok(Ok(delivery)) => return Ok(Some(delivery)),
            Ok(Err(BusError::Corrupt { position, reason })) => {
                tracing::warn!(position, %reason, "corrupt record in the parking lot skipped");
            }
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// The event as it was before it was parked.
pub fn without_error_extensions(event: &Event) -> Event {
    let mut event = event.clone();
    for name in ERROR_EXTENSIONS {
        event.remove_extension(name);
    }
    event
}
