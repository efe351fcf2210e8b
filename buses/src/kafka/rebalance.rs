//! Rebalances of one subscription's consumer: start offsets on assignment, cursors revoked
//! before partitions leave.
//!
//! On assignment every partition gets an explicit start offset: the group's committed offset,
//! or, for a partition the group never committed, the end of the partition (a new group starts
//! at the end). That end offset is committed at once, so that events published after
//! `subscribe` returned are delivered even if this subscription goes away before acknowledging
//! anything.
//!
//! The callbacks block on requests to the brokers; librdkafka runs them on the thread that polls
//! the consumer, which is the subscription's own poll thread, never a runtime worker.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::cursor::{ConsumerSlot, Cursors, PartitionCursor};

pub(super) type GroupConsumer = StreamConsumer<GroupContext>;

/// Rebalance handling of one subscription's consumer.
pub(super) struct GroupContext {
    pub topic: String,
    pub cursors: Arc<Cursors>,
    pub slot: Arc<ConsumerSlot>,
    pub request_timeout: Duration,
    /// Counts completed assignments (`subscribe` waits for the first).
    pub assignments: watch::Sender<u64>,
    /// Where a partition the group never committed starts.
    pub start: crate::StartPosition,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let fresh = self.start_offsets(consumer, tpl);
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned {
                    tracing::error!(topic = %self.topic, error = %e, "assigning partitions failed");
                    return;
                }
                self.commit_fresh(consumer, fresh);
                let mut cursors = self.cursors.lock().unwrap();
                for elem in tpl.elements_for_topic(&self.topic) {
                    let start = match elem.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    };
                    let cursor = PartitionCursor::new(
                        &self.topic,
                        elem.partition(),
                        self.slot.clone(),
                        start,
                    );
                    if let Some(old) = cursors.insert(elem.partition(), Arc::new(cursor)) {
                        old.revoke();
                    }
                }
                tracing::info!(
                    topic = %self.topic,
                    partitions = ?cursors.keys().collect::<Vec<_>>(),
                    "partitions assigned"
                );
                drop(cursors);
                self.assignments.send_modify(|n| *n += 1);
            }
            _ => {
                // Revoked or lost. librdkafka commits the offsets stored so far when the
                // partitions are unassigned; the cursors stop storing first.
                let mut cursors = self.cursors.lock().unwrap();
                if cooperative && err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    for elem in tpl.elements_for_topic(&self.topic) {
                        if let Some(cursor) = cursors.remove(&elem.partition()) {
                            cursor.revoke();
                        }
                    }
                } else {
                    for (_, cursor) in cursors.drain() {
                        cursor.revoke();
                    }
                }
                drop(cursors);
                if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    tracing::warn!(topic = %self.topic, error = ?err, "rebalance error; partitions dropped");
                } else {
                    tracing::info!(topic = %self.topic, "partitions revoked");
                }
                let unassigned = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = unassigned {
                    tracing::warn!(topic = %self.topic, error = %e, "unassigning partitions failed");
                }
            }
        }
    }
}

impl GroupContext {
    /// Sets every partition's offset in `tpl` to the group's committed offset or, where the
    /// group has none, to the partition's end; returns the latter (to be committed). On errors
    /// the offsets stay as they are and librdkafka applies `auto.offset.reset=latest` itself.
    fn start_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
    ) -> TopicPartitionList {
        let mut fresh = TopicPartitionList::new();
        let committed = match consumer.committed_offsets(tpl.clone(), self.request_timeout) {
            Ok(committed) => committed,
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "reading committed offsets failed");
                return fresh;
            }
        };
        for elem in committed.elements() {
            let (topic, partition) = (elem.topic().to_owned(), elem.partition());
            let start = match elem.offset() {
                Offset::Offset(o) if o >= 0 => o,
                _ => match self.fresh_start(consumer, &topic, partition) {
                    Ok(start) => {
                        let _ =
                            fresh.add_partition_offset(&topic, partition, Offset::Offset(start));
                        start
                    }
                    Err(e) => {
                        tracing::warn!(%topic, partition, error = %e, "reading the start offset failed");
                        continue;
                    }
                },
            };
            let _ = tpl.set_partition_offset(&topic, partition, Offset::Offset(start));
        }
        fresh
    }

    /// Where a partition the group never committed starts: its end, its beginning, or the
    /// first record with a timestamp at or after the start time (the end if none).
    fn fresh_start(
        &self,
        consumer: &BaseConsumer<Self>,
        topic: &str,
        partition: i32,
    ) -> rdkafka::error::KafkaResult<i64> {
        let (low, high) = consumer.fetch_watermarks(topic, partition, self.request_timeout)?;
        let time = match self.start {
            crate::StartPosition::Latest => return Ok(high),
            crate::StartPosition::Earliest => return Ok(low),
            // A time to come starts at the end, as on every bus.
            crate::StartPosition::Time(time) if time >= chrono::Utc::now() => return Ok(high),
            crate::StartPosition::Time(time) => time,
        };
        let mut query = TopicPartitionList::new();
        query.add_partition_offset(topic, partition, Offset::Offset(time.timestamp_millis()))?;
        let found = consumer.offsets_for_times(query, self.request_timeout)?;
        Ok(found
            .find_partition(topic, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            })
            .unwrap_or(high))
    }

    /// Commits the start offsets of partitions the group never committed, so that a group's
    /// start is fixed when `subscribe` returns and survives this process.
    fn commit_fresh(&self, consumer: &BaseConsumer<Self>, fresh: TopicPartitionList) {
        if fresh.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&fresh, CommitMode::Sync) {
            // Still stored below via the cursors' start; committed with the next auto-commit.
            tracing::warn!(topic = %self.topic, error = %e, "committing start offsets failed");
            let _ = consumer.store_offsets(&fresh);
        }
    }
}
