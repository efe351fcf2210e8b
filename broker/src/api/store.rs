//! Where API-created resources live. One trait, one implementation per bus: the data
//! directory for the embedded and memory buses (this file), a JetStream key-value bucket for
//! NATS ([`super::store_nats`]), a compacted topic for Kafka ([`super::store_kafka`]).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::Value;

/// Names one stored object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// `group_plural_namespace_name`, which cannot collide: none of group, plural, namespace
    /// (a DNS label) or name (a DNS subdomain) may contain `_`, checked by [`super::names`].
    /// Valid as a file name and as a NATS key-value key.
    pub fn stem(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.group, self.plural, self.namespace, self.name
        )
    }

    /// The key a [`ObjectKey::stem`] names.
    pub fn from_stem(stem: &str) -> Option<Self> {
        let mut parts = stem.splitn(4, '_');
        let key = Self {
            group: parts.next()?.into(),
            plural: parts.next()?.into(),
            namespace: parts.next()?.into(),
            name: parts.next()?.into(),
        };
        (!key.name.is_empty()).then_some(key)
    }

    fn file_name(&self) -> String {
        format!("{}.json", self.stem())
    }
}

/// What [`Store::load`] found: the objects and the store's revision they are current at.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: Vec<Value>,
    /// A shared store's revision of every key it holds (deleted ones too), for conditional
    /// writes; empty for the data directory.
    pub revisions: Vec<(ObjectKey, u64)>,
    /// Where [`Store::changes`] resumes (0 for a store without changes).
    pub revision: u64,
}

/// A change another replica (or this one) made, as a shared store reports it.
#[derive(Debug, Clone)]
pub struct StoreChange {
    /// The store's own sequence of the change, increasing.
    pub revision: u64,
    pub key: ObjectKey,
    /// The object after the change; `None` once deleted.
    pub object: Option<Value>,
}

/// Changes as a shared store streams them.
pub type Changes = futures_util::stream::BoxStream<'static, Result<StoreChange, StoreError>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("API store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("API store {path}: not a stored object: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("API store task failed: {0}")]
    Task(String),
    #[error("API store (NATS key-value bucket {bucket}): {message}")]
    Nats { bucket: String, message: String },
    #[error("API store (Kafka topic {topic}): {message}")]
    Kafka { topic: String, message: String },
    /// A conditional write found another revision: another replica changed the object.
    #[error("{key:?} was changed by another replica")]
    Conflict { key: String },
}

/// Durable storage of the API's objects.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every stored object (with its metadata).
    async fn load(&self) -> Result<Loaded, StoreError>;
    /// Stores `object` under `key`, durably, replacing what was there; returns the store's
    /// revision of the change (0 for a store without [`Store::changes`]). With `expected`, a
    /// store that can write conditionally does so only if the key is at that revision (`0`:
    /// never written), else [`StoreError::Conflict`].
    async fn put(
        &self,
        key: &ObjectKey,
        object: &Value,
        expected: Option<u64>,
    ) -> Result<u64, StoreError>;
    /// Removes `key` (no error if absent); returns the revision and honours `expected` as
    /// [`Store::put`] does.
    async fn delete(&self, key: &ObjectKey, expected: Option<u64>) -> Result<u64, StoreError>;
    /// The changes after `revision`, by every replica, for as long as the stream lasts;
    /// `None` for a store that only this process writes.
    async fn changes(&self, revision: u64) -> Result<Option<Changes>, StoreError> {
        let _ = revision;
        Ok(None)
    }
}

/// One JSON file per object under `{data-dir}/api/`, written to a temporary file, fsynced,
/// renamed over the old one and the directory fsynced: a crash leaves the old or the new
/// object, never a torn one. All file I/O runs on the blocking pool.
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// The store in `{data_dir}/api`, created if missing.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.join("api");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })?;
        Ok(Self { dir })
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "runs inside `blocking`, on the blocking pool"
)]
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "runs inside `blocking`, on the blocking pool"
)]
#[async_trait]
impl Store for DirStore {
    async fn load(&self) -> Result<Loaded, StoreError> {
        let dir = self.dir.clone();
        blocking(move || {
            let mut objects = Vec::new();
            let mut paths = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let path = entry.map_err(io(&dir))?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    paths.push(path);
                }
            }
            paths.sort();
            for path in paths {
                let bytes = std::fs::read(&path).map_err(io(&path))?;
                let object: Value =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                if !object.is_object() {
                    return Err(StoreError::Corrupt {
                        path,
                        message: "not a JSON object".into(),
                    });
                }
                objects.push(object);
            }
            Ok(Loaded {
                objects,
                revisions: Vec::new(),
                revision: 0,
            })
        })
        .await
    }

    async fn put(
        &self,
        key: &ObjectKey,
        object: &Value,
        _expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        use std::io::Write;
        let dir = self.dir.clone();
        let path = dir.join(key.file_name());
        let temp = dir.join(format!(".{}.tmp", key.file_name()));
        let bytes = serde_json::to_vec_pretty(object).expect("a Value always serializes");
        blocking(move || {
            let mut file = std::fs::File::create(&temp).map_err(io(&temp))?;
            file.write_all(&bytes).map_err(io(&temp))?;
            file.sync_all().map_err(io(&temp))?;
            std::fs::rename(&temp, &path).map_err(io(&path))?;
            sync_dir(&dir)
        })
        .await?;
        Ok(0)
    }

    async fn delete(&self, key: &ObjectKey, _expected: Option<u64>) -> Result<u64, StoreError> {
        let dir = self.dir.clone();
        let path = dir.join(key.file_name());
        blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io(&path)(e)),
            }
            sync_dir(&dir)
        })
        .await?;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: "eventing.knative.dev".into(),
            plural: "triggers".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn objects_survive_reopening_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::open(dir.path()).await.unwrap();
        store.put(&key("a"), &json!({"n": 1}), None).await.unwrap();
        store.put(&key("b"), &json!({"n": 2}), None).await.unwrap();
        store.put(&key("a"), &json!({"n": 3}), None).await.unwrap();
        store.delete(&key("b"), None).await.unwrap();
        store.delete(&key("never"), None).await.unwrap();
        let reopened = DirStore::open(dir.path()).await.unwrap();
        assert_eq!(
            reopened.load().await.unwrap().objects,
            vec![json!({"n": 3})]
        );
    }

    #[test]
    fn a_key_reads_back_from_its_stem() {
        let key = key("a.b-c");
        assert_eq!(ObjectKey::from_stem(&key.stem()), Some(key));
        assert_eq!(ObjectKey::from_stem("a_b_c"), None);
    }

    #[tokio::test]
    async fn a_damaged_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::open(dir.path()).await.unwrap();
        tokio::fs::write(dir.path().join("api").join("x.json"), b"{not json")
            .await
            .unwrap();
        let error = store.load().await.unwrap_err().to_string();
        assert!(error.contains("x.json"), "{error}");
    }
}
