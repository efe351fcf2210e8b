//! API resources in a JetStream key-value bucket (`--bus nats://`): every replica reads the
//! bucket at start and then follows its changes, so all converge on the same resources
//! without a shared disk.
//!
//! One key per object ([`ObjectKey::stem`]), the object's JSON as value, history 1. A delete
//! is a put of a tombstone (`{"herald.dev/deleted": true}`), so that it has a revision like
//! any change: a replica skips the echo of its own writes by revision.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use super::store::{Changes, Loaded, ObjectKey, Store, StoreChange, StoreError};

/// The bucket unless `--api-nats-bucket` says otherwise.
pub const DEFAULT_BUCKET: &str = "herald-api";
const TOMBSTONE: &str = "herald.dev/deleted";

pub struct NatsStore {
    kv: kv::Store,
    bucket: String,
}

impl NatsStore {
    /// Connects to `url` and opens (or creates) `bucket`.
    pub async fn open(url: &str, bucket: &str, timeout: Duration) -> Result<Self, StoreError> {
        let error = |message: String| StoreError::Nats {
            bucket: bucket.to_owned(),
            message,
        };
        let options = async_nats::ConnectOptions::new()
            .name("herald-api-store")
            .connection_timeout(timeout)
            .max_reconnects(None);
        let client = tokio::time::timeout(timeout, options.connect(url))
            .await
            .map_err(|_| error(format!("connecting to {url}: timed out")))?
            .map_err(|e| error(format!("connecting to {url}: {e}")))?;
        let js = jetstream::new(client);
        let kv = match js.get_key_value(bucket).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.to_owned(),
                    history: 1,
                    description: "Herald management API resources".into(),
                    ..Default::default()
                })
                .await
                .map_err(|e| error(format!("creating the bucket: {e}")))?,
        };
        Ok(Self {
            kv,
            bucket: bucket.to_owned(),
        })
    }

    /// Puts `value` under `key`: unconditionally, only if never written (`Some(0)`), or only
    /// at revision `n` (`Some(n)`).
    async fn write(
        &self,
        key: &ObjectKey,
        value: Bytes,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let stem = key.stem();
        let conflict = || StoreError::Conflict { key: stem.clone() };
        match expected {
            None => self
                .kv
                .put(stem.as_str(), value)
                .await
                .map_err(|e| self.error(format!("storing {stem:?}: {e}"))),
            Some(0) => self
                .kv
                .create(stem.as_str(), value)
                .await
                .map_err(|e| match e.kind() {
                    kv::CreateErrorKind::AlreadyExists => conflict(),
                    _ => self.error(format!("storing {stem:?}: {e}")),
                }),
            Some(revision) => self
                .kv
                .update(stem.as_str(), value, revision)
                .await
                .map_err(|e| match e.kind() {
                    kv::UpdateErrorKind::WrongLastRevision => conflict(),
                    _ => self.error(format!("storing {stem:?}: {e}")),
                }),
        }
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::Nats {
            bucket: self.bucket.clone(),
            message,
        }
    }
}

/// The object a stored value holds; `None` for a tombstone.
fn object_of(bucket: &str, key: &str, value: &[u8]) -> Result<Option<Value>, StoreError> {
    let object: Value = serde_json::from_slice(value).map_err(|e| StoreError::Nats {
        bucket: bucket.to_owned(),
        message: format!("key {key:?} holds no JSON object: {e}"),
    })?;
    Ok((object.is_object() && object.get(TOMBSTONE).is_none()).then_some(object))
}

#[async_trait]
impl Store for NatsStore {
    async fn load(&self) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(|e| self.error(format!("listing keys: {e}")))?
            .try_collect()
            .await
            .map_err(|e| self.error(format!("listing keys: {e}")))?;
        for key in keys {
            let Some(entry) = self
                .kv
                .entry(key.as_str())
                .await
                .map_err(|e| self.error(format!("reading {key:?}: {e}")))?
            else {
                continue;
            };
            loaded.revision = loaded.revision.max(entry.revision);
            if let Some(object_key) = ObjectKey::from_stem(&key) {
                loaded.revisions.push((object_key, entry.revision));
            }
            if entry.operation == kv::Operation::Put
                && let Some(object) = object_of(&self.bucket, &key, &entry.value)?
            {
                loaded.objects.push(object);
            }
        }
        if loaded.revision == 0 {
            // An empty bucket: follow from its current end, not from a purged past.
            let status = self
                .kv
                .status()
                .await
                .map_err(|e| self.error(format!("reading its status: {e}")))?;
            loaded.revision = status.info.state.last_sequence;
        }
        Ok(loaded)
    }

    async fn put(
        &self,
        key: &ObjectKey,
        object: &Value,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let bytes = Bytes::from(serde_json::to_vec(object).expect("a Value always serializes"));
        self.write(key, bytes, expected).await
    }

    async fn delete(&self, key: &ObjectKey, expected: Option<u64>) -> Result<u64, StoreError> {
        let tombstone = Bytes::from(json!({ TOMBSTONE: true }).to_string());
        self.write(key, tombstone, expected).await
    }

    async fn changes(&self, revision: u64) -> Result<Option<Changes>, StoreError> {
        let watch = self
            .kv
            .watch_all_from_revision(revision + 1)
            .await
            .map_err(|e| self.error(format!("watching: {e}")))?;
        let bucket = self.bucket.clone();
        let changes = watch.filter_map(move |entry| {
            let bucket = bucket.clone();
            async move {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        return Some(Err(StoreError::Nats {
                            bucket,
                            message: format!("watching: {e}"),
                        }));
                    }
                };
                let Some(key) = ObjectKey::from_stem(&entry.key) else {
                    tracing::warn!(key = ?entry.key, %bucket, "a key of no API object in the bucket: skipped");
                    return None;
                };
                let object = match entry.operation {
                    kv::Operation::Put => match object_of(&bucket, &entry.key, &entry.value) {
                        Ok(object) => object,
                        Err(e) => {
                            // Not Herald's writing: skipped, or every re-watch would stop here.
                            tracing::error!(error = %e, "a damaged API object in the bucket: skipped");
                            return None;
                        }
                    },
                    kv::Operation::Delete | kv::Operation::Purge => None,
                };
                Some(Ok(StoreChange {
                    revision: entry.revision,
                    key,
                    object,
                }))
            }
        });
        Ok(Some(changes.boxed()))
    }
}
