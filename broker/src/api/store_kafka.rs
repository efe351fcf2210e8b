//! API resources in a compacted Kafka topic (`--bus kafka://`): one partition, the object's
//! key ([`ObjectKey::stem`]) as record key, its JSON as value, a null value (Kafka's
//! tombstone) for a delete. Every replica reads the topic from the beginning at start and then
//! follows it, so all converge without a shared disk; a record's offset + 1 is its revision.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use herald_buses::kafka::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

use super::store::{Changes, Loaded, ObjectKey, Store, StoreChange, StoreError};

/// The topic unless `--api-kafka-topic` says otherwise.
pub const DEFAULT_TOPIC: &str = "herald-api";
/// The consumer group id the store's readers name (they assign the partition, never join).
const READER_GROUP: &str = "herald-api-store-reader";

pub struct KafkaStore {
    config: KafkaConfig,
    topic: String,
    producer: Arc<FutureProducer>,
    timeout: Duration,
    /// The reader [`Store::load`] used, positioned after what it read, with that revision:
    /// following goes on with it (a new reader's first fetch can take seconds).
    loaded: std::sync::Mutex<Option<(u64, Arc<StreamConsumer>)>>,
}

impl KafkaStore {
    /// Creates the compacted topic if missing and a producer; `timeout` bounds each request.
    pub async fn open(
        config: KafkaConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let error = |message: String| StoreError::Kafka {
            topic: topic.to_owned(),
            message,
        };
        let admin: AdminClient<DefaultClientContext> = config
            .admin()
            .create()
            .map_err(|e| error(format!("admin client: {e}")))?;
        let new = NewTopic::new(
            topic,
            1,
            TopicReplication::Fixed(i32::from(config.replication_factor)),
        )
        .set("cleanup.policy", "compact");
        let options = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        let created = tokio::time::timeout(
            timeout + Duration::from_secs(1),
            admin.create_topics([&new], &options),
        )
        .await
        .map_err(|_| error("creating the topic: timed out".into()))?
        .map_err(|e| error(format!("creating the topic: {e}")))?;
        for result in created {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(error(format!("creating the topic: {code}"))),
            }
        }
        let producer = config
            .producer()
            .create()
            .map_err(|e| error(format!("producer: {e}")))?;
        // Destroying a librdkafka client blocks: off the async workers.
        tokio::task::spawn_blocking(move || drop(admin));
        Ok(Self {
            config,
            topic: topic.to_owned(),
            producer: Arc::new(producer),
            timeout,
            loaded: std::sync::Mutex::new(None),
        })
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::Kafka {
            topic: self.topic.clone(),
            message,
        }
    }

    /// A reader of the topic's partition from `offset`.
    fn reader(&self, offset: Offset) -> Result<StreamConsumer, StoreError> {
        let consumer: StreamConsumer = self
            .config
            .consumer(READER_GROUP)
            .set("enable.auto.commit", "false")
            // Replicas converge within about a second: fetches return promptly.
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(|e| self.error(format!("consumer: {e}")))?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.topic, 0, offset)
            .map_err(|e| self.error(format!("assigning the partition: {e}")))?;
        consumer
            .assign(&assignment)
            .map_err(|e| self.error(format!("assigning the partition: {e}")))?;
        Ok(consumer)
    }

    async fn send(&self, key: &ObjectKey, payload: Option<Vec<u8>>) -> Result<u64, StoreError> {
        let stem = key.stem();
        let mut record = FutureRecord::<String, Vec<u8>>::to(&self.topic)
            .key(&stem)
            .partition(0);
        if let Some(payload) = &payload {
            record = record.payload(payload);
        }
        let delivered = self
            .producer
            .send(record, self.timeout)
            .await
            .map_err(|(e, _)| self.error(format!("storing {stem:?}: {e}")))?;
        Ok(u64::try_from(delivered.offset).unwrap_or(0) + 1)
    }
}

/// The change a record holds, or `None` for a record of no API object (logged).
fn change_of(topic: &str, message: &impl Message) -> Option<StoreChange> {
    let stem = message.key().and_then(|k| std::str::from_utf8(k).ok());
    let Some(key) = stem.and_then(ObjectKey::from_stem) else {
        tracing::warn!(%topic, offset = message.offset(), "a record of no API object in the topic: skipped");
        return None;
    };
    let object = match message.payload() {
        None => None,
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(object) if object.is_object() => Some(object),
            _ => {
                tracing::error!(%topic, offset = message.offset(), key = ?key, "a damaged API object in the topic: skipped");
                return None;
            }
        },
    };
    Some(StoreChange {
        revision: u64::try_from(message.offset()).unwrap_or(0) + 1,
        key,
        object,
    })
}

fn drop_off_runtime<T: Send + 'static>(client: T) {
    tokio::task::spawn_blocking(move || drop(client));
}

#[async_trait]
impl Store for KafkaStore {
    async fn load(&self) -> Result<Loaded, StoreError> {
        let reader = Arc::new(self.reader(Offset::Beginning)?);
        let (topic, timeout, watermarks) = (self.topic.clone(), self.timeout, reader.clone());
        let (_, high) =
            tokio::task::spawn_blocking(move || watermarks.fetch_watermarks(&topic, 0, timeout))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?
                .map_err(|e| self.error(format!("reading the topic's end: {e}")))?;
        let mut latest = std::collections::BTreeMap::new();
        let mut revision = 0;
        while revision < u64::try_from(high).unwrap_or(0) {
            let message = tokio::time::timeout(self.timeout, reader.recv())
                .await
                .map_err(|_| {
                    self.error(format!(
                        "reading up to offset {high}: no record within {:?}",
                        self.timeout
                    ))
                })?
                .map_err(|e| self.error(format!("reading: {e}")))?;
            revision = u64::try_from(message.offset()).unwrap_or(0) + 1;
            if let Some(change) = change_of(&self.topic, &message) {
                latest.insert(change.key, (change.revision, change.object));
            }
        }
        let previous = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((revision, reader));
        if let Some((_, previous)) = previous {
            drop_off_runtime(previous);
        }
        let revisions = latest.iter().map(|(k, (r, _))| (k.clone(), *r)).collect();
        Ok(Loaded {
            objects: latest.into_values().filter_map(|(_, o)| o).collect(),
            revisions,
            revision,
        })
    }

    /// Kafka cannot write conditionally: `expected` is not checked (the later write wins).
    async fn put(
        &self,
        key: &ObjectKey,
        object: &Value,
        _expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.send(
            key,
            Some(serde_json::to_vec(object).expect("a Value always serializes")),
        )
        .await
    }

    async fn delete(&self, key: &ObjectKey, _expected: Option<u64>) -> Result<u64, StoreError> {
        self.send(key, None).await
    }

    async fn changes(&self, revision: u64) -> Result<Option<Changes>, StoreError> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).take();
        let reader = match loaded {
            Some((at, reader)) if at == revision => reader,
            other => {
                if let Some((_, stale)) = other {
                    drop_off_runtime(stale);
                }
                let offset = i64::try_from(revision).unwrap_or(i64::MAX);
                Arc::new(self.reader(Offset::Offset(offset))?)
            }
        };
        let topic = self.topic.clone();
        let changes = futures_util::stream::unfold(Some(reader), move |reader| {
            let topic = topic.clone();
            async move {
                let reader = reader?;
                loop {
                    match reader.recv().await {
                        Ok(message) => {
                            if let Some(change) = change_of(&topic, &message) {
                                return Some((Ok(change), Some(reader)));
                            }
                        }
                        Err(e) => {
                            let error = StoreError::Kafka {
                                topic: topic.clone(),
                                message: format!("reading: {e}"),
                            };
                            drop_off_runtime(reader);
                            return Some((Err(error), None));
                        }
                    }
                }
            }
        });
        Ok(Some(changes.boxed()))
    }
}

impl Drop for KafkaStore {
    fn drop(&mut self) {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || {
                let _ = rdkafka::producer::Producer::flush(&*producer, timeout);
            });
        }
    }
}
