//! The Kafka bus: Kafka stores and replicates, several Herald replicas share it, and its topics
//! are readable by anything that reads Knative Kafka broker topics.
//!
//! # Layout
//! - [`config`]: [`KafkaConfig`] and the librdkafka settings derived from it.
//! - [`codec`]: the CloudEvents Kafka protocol binding (binary mode written, both modes read).
//! - `subscription`: one consumer per subscription, polled by a task of its own.
//! - `rebalance`: start offsets on assignment, cursors revoked before partitions leave.
//! - `cursor`: per-partition in-flight offsets and the contiguous commit point.
//! - [`testing`]: a `tansu` broker per test, for this crate's tests and the broker's.
//!
//! # Naming
//! | Herald | Kafka |
//! | --- | --- |
//! | topic `knative-broker-{ns}-{name}` | the topic of that name (created if missing) |
//! | group `knative-trigger-{ns}-{name}` | the consumer group of that name |
//!
//! A topic name outside Kafka's `[A-Za-z0-9._-]{1,249}` is rejected (Knative's never are).
//!
//! # Settings
//! Topics Herald creates get `partitions` (default 10) and `replication_factor` (default 1);
//! an existing topic keeps its own.
//!
//! Producer: `acks=all`, `enable.idempotence=true`, `partitioner=murmur2` (the Java client's
//! hash of the key, so a `partitionkey` lands on the partition Knative's producers pick; events
//! without one all go to one partition, which keeps their relative order),
//! `message.max.bytes` = `max_message_bytes` (default 1 000 000), `message.timeout.ms` =
//! `publish_timeout` (default 5 s), `linger.ms=2`.
//!
//! Consumers: `group.id` = the group, `auto.offset.reset=latest`, `enable.auto.offset.store=
//! false` and `enable.auto.commit=true` with `auto.commit.interval.ms` = `commit_interval`
//! (default 1 s): Herald stores a partition's offset only once every record before it was
//! acknowledged, and librdkafka commits what is stored periodically, before partitions are
//! revoked and on close. (Manual commits would add a timer and a commit in the revoke callback
//! to get the same; librdkafka also refuses to store offsets of partitions no longer assigned.)
//!
//! Extra librdkafka options go in [`KafkaConfig::extra`]: `producer.X=v` or `consumer.X=v` for
//! one kind of client, `X=v` for all (e.g. `security.protocol`, `sasl.*`, `client.rack`,
//! `producer.compression.type=zstd`, `producer.partitioner=murmur2_random` to spread events
//! without key over partitions, `consumer.max.poll.interval.ms`). The options Herald's guarantees
//! rest on ([`config::RESERVED`]) are refused.
//!
//! # Guarantees
//! - `publish` encodes every event and checks every record's size against `max_message_bytes`
//!   first (an extension name headers cannot carry: [`BusError::Rejected`]; too large:
//!   [`BusError::TooLarge`], as is librdkafka's or the broker's `MESSAGE_TOO_LARGE`; nothing
//!   produced), produces the batch and returns only after the delivery report of every record.
//!   A record not acknowledged by all in-sync replicas within `publish_timeout` (broker down,
//!   slow, topic unavailable) fails the publish with a retryable error; the whole call is
//!   bounded by `publish_timeout + request_timeout`. A batch is not atomic: a failed batch may
//!   leave any subset of its records stored (each partition keeps their order), and its retry
//!   stores those again (Kafka has no de-duplication across producer sessions without
//!   transactions): at-least-once.
//! - A delivery's position is its offset in its partition; order holds within a partition.
//! - Offsets are committed only up to the lowest offset still in flight per partition. A dropped
//!   subscription closes its consumer (final commit, leave group) in the background;
//!   [`KafkaBus::flushed`] resolves once every consumer of a dropped bus is closed.
//! - Rebalances: a revoked partition's cursor stops storing before librdkafka's final commit, so
//!   the new owner starts at the lowest event that was in flight: only in-flight events are
//!   delivered twice.
//! - Consumers of one group in several processes split the topic's partitions. A process that
//!   is killed (no close) keeps its partitions until its session times out
//!   (`session.timeout.ms`, librdkafka default 45 s); the other members then start at the last
//!   committed offsets: besides what was in flight, events acknowledged within the last
//!   `commit_interval` are delivered again. Nothing acknowledged-but-uncommitted is lost.
//! - Each subscription's consumer is polled by a task of its own, so rebalances are served even
//!   while the subscriber asks for nothing; a full hand-over channel pauses the partitions.
//!
//! # Known gaps of tansu 0.6 (the test broker)
//! - A fetch is answered only with record batches that start at or after the fetch offset, so a
//!   group resuming inside a batch would skip the batch's rest. The tansu harness produces one
//!   record per batch ([`testing::Tansu::config`]); the same contract suite runs with ordinary
//!   batching on librdkafka's mock cluster.
//! - After a produce timeout librdkafka bumps the idempotent producer's epoch and tansu answers
//!   every later produce with `PRODUCER_FENCED`; Herald replaces a producer in that state (also
//!   the right thing on Kafka for fatal idempotence errors).

pub mod codec;
pub mod config;
mod cursor;
mod rebalance;
mod subscription;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudevents::{AttributesReader, Event};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;

pub use config::KafkaConfig;
use config::check_topic;
use subscription::KafkaSubscription;

use crate::{Bus, BusError, StartPosition, Subscription};

/// A bus on a Kafka cluster (or anything speaking its protocol). Cheap to share as
/// `Arc<dyn Bus>`.
pub struct KafkaBus {
    config: KafkaConfig,
    producer: Mutex<Arc<FutureProducer>>,
    admin: AdminClient<DefaultClientContext>,
    /// Topics this process created or found, so publishes skip the admin request.
    topics: Mutex<HashSet<String>>,
    open: Option<Arc<OpenGuard>>,
    flushed: watch::Receiver<bool>,
    /// Set by a background metadata probe every [`PROBE_INTERVAL`], so readiness is cheap.
    reachable: Arc<std::sync::atomic::AtomicBool>,
}

/// How often a background probe asks Kafka for metadata (for readiness).
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("brokers", &self.config.brokers)
            .finish()
    }
}

/// Dropped when the bus and every consumer it opened are closed.
struct OpenGuard(watch::Sender<bool>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl KafkaBus {
    /// Creates the clients and checks that a broker answers within `request_timeout`
    /// ([`BusError::Unavailable`] if not). Afterwards librdkafka reconnects by itself.
    pub async fn connect(config: KafkaConfig) -> Result<KafkaBus, BusError> {
        config.validate()?;
        let producer = create_producer(&config)?;
        let admin: AdminClient<DefaultClientContext> = config
            .admin()
            .create()
            .map_err(|e| BusError::unavailable(format!("kafka admin client: {e}")))?;
        let probe = producer.clone();
        let timeout = config.request_timeout;
        tokio::task::spawn_blocking(move || probe.client().fetch_metadata(None, timeout))
            .await
            .map_err(|e| BusError::unavailable(format!("kafka metadata probe: {e}")))?
            .map_err(|e| {
                BusError::unavailable(format!("connecting to kafka at {}: {e}", config.brokers))
            })?;
        let (done, flushed) = watch::channel(false);
        let reachable = Arc::new(std::sync::atomic::AtomicBool::new(true));
        spawn_probe(producer.clone(), Arc::downgrade(&reachable), timeout);
        Ok(KafkaBus {
            config,
            producer: Mutex::new(producer),
            admin,
            topics: Mutex::default(),
            open: Some(Arc::new(OpenGuard(done))),
            flushed,
            reachable,
        })
    }

    /// Resolves once this bus and every subscription it opened are dropped and their consumers
    /// closed (final offset commit, group left). Take it before the bus goes into an
    /// `Arc<dyn Bus>`; await it (with a timeout) at shutdown.
    pub fn flushed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut flushed = self.flushed.clone();
        async move {
            let _ = flushed.wait_for(|done| *done).await;
        }
    }

    /// The settings this bus was created with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.lock().unwrap().clone()
    }

    /// Creates `topic` unless this process already saw it.
    async fn ensure_topic(&self, topic: &str) -> Result<(), BusError> {
        if self.topics.lock().unwrap().contains(topic) {
            return Ok(());
        }
        let new = NewTopic::new(
            topic,
            self.config.partitions,
            TopicReplication::Fixed(i32::from(self.config.replication_factor)),
        );
        let options = AdminOptions::new()
            .request_timeout(Some(self.config.request_timeout))
            .operation_timeout(Some(self.config.request_timeout));
        let created = tokio::time::timeout(
            self.config.request_timeout + Duration::from_secs(1),
            self.admin.create_topics([&new], &options),
        )
        .await
        .map_err(|_| BusError::unavailable(format!("creating topic {topic}: timed out")))?;
        let refused = match created {
            Ok(results) => results.into_iter().find_map(|r| match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                Err((_, code)) => Some(code.to_string()),
            }),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = refused {
            // No right to create topics (or no CreateTopics at all): fine if it exists.
            if !self.topic_exists(topic).await {
                return Err(BusError::unavailable(format!(
                    "creating topic {topic}: {why}"
                )));
            }
        }
        self.topics.lock().unwrap().insert(topic.to_owned());
        Ok(())
    }

    /// Whether the cluster's metadata lists `topic` with at least one partition.
    async fn topic_exists(&self, topic: &str) -> bool {
        let producer = self.producer();
        let (topic, timeout) = (topic.to_owned(), self.config.request_timeout);
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .is_ok_and(|m| {
                    m.topics().iter().any(|t| {
                        t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                    })
                })
        })
        .await
        .unwrap_or(false)
    }

    async fn publish_all(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        let records = events
            .iter()
            .map(|event| {
                codec::encode(event).map_err(|e| BusError::Rejected {
                    reason: format!("event {:?} as a kafka record: {e}", event.id()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limit = self.config.max_message_bytes as u64;
        for record in &records {
            let size = record.wire_size() as u64;
            if size > limit {
                return Err(BusError::TooLarge { size, limit });
            }
        }
        self.ensure_topic(topic).await?;
        let producer = self.producer();
        let mut pending = Vec::with_capacity(records.len());
        for record in &records {
            let mut future = FutureRecord::to(topic).headers(record.owned_headers());
            if let Some(key) = &record.key {
                future = future.key(key.as_str());
            }
            if let Some(value) = &record.value {
                future = future.payload(value.as_slice());
            }
            match producer.send_result(future) {
                Ok(delivery) => pending.push(delivery),
                Err((e, _)) => return Err(self.produce_error(topic, &producer, e, record)),
            }
        }
        for (delivery, record) in pending.into_iter().zip(&records) {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(self.produce_error(topic, &producer, e, record)),
                Err(_) => return Err(BusError::unavailable("kafka producer closed")),
            }
        }
        Ok(())
    }

    /// Maps a produce failure; replaces a producer that hit a fatal (idempotence) error.
    fn produce_error(
        &self,
        topic: &str,
        producer: &Arc<FutureProducer>,
        e: KafkaError,
        record: &codec::Record,
    ) -> BusError {
        let reason = format!("publishing to {topic}: {e}");
        // Idempotence state the broker no longer accepts (tansu 0.6 answers PRODUCER_FENCED to
        // every produce once librdkafka bumped its epoch after a timeout): a new producer gets
        // a new producer id.
        let fenced = matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber
                    | RDKafkaErrorCode::UnknownProducerId
                    | RDKafkaErrorCode::InvalidProducerIdMapping
            )
        );
        let fatal = producer.client().fatal_error();
        if fenced || fatal.is_some() {
            tracing::error!(error = %e, fatal = ?fatal, "kafka producer unusable; replacing it");
            if let Ok(fresh) = create_producer(&self.config) {
                let mut current = self.producer.lock().unwrap();
                if Arc::ptr_eq(&current, producer) {
                    let old = std::mem::replace(&mut *current, fresh);
                    // Destroyed off the runtime, once the publishes still using it are done.
                    close_in_background(move || {
                        while Arc::strong_count(&old) > 1 {
                            block_briefly(Duration::from_millis(50));
                        }
                        drop(old);
                    });
                }
            }
            return BusError::Unavailable { reason };
        }
        match e.rdkafka_error_code() {
            // The producer's own check, or a topic whose `max.message.bytes` is below ours (its
            // limit is not known here: ours is reported).
            Some(RDKafkaErrorCode::MessageSizeTooLarge) => BusError::TooLarge {
                size: record.wire_size() as u64,
                limit: self.config.max_message_bytes as u64,
            },
            Some(RDKafkaErrorCode::InvalidRecord) => BusError::Rejected { reason },
            Some(RDKafkaErrorCode::QueueFull) => BusError::Overloaded { reason },
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                // Deleted behind our back: create it again on the next publish.
                self.topics.lock().unwrap().remove(topic);
                BusError::Unavailable { reason }
            }
            _ => BusError::Unavailable { reason },
        }
    }
}

fn create_producer(config: &KafkaConfig) -> Result<Arc<FutureProducer>, BusError> {
    config
        .producer()
        .create()
        .map(Arc::new)
        .map_err(|e| BusError::unavailable(format!("kafka producer: {e}")))
}

impl Drop for KafkaBus {
    fn drop(&mut self) {
        // Destroying a librdkafka client blocks until its threads end: off the runtime.
        let producer = self.producer.get_mut().unwrap().clone();
        let open = self.open.take();
        let close = move || {
            let _ = producer.flush(Duration::from_secs(5));
            drop(producer);
            drop(open);
        };
        close_in_background(close);
    }
}

/// Asks Kafka for metadata every [`PROBE_INTERVAL`] and records whether it answered, until
/// the bus (the only strong holder of `reachable`) is dropped.
fn spawn_probe(
    producer: Arc<FutureProducer>,
    reachable: std::sync::Weak<std::sync::atomic::AtomicBool>,
    timeout: Duration,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            if reachable.strong_count() == 0 {
                return;
            }
            let probe = producer.clone();
            let ok = tokio::task::spawn_blocking(move || {
                probe.client().fetch_metadata(None, timeout).is_ok()
            })
            .await
            .unwrap_or(false);
            let Some(flag) = reachable.upgrade() else {
                return;
            };
            flag.store(ok, std::sync::atomic::Ordering::Release);
        }
    });
}

/// Runs `close` (destroying librdkafka clients, which blocks until their final commits and
/// requests end, for ever if the cluster is gone) on a thread of its own: not a runtime worker,
/// and not `spawn_blocking`, whose tasks a runtime waits for when it shuts down. The process
/// exits without waiting for it; `KafkaBus::flushed` tells when it is done.
fn close_in_background(close: impl FnOnce() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("herald-kafka-close".into())
        .spawn(close);
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread to close a kafka client on");
    }
}

/// Only on the closing threads of [`close_in_background`], never on a runtime worker.
#[allow(clippy::disallowed_methods)]
fn block_briefly(d: Duration) {
    std::thread::sleep(d);
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        check_topic(topic)?;
        let bound = self.config.publish_timeout + self.config.request_timeout;
        tokio::time::timeout(bound, self.publish_all(topic, events))
            .await
            .map_err(|_| {
                BusError::unavailable(format!(
                    "publishing to {topic}: no delivery within {bound:?}"
                ))
            })?
    }

    /// The start applies to partitions the group never committed an offset for.
    async fn subscribe_from(
        &self,
        topic: &str,
        group: &str,
        start: StartPosition,
    ) -> Result<Box<dyn Subscription>, BusError> {
        check_topic(topic)?;
        if group.is_empty() {
            return Err(BusError::Rejected {
                reason: "empty kafka consumer group".into(),
            });
        }
        self.ensure_topic(topic).await?;
        let open = self.open.clone().expect("set until drop");
        let subscription = KafkaSubscription::open(&self.config, topic, group, start, open).await?;
        Ok(Box::new(subscription))
    }

    /// Kept: a Kafka group's offsets do not hold back retention (which is by time and size),
    /// and the broker expires the offsets of an empty group by itself
    /// (`offsets.retention.minutes`). Deleting it here raced with the dropped consumer's last
    /// commit, which could bring the group back.
    async fn forget_group(&self, _topic: &str, _group: &str) -> Result<(), BusError> {
        Ok(())
    }

    fn unready_reason(&self) -> Option<String> {
        (!self.reachable.load(std::sync::atomic::Ordering::Acquire))
            .then(|| format!("no kafka broker at {} answers", self.config.brokers))
    }

    async fn close(self: Arc<Self>) {
        let flushed = self.flushed();
        drop(self);
        crate::await_flushed("kafka offsets", flushed).await;
    }
}
