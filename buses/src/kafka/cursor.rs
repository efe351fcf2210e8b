//! Offsets of the partitions a subscription holds: which records are in flight and how far the
//! group may commit.
//!
//! A partition's commit point is the lowest offset delivered and not yet acknowledged, or, with
//! nothing in flight, the offset after the last record received. Offsets need not be contiguous
//! (compacted topics, transaction markers written by other producers): the point moves over
//! offsets never delivered, never over one in flight. Every move is stored in librdkafka
//! (`rd_kafka_offsets_store`), which commits stored offsets every `auto.commit.interval.ms`, when
//! partitions are revoked and when the consumer closes.
//!
//! A cursor lives for one assignment of its partition. When the partition is revoked (or lost)
//! the cursor is marked revoked before librdkafka's final commit, so acknowledgements arriving
//! afterwards change nothing: those events are delivered again to the partition's next owner
//! (duplicates only of what was in flight, never a commit past a gap). librdkafka refuses to
//! store offsets of partitions it does not hold as well.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::rebalance::GroupConsumer;
use crate::Acknowledge;

/// The consumer the cursors store offsets in. Weak, and cleared when the subscription is dropped
/// so that the consumer is always closed by the subscription's own close task.
#[derive(Default)]
pub(super) struct ConsumerSlot(Mutex<Weak<GroupConsumer>>);

impl ConsumerSlot {
    pub fn set(&self, consumer: &Arc<GroupConsumer>) {
        *self.0.lock().unwrap() = Arc::downgrade(consumer);
    }

    pub fn clear(&self) {
        *self.0.lock().unwrap() = Weak::new();
    }

    /// Stores `offset` (the next one to read) as the partition's commit point.
    fn store(&self, topic: &str, partition: i32, offset: i64) {
        let slot = self.0.lock().unwrap();
        let Some(consumer) = slot.upgrade() else {
            return;
        };
        let mut tpl = TopicPartitionList::with_capacity(1);
        if tpl
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .is_ok()
            && let Err(e) = consumer.store_offsets(&tpl)
        {
            // The partition is no longer assigned: its next owner delivers again.
            tracing::debug!(topic, partition, offset, error = %e, "offset not stored");
        }
        drop(consumer);
    }
}

/// The cursors of the partitions a subscription holds now, by partition.
pub(super) type Cursors = Mutex<HashMap<i32, Arc<PartitionCursor>>>;

pub(super) struct PartitionCursor {
    topic: String,
    partition: i32,
    slot: Arc<ConsumerSlot>,
    state: Mutex<State>,
}

struct State {
    /// Delivered, not yet acknowledged.
    in_flight: BTreeSet<i64>,
    /// The offset after the last record received; `None` before the first one when the start
    /// offset was not known at assignment.
    next: Option<i64>,
    /// The last commit point stored.
    stored: Option<i64>,
    revoked: bool,
}

impl PartitionCursor {
    /// A cursor for a fresh assignment starting at `start` (if known).
    pub fn new(topic: &str, partition: i32, slot: Arc<ConsumerSlot>, start: Option<i64>) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            slot,
            state: Mutex::new(State {
                in_flight: BTreeSet::new(),
                next: start,
                stored: start,
                revoked: false,
            }),
        }
    }

    /// A record at `offset` is handed out.
    pub fn delivered(&self, offset: i64) {
        let mut state = self.state.lock().unwrap();
        state.in_flight.insert(offset);
        state.next = Some(state.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// A record at `offset` is done (acknowledged, or skipped as undecodable).
    pub fn done(&self, offset: i64) {
        let mut state = self.state.lock().unwrap();
        if state.revoked {
            return;
        }
        state.in_flight.remove(&offset);
        state.next = Some(state.next.map_or(offset + 1, |n| n.max(offset + 1)));
        let point = state.in_flight.first().copied().or(state.next);
        if let Some(point) = point
            && state.stored.is_none_or(|s| point > s)
        {
            // Stored under the cursor's lock, so stores of one partition never reorder.
            self.slot.store(&self.topic, self.partition, point);
            state.stored = Some(point);
        }
    }

    /// The partition left this subscription: later acknowledgements change nothing.
    pub fn revoke(&self) {
        self.state.lock().unwrap().revoked = true;
    }

    #[cfg(test)]
    fn stored(&self) -> Option<i64> {
        self.state.lock().unwrap().stored
    }
}

/// The [`Acknowledge`] of every delivery from one partition assignment.
pub(super) struct PartitionAcker(pub Arc<PartitionCursor>);

impl Acknowledge for PartitionAcker {
    fn ack(&self, position: u64) {
        self.0.done(position as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(start: Option<i64>) -> PartitionCursor {
        PartitionCursor::new("t", 0, Arc::default(), start)
    }

    #[test]
    fn the_commit_point_waits_for_the_lowest_offset_in_flight() {
        let c = cursor(Some(10));
        for o in 10..13 {
            c.delivered(o);
        }
        c.done(12);
        c.done(11);
        assert_eq!(c.stored(), Some(10));
        c.done(10);
        assert_eq!(c.stored(), Some(13));
    }

    #[test]
    fn gaps_in_offsets_are_passed_over() {
        let c = cursor(Some(0));
        c.delivered(0);
        c.delivered(5); // 1..5 compacted away or transaction markers
        c.done(5);
        assert_eq!(c.stored(), Some(0));
        c.done(0);
        assert_eq!(c.stored(), Some(6));
    }

    #[test]
    fn acknowledgements_after_a_revoke_change_nothing() {
        let c = cursor(None);
        c.delivered(7);
        c.delivered(8);
        c.done(7);
        assert_eq!(c.stored(), Some(8));
        c.revoke();
        c.done(8);
        assert_eq!(c.stored(), Some(8));
    }
}
