//! Herald's event buses.
//!
//! # Layout
//! - [`Bus`]: the two-method trait every bus implements (publish a batch durably, subscribe a
//!   consumer group). Retries, filters and dead letters live in the broker, not here.
//! - [`Delivery`]: one event handed to a consumer group; acknowledging consumes it.
//! - [`codec`]: the one binary encoding of an `Event` used by buses that store bytes.
//! - [`ack`]: tracks out-of-order acknowledgements and yields the contiguous cursor.
//! - [`memory`]: in-process, no durability (tests and demos).
//! - [`embedded`]: durable segmented log on local disk with group commit (the default).
//! - [`contract`]: the contract test suite every bus passes (`bus_contract_tests!`); with the
//!   `testing` feature only, like the NATS and Kafka server harnesses (`nats::testing`,
//!   `kafka::testing`).

pub mod ack;
pub mod codec;
#[cfg(any(test, feature = "testing"))]
pub mod contract;
pub mod embedded;
mod error;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "pubsub")]
pub mod pubsub;
#[cfg(all(
    any(feature = "nats", feature = "kafka", feature = "pubsub"),
    any(test, feature = "testing")
))]
mod server_process;
#[cfg(any(feature = "nats", feature = "kafka", feature = "pubsub"))]
pub mod type_hints;

use async_trait::async_trait;
pub use cloudevents::Event;
pub use error::BusError;

/// A durable, partitioned-or-not log of CloudEvents with consumer groups.
///
/// Held as `Arc<dyn Bus>`. Topic and group names are chosen by the broker
/// (`knative-broker-{ns}-{name}`, `knative-trigger-{ns}-{name}`); a bus creates what is missing.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Appends `events` to `topic` in order. Returns only once the bus guarantees the events
    /// survive a crash (for the memory bus: once they are visible to subscribers). A batch is
    /// all or nothing.
    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError>;

    /// Joins consumer group `group` on `topic`. A group that never consumed before starts at
    /// the end of the topic. Deliveries not acknowledged before the subscription is dropped
    /// (or the process dies) are delivered again to the group's next subscription.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError> {
        self.subscribe_from(topic, group, StartPosition::Latest)
            .await
    }

    /// [`Bus::subscribe`], where a group that never consumed before starts at `start`
    /// instead of the end. A group that has a position keeps it (`start` is ignored).
    async fn subscribe_from(
        &self,
        topic: &str,
        group: &str,
        start: StartPosition,
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// [`Bus::subscribe_from`] for a consumer group that wants only the events `selector`
    /// accepts. A bus may use it to read and decode each event of `topic` once for all the
    /// groups that subscribe this way in this process (fan-out), handing a group only what its
    /// selector accepts; an event a group's selector refuses counts as acknowledged by that
    /// group (its position moves past it, as if it was delivered and acked), but **never
    /// before every event before it that the group was handed is acknowledged**: a group's
    /// committed position is still the first event it has not finished. A bus that does not
    /// use the selector hands out every event (this default), and the consumer filters them
    /// itself: a selector is a hint, never a change of what a group receives after filtering.
    async fn subscribe_selected(
        &self,
        topic: &str,
        group: &str,
        start: StartPosition,
        selector: Selector,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let _ = selector;
        self.subscribe_from(topic, group, start).await
    }

    /// Why the bus cannot take events now, if it cannot (for `/readyz`). Answers from state
    /// the bus keeps (a background probe where asking costs a round trip), so it is cheap.
    fn unready_reason(&self) -> Option<String> {
        None
    }

    /// Events the bus deleted before every consumer group acknowledged them (retention by age
    /// or size), per topic, counted since the bus opened (`herald_events_expired_total`).
    /// Buses that never delete unacknowledged events answer nothing.
    fn expired_events(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// Forgets the consumer groups of `topic` not named in `keep` (triggers removed from the
    /// configuration), so that their cursors no longer hold back retention; returns the
    /// forgotten names. Buses whose groups belong to the operator (Kafka, NATS) keep them.
    async fn forget_other_groups(
        &self,
        topic: &str,
        keep: &[&str],
    ) -> Result<Vec<String>, BusError> {
        let _ = (topic, keep);
        Ok(Vec::new())
    }

    /// Events of `topic` that consumer group `group` has not acknowledged yet (from its
    /// committed position to the end), if the bus can tell cheaply; `None` when it cannot, or
    /// when the group does not exist. The broker polls it to keep a paused or stuck
    /// trigger's lag honest (`herald_trigger_backlog_events`).
    async fn backlog(&self, topic: &str, group: &str) -> Result<Option<u64>, BusError> {
        let _ = (topic, group);
        Ok(None)
    }

    /// Deletes consumer group `group` of `topic` with its position: a temporary reader (a
    /// replay) must not hold back retention (NATS `interest` retention keeps every event a
    /// consumer has not acknowledged). A group that does not exist is not an error.
    async fn forget_group(&self, topic: &str, group: &str) -> Result<(), BusError>;

    /// Flushes what the bus keeps lazily (cursors, queued acknowledgements, stored offsets)
    /// and stops it. Call it once, after everything else that held the bus was dropped; it
    /// waits a bounded time (what is not flushed by then is delivered again).
    async fn close(self: std::sync::Arc<Self>) {}
}

/// Where a consumer group that has no position yet starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// After the last event: only what is published from now on.
    #[default]
    Latest,
    /// The oldest event the bus still keeps.
    Earliest,
    /// The first event that arrived at or after this time (by `knativearrivaltime` on the
    /// embedded and memory buses, the stream's timestamp on NATS, the record timestamp on
    /// Kafka); the end if none did. A time to come is the end (what arrives meanwhile is
    /// delivered).
    Time(chrono::DateTime<chrono::Utc>),
}

/// Which events of a topic a consumer group wants ([`Bus::subscribe_selected`]).
///
/// `accepts` is the whole truth: an event the group wants is one `accepts` returns `true` for.
/// `keys` only narrows which events are worth asking about, so that a bus can find the groups
/// interested in an event by hash lookup instead of asking every group: when `keys` is
/// `Some`, `accepts` is `false` for every event that has none of the listed `(attribute,
/// value)` pairs (attribute names are CloudEvents context attribute or extension names, the
/// value compared as the string form of the attribute, exactly and case-sensitively). `None`
/// means any event may be accepted.
#[derive(Clone)]
pub struct Selector {
    pub keys: Option<Vec<(String, String)>>,
    pub accepts: std::sync::Arc<dyn Fn(&Event) -> bool + Send + Sync>,
}

impl Selector {
    /// Every event (no filter).
    pub fn everything() -> Self {
        Self {
            keys: None,
            accepts: std::sync::Arc::new(|_| true),
        }
    }
}

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selector")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The arrival time Herald stamps on every event it accepts (`knativearrivaltime`), if the
/// event has a readable one.
pub fn arrival_time(event: &Event) -> Option<chrono::DateTime<chrono::Utc>> {
    match event.extension("knativearrivaltime")? {
        cloudevents::event::ExtensionValue::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc)),
        _ => None,
    }
}

/// How long [`Bus::close`] of a network bus waits for its last acknowledgements or offsets.
#[cfg(any(feature = "nats", feature = "kafka", feature = "pubsub"))]
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (at most [`CLOSE_GRACE`]) for `flushed`, the signal a dropped network bus gives once
/// it sent what it held.
#[cfg(any(feature = "nats", feature = "kafka", feature = "pubsub"))]
async fn await_flushed(what: &str, flushed: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(CLOSE_GRACE, flushed).await.is_err() {
        tracing::warn!(
            "{what} not flushed within {CLOSE_GRACE:?}; those events will be delivered again"
        );
    }
}

/// A consumer group's stream of deliveries.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next event. Errors are transient unless `is_retryable()` says otherwise.
    async fn next(&mut self) -> Result<Delivery, BusError>;
}

/// Called once when a delivery is acknowledged.
pub trait Acknowledge: Send + Sync {
    fn ack(&self, position: u64);
}

/// One event of a consumer group. Dropping it without [`Delivery::ack`] leaves it
/// unacknowledged: it comes back after a restart or a rebalance.
pub struct Delivery {
    pub event: Event,
    /// Position of the event on its topic (partition-local offset); stable across redelivery.
    pub position: u64,
    acker: std::sync::Arc<dyn Acknowledge>,
}

impl Delivery {
    pub fn new(event: Event, position: u64, acker: std::sync::Arc<dyn Acknowledge>) -> Self {
        Self {
            event,
            position,
            acker,
        }
    }

    /// Marks the event done for this group (delivered, dead-lettered or filtered out).
    pub fn ack(self) {
        self.acker.ack(self.position);
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("position", &self.position)
            .field("event.id", &cloudevents::AttributesReader::id(&self.event))
            .finish()
    }
}
