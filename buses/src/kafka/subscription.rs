//! One group's subscription: a librdkafka consumer of its own, polled by a task of its own.
//!
//! The task polls the consumer all the time, so the group's rebalances are served at once even
//! while the broker's dispatcher, its window full, asks for nothing (librdkafka serves
//! rebalances only while the consumer is polled). It runs on a thread of its own, since the
//! rebalance callbacks block on requests to the brokers (`rebalance`). Records become deliveries in a bounded
//! channel; when it is full the task pauses the assigned partitions and keeps what librdkafka
//! had fetched already in order, resuming once the channel has room again.
//!
//! Dropping the subscription ends the task; the consumer is then closed on a thread of its own
//! (final commit of the stored offsets, group left).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use async_trait::async_trait;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use tokio::sync::{mpsc, watch};

use super::cursor::{ConsumerSlot, Cursors, PartitionAcker, PartitionCursor};
pub(super) use super::rebalance::GroupConsumer;
use super::rebalance::GroupContext;
use super::{close_in_background, codec};
use crate::{BusError, Delivery, Subscription};

/// Deliveries handed to the subscriber ahead of its `next` calls at most.
const CHANNEL: usize = 256;

pub(super) struct KafkaSubscription {
    rx: mpsc::Receiver<Result<Delivery, BusError>>,
    label: String,
}

impl KafkaSubscription {
    /// Creates the consumer, subscribes it, starts its poll task and waits for its first
    /// assignment (which may be empty when other members hold every partition).
    pub async fn open(
        config: &super::KafkaConfig,
        topic: &str,
        group: &str,
        start: crate::StartPosition,
        open: Arc<dyn Send + Sync>,
    ) -> Result<Self, BusError> {
        let cursors = Arc::new(Cursors::default());
        let slot = Arc::new(ConsumerSlot::default());
        let (assignments, mut assigned) = watch::channel(0);
        let context = GroupContext {
            topic: topic.to_owned(),
            cursors: cursors.clone(),
            slot: slot.clone(),
            request_timeout: config.request_timeout,
            assignments,
            start,
        };
        let consumer: GroupConsumer = config
            .consumer(group)
            .create_with_context(context)
            .map_err(|e| BusError::unavailable(format!("kafka consumer for {group}: {e}")))?;
        let consumer = Arc::new(consumer);
        slot.set(&consumer);
        let label = format!("{topic}/{group}");
        let closer = Closer {
            consumer: Some(consumer.clone()),
            slot: slot.clone(),
            open: Some(open),
            label: label.clone(),
        };
        consumer
            .subscribe(&[topic])
            .map_err(|e| BusError::unavailable(format!("subscribing {group} to {topic}: {e}")))?;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let poller = Poller {
            consumer,
            cursors,
            slot,
            label: label.clone(),
            _closer: closer,
        };
        // librdkafka runs the rebalance callbacks on the thread that polls, and they block
        // (committed offsets, end offsets, a synchronous commit; up to `request_timeout` each):
        // the poll loop gets a thread and a single-threaded runtime of its own instead of a
        // runtime worker. If it dies, `tx` is dropped and `next` answers `Closed`.
        std::thread::Builder::new()
            .name("herald-kafka-poll".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(poller.run(tx)),
                    Err(e) => tracing::error!(error = %e, "no runtime for a kafka poll thread"),
                }
            })
            .map_err(|e| BusError::unavailable(format!("no poll thread for {group}: {e}")))?;
        let limit = config.request_timeout * 3;
        tokio::time::timeout(limit, assigned.wait_for(|n| *n > 0))
            .await
            .map_err(|_| {
                BusError::unavailable(format!(
                    "no partitions of {topic} assigned to {group} within {limit:?}"
                ))
            })?
            .map_err(|_| BusError::unavailable(format!("consumer of {group} stopped")))?;
        Ok(Self { rx, label })
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    /// Cancel-safe: a delivery leaves the channel only in the step that returns it.
    async fn next(&mut self) -> Result<Delivery, BusError> {
        match self.rx.recv().await {
            Some(result) => result,
            // The poll task ended: it panicked or its thread could not run it.
            None => Err(BusError::Closed {
                reason: format!("consumer task of {} ended", self.label),
            }),
        }
    }
}

impl std::fmt::Debug for KafkaSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubscription")
            .field("label", &self.label)
            .finish()
    }
}

/// Closes the consumer when the poll task ends, however it ends (also when the runtime drops
/// it): the cursors lose their way to the consumer first, so the close is its last owner.
struct Closer {
    consumer: Option<Arc<GroupConsumer>>,
    slot: Arc<ConsumerSlot>,
    /// Held until the consumer is closed (see `KafkaBus::flushed`).
    open: Option<Arc<dyn Send + Sync>>,
    label: String,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.slot.clear();
        let consumer = self.consumer.take();
        let open = self.open.take();
        let label = std::mem::take(&mut self.label);
        close_in_background(move || {
            // Closing commits the stored offsets and leaves the group; it blocks until done.
            drop(consumer);
            tracing::debug!(subscription = %label, "consumer closed");
            drop(open);
        });
    }
}

struct Poller {
    consumer: Arc<GroupConsumer>,
    cursors: Arc<Cursors>,
    slot: Arc<ConsumerSlot>,
    label: String,
    _closer: Closer,
}

impl Poller {
    async fn run(self, tx: mpsc::Sender<Result<Delivery, BusError>>) {
        let consumer = self.consumer.clone();
        // Received while the channel was full, in partition order.
        let mut overflow: VecDeque<Result<Delivery, BusError>> = VecDeque::new();
        let mut paused = false;
        loop {
            if overflow.is_empty() && paused {
                self.set_paused(false);
                paused = false;
            }
            tokio::select! {
                received = consumer.recv() => {
                    overflow.push_back(self.receive(received));
                    if !overflow.is_empty() && tx.capacity() == 0 {
                        // Also after each rebalance, which assigns unpaused partitions.
                        self.set_paused(true);
                        paused = true;
                    }
                }
                permit = tx.reserve(), if !overflow.is_empty() => {
                    let Ok(permit) = permit else { return };
                    permit.send(overflow.pop_front().expect("not empty"));
                }
                _ = tx.closed() => return,
            }
        }
    }

    fn set_paused(&self, pause: bool) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(e) = result {
            tracing::debug!(subscription = %self.label, pause, error = %e, "pause/resume failed");
        }
    }

    /// Turns a received record into a delivery, or into [`BusError::Corrupt`] for a record that
    /// is not a CloudEvent (acknowledged at once).
    fn receive(
        &self,
        received: Result<BorrowedMessage<'_>, KafkaError>,
    ) -> Result<Delivery, BusError> {
        let message = match received {
            Ok(message) => message,
            Err(e) => {
                return Err(BusError::unavailable(format!(
                    "consuming {}: {e}",
                    self.label
                )));
            }
        };
        let (partition, offset) = (message.partition(), message.offset());
        let cursor = self
            .cursors
            .lock()
            .unwrap()
            .entry(partition)
            .or_insert_with(|| {
                Arc::new(PartitionCursor::new(
                    message.topic(),
                    partition,
                    self.slot.clone(),
                    None,
                ))
            })
            .clone();
        cursor.delivered(offset);
        match decode(&message) {
            Ok(event) => Ok(Delivery::new(
                event,
                offset as u64,
                Arc::new(PartitionAcker(cursor)),
            )),
            Err(reason) => {
                // Skipped and acknowledged: it never comes back and never holds the commit
                // point; the caller counts and logs it.
                cursor.done(offset);
                Err(BusError::Corrupt {
                    position: offset as u64,
                    reason: format!("partition {partition}: {reason}"),
                })
            }
        }
    }
}

/// A header of a consumed record, copied.
type OwnedHeader = (Vec<u8>, Option<Vec<u8>>);

/// Decodes a consumed record; the error says why it is not a CloudEvent.
///
/// rdkafka's header accessor unwraps each header name as UTF-8, so a record with any other
/// name (anyone can produce one) panics inside it. The workspace forbids the `unsafe` FFI that
/// reads the name's bytes, so the panic is caught here and the record reported as corrupt (the
/// panic hook still prints it). The decoder runs under the same guard: a panic in it or in the
/// CloudEvents SDK must not kill the subscription, which would meet the record again forever.
fn decode(message: &BorrowedMessage<'_>) -> Result<cloudevents::Event, String> {
    let copied = catch_unwind(AssertUnwindSafe(|| {
        message.headers().map_or_else(Vec::new, |headers| {
            headers
                .iter()
                .map(|h| (h.key.as_bytes().to_vec(), h.value.map(<[u8]>::to_vec)))
                .collect::<Vec<OwnedHeader>>()
        })
    }))
    .map_err(|_| "a header name is not UTF-8".to_owned())?;
    let headers: Vec<_> = copied
        .iter()
        .map(|(key, value)| codec::RawHeader {
            key,
            value: value.as_deref(),
        })
        .collect();
    catch_unwind(AssertUnwindSafe(|| {
        codec::decode(&headers, message.payload())
    }))
    .map_err(|_| "the decoder panicked".to_owned())?
    .map_err(|e| e.to_string())
}
