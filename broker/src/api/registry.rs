//! The API's objects in memory: reads, validated writes (store, then the running broker),
//! resource versions and the event history watches resume from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::kinds::{self, Kind};
use super::merge::merge_patch;
use super::prepare::prepare;
use super::status::ApiError;
use super::store::{ObjectKey, Store, StoreError};
use crate::live::{ApiDocument, Apply};

/// The annotation that marks an object read from a `-f` file (value: `path, document N`).
pub const SOURCE_FILE_ANNOTATION: &str = "herald.dev/source-file";
/// How many changes a watch can resume from; older resource versions answer 410 Gone.
pub const HISTORY: usize = 1024;

/// What a watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// One change of an API object, at `revision`.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub revision: u64,
    pub change: Change,
    pub key: ObjectKey,
    /// The object (without status), after the change; before it for a delete.
    pub object: Value,
}

pub(super) struct State {
    pub(super) objects: BTreeMap<ObjectKey, Value>,
    pub(super) revision: u64,
    history: VecDeque<WatchEvent>,
    /// uid and first-seen revision of each file object, so they stay stable across reads.
    file_meta: HashMap<ObjectKey, (String, u64)>,
    /// A shared store's revision of the last change to each key this replica knows of: the
    /// echo of a change (its own, or one seen already) is skipped.
    pub(super) store_revisions: HashMap<ObjectKey, u64>,
    /// Where following the shared store resumes.
    pub(super) followed: u64,
}

/// The management API's view of every resource.
pub struct Registry {
    pub(super) apply: Arc<dyn Apply>,
    pub(super) store: Arc<dyn Store>,
    state: Mutex<State>,
    /// One write at a time: validate, store and apply must see the same previous set.
    pub(super) writing: tokio::sync::Mutex<()>,
    events: broadcast::Sender<WatchEvent>,
    /// `creationTimestamp` of file objects: when this process started.
    started: String,
    /// Most objects the API stores (`--api-max-objects`); creating more answers 403.
    max_objects: usize,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "management API store failed");
    ApiError::internal(format!("storing the change failed: {e}"))
}

/// The key of a stored or file object, if it names a served kind.
pub fn key_of(object: &Value) -> Option<(ObjectKey, &'static Kind)> {
    let kind = kinds::by_manifest(object["apiVersion"].as_str()?, object["kind"].as_str()?)?;
    let meta = &object["metadata"];
    Some((
        ObjectKey {
            group: kind.group.into(),
            plural: kind.plural.into(),
            namespace: meta["namespace"].as_str().unwrap_or("default").into(),
            name: meta["name"].as_str()?.into(),
        },
        kind,
    ))
}

pub(super) fn revision_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Registry {
    /// Loads the stored objects and hands them to the running broker.
    pub async fn open(apply: Arc<dyn Apply>, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let loaded = store.load().await?;
        let mut objects = BTreeMap::new();
        for object in loaded.objects {
            let Some((key, _)) = key_of(&object) else {
                anyhow::bail!("the API store holds an object of no served kind: {object}");
            };
            objects.insert(key, object);
        }
        let revision = objects.values().map(revision_of).max().unwrap_or(0);
        let documents: Vec<ApiDocument> = objects.values().cloned().collect();
        if !documents.is_empty() {
            apply.set_api_documents(documents).await.map_err(|e| {
                anyhow::anyhow!("the stored API resources do not apply with the files: {e}")
            })?;
        }
        let (events, _) = broadcast::channel(HISTORY);
        Ok(Self {
            apply,
            store,
            state: Mutex::new(State {
                objects,
                revision,
                history: VecDeque::new(),
                file_meta: HashMap::new(),
                store_revisions: loaded.revisions.into_iter().collect(),
                followed: loaded.revision,
            }),
            writing: tokio::sync::Mutex::new(()),
            events,
            started: now(),
            max_objects: usize::MAX,
        })
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Caps the objects the API stores: a create beyond `max` answers 403 (the stored ones
    /// stay, even if more).
    pub fn with_max_objects(mut self, max: usize) -> Self {
        self.max_objects = max;
        self
    }

    /// The newest resource version.
    pub fn revision(&self) -> u64 {
        self.state().revision
    }

    /// Objects of `kind` (in `namespace`, or all), files' and API's, without status; and the
    /// revision they are current at.
    pub fn list(&self, kind: &Kind, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let files = self.file_objects();
        let state = self.state();
        let mut out: BTreeMap<ObjectKey, Value> = files;
        for (key, object) in &state.objects {
            out.entry(key.clone()).or_insert_with(|| object.clone());
        }
        let items = out
            .into_iter()
            .filter(|(k, _)| k.group == kind.group && k.plural == kind.plural)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v)
            .collect();
        (items, state.revision)
    }

    /// One object, without status.
    pub fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let key = object_key(kind, namespace, name);
        if let Some(object) = self.file_objects().remove(&key) {
            return Ok(object);
        }
        self.state()
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind.plural, name))
    }

    /// The `-f` files' objects, marked read-only.
    fn file_objects(&self) -> BTreeMap<ObjectKey, Value> {
        let documents = self.apply.file_documents();
        let mut state = self.state();
        let revision = state.revision;
        let mut out = BTreeMap::new();
        for document in documents {
            let mut object = document.value;
            if object["metadata"]["namespace"].is_null() && object["metadata"].is_object() {
                object["metadata"]["namespace"] = json!("default");
            }
            let Some((key, _)) = key_of(&object) else {
                continue;
            };
            let (uid, seen) = state
                .file_meta
                .entry(key.clone())
                .or_insert_with(|| (uuid::Uuid::new_v4().to_string(), revision.max(1)))
                .clone();
            let meta = &mut object["metadata"];
            meta["uid"] = json!(uid);
            meta["resourceVersion"] = json!(seen.to_string());
            meta["generation"] = json!(1);
            meta["creationTimestamp"] = json!(self.started);
            let source = format!("{}, document {}", document.path.display(), document.index);
            if !meta["annotations"].is_object() {
                meta["annotations"] = json!({});
            }
            meta["annotations"][SOURCE_FILE_ANNOTATION] = json!(source);
            out.insert(key, object);
        }
        out
    }

    fn refuse_file_object(&self, key: &ObjectKey) -> Result<(), ApiError> {
        if let Some(object) = self.file_objects().get(key) {
            let source = object["metadata"]["annotations"][SOURCE_FILE_ANNOTATION]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            return Err(ApiError::conflict(format!(
                "{} {:?} is read from the file {source} (given with -f): edit the file instead",
                key.plural, key.name
            )));
        }
        Ok(())
    }

    /// Creates an object from `body` in `namespace`.
    pub async fn create(
        &self,
        kind: &Kind,
        namespace: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let mut object = prepare(kind, namespace, None, body)?;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let key = object_key(kind, namespace, &name);
        let _writing = self.writing.lock().await;
        self.refuse_file_object(&key)?;
        let stored = self.state().objects.len();
        if stored >= self.max_objects {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "{} {name:?} is not created: the API holds {stored} objects, at most {} (--api-max-objects)",
                    kind.plural, self.max_objects
                ),
            ));
        }
        if self.state().objects.contains_key(&key) {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {name:?} already exists", kind.plural),
            ));
        }
        let meta = &mut object["metadata"];
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["generation"] = json!(1);
        meta["creationTimestamp"] = json!(now());
        self.commit(kind, key, Some(object), Change::Added).await
    }

    /// Replaces the object `name` with `body` (PUT); `metadata.resourceVersion`, when given,
    /// must be the current one.
    pub async fn replace(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let object = prepare(kind, namespace, Some(name), body)?;
        let _writing = self.writing.lock().await;
        self.update(kind, namespace, name, object).await
    }

    /// Applies a JSON merge patch to the object `name`.
    pub async fn patch(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        if !patch.is_object() {
            return Err(ApiError::bad_request("a merge patch must be a JSON object"));
        }
        let _writing = self.writing.lock().await;
        let key = object_key(kind, namespace, name);
        self.refuse_file_object(&key)?;
        let mut object = self
            .state()
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind.plural, name))?;
        // The stored resourceVersion stays unless the patch names one, which must then match.
        merge_patch(&mut object, &patch);
        let object = prepare(kind, namespace, Some(name), object)?;
        self.update(kind, namespace, name, object).await
    }

    async fn update(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let key = object_key(kind, namespace, name);
        self.refuse_file_object(&key)?;
        let current = self
            .state()
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind.plural, name))?;
        let given = &object["metadata"]["resourceVersion"];
        if let Some(given) = given.as_str()
            && given != current["metadata"]["resourceVersion"]
        {
            return Err(ApiError::conflict(format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified \
                 (resourceVersion {given} is not the current {}); read it again and retry",
                kind.plural, current["metadata"]["resourceVersion"]
            )));
        }
        // Nothing differs but the resource version the request may lack: nothing to do.
        let mut same = object.clone();
        same["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        for field in ["uid", "creationTimestamp", "generation"] {
            same["metadata"][field] = current["metadata"][field].clone();
        }
        if same == current {
            return Ok(current);
        }
        let old = &current["metadata"];
        let generation = old["generation"].as_u64().unwrap_or(1);
        let spec_changed = object["spec"] != current["spec"];
        let meta = &mut object["metadata"];
        meta["uid"] = old["uid"].clone();
        meta["creationTimestamp"] = old["creationTimestamp"].clone();
        meta["generation"] = json!(if spec_changed {
            generation + 1
        } else {
            generation
        });
        self.commit(kind, key, Some(object), Change::Modified).await
    }

    /// Deletes the object `name`; answers it as it was.
    pub async fn delete(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = object_key(kind, namespace, name);
        let _writing = self.writing.lock().await;
        self.refuse_file_object(&key)?;
        let current = self
            .state()
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind.plural, name))?;
        self.commit(kind, key, None, Change::Deleted).await?;
        Ok(current)
    }

    /// Validates the new set, stores the change, applies it, then publishes it. Called with
    /// `writing` held. `object` is `None` for a delete.
    async fn commit(
        &self,
        kind: &Kind,
        key: ObjectKey,
        object: Option<Value>,
        change: Change,
    ) -> Result<Value, ApiError> {
        let (previous, mut next, revision) = {
            let state = self.state();
            (
                state.objects.get(&key).cloned(),
                state.objects.clone(),
                state.revision + 1,
            )
        };
        let mut object = object;
        if let Some(object) = object.as_mut() {
            object["metadata"]["resourceVersion"] = json!(revision.to_string());
            next.insert(key.clone(), object.clone());
        } else {
            next.remove(&key);
        }
        let documents: Vec<ApiDocument> = next.values().cloned().collect();
        // Validating may read `secretKeyRef` files: off the async workers.
        let apply = self.apply.clone();
        let candidate = documents.clone();
        tokio::task::spawn_blocking(move || apply.validate(&candidate))
            .await
            .map_err(|e| ApiError::internal(format!("validation failed: {e}")))?
            .map_err(|e| ApiError::invalid(kind.kind, &key.name, &e.field, e.to_string()))?;
        // A shared store writes only over the revision this replica knows: a change another
        // replica made meanwhile is a conflict, not overwritten.
        let expected = Some(self.state().store_revisions.get(&key).copied().unwrap_or(0));
        let store_revision = match &object {
            Some(object) => self.store.put(&key, object, expected).await,
            None => self.store.delete(&key, expected).await,
        }
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::conflict(format!(
                "Operation cannot be fulfilled on {} {:?}: another replica changed it; read it again and retry",
                key.plural, key.name
            )),
            e => store_error(e),
        })?;
        if let Err(e) = self.apply.set_api_documents(documents).await {
            // Nothing changed in the broker: put the store back as it was.
            let undo = match &previous {
                Some(previous) => self.store.put(&key, previous, None).await,
                None => self.store.delete(&key, None).await,
            };
            if let Err(undo) = undo {
                tracing::error!(error = %undo, key = ?key, "could not undo a refused change in the API store");
            }
            return Err(ApiError::invalid(
                kind.kind,
                &key.name,
                &e.field,
                e.to_string(),
            ));
        }
        let published = object
            .clone()
            .or(previous)
            .expect("a delete has a previous object");
        let event = WatchEvent {
            revision,
            change,
            key: key.clone(),
            object: published.clone(),
        };
        let mut state = self.state();
        state.objects = next;
        state.revision = revision;
        if store_revision > 0 {
            state.store_revisions.insert(key, store_revision);
        }
        self.publish(&mut state, event);
        Ok(published)
    }

    pub(super) fn publish(&self, state: &mut State, event: WatchEvent) {
        state.history.push_back(event.clone());
        if state.history.len() > HISTORY {
            state.history.pop_front();
        }
        // No receiver is fine: nobody watches.
        let _ = self.events.send(event);
    }

    /// The changes after `since` and a receiver of those to come; `Err` with 410 Gone when
    /// `since` is older than the history kept.
    pub fn watch_from(
        &self,
        since: u64,
    ) -> Result<(Vec<WatchEvent>, broadcast::Receiver<WatchEvent>), ApiError> {
        let state = self.state();
        let receiver = self.events.subscribe();
        let oldest_known = state
            .history
            .front()
            .map_or(state.revision, |e| e.revision - 1);
        if since < oldest_known {
            return Err(ApiError::new(
                axum::http::StatusCode::GONE,
                "Expired",
                format!("too old resource version: {since} ({oldest_known})"),
            ));
        }
        let backlog = state
            .history
            .iter()
            .filter(|e| e.revision > since)
            .cloned()
            .collect();
        Ok((backlog, receiver))
    }

    /// `object` with its `status` filled in.
    pub fn with_status(&self, kind: &Kind, mut object: Value) -> Value {
        object["status"] = super::conditions::status_of(&*self.apply, kind, &object);
        object
    }
}

pub fn object_key(kind: &Kind, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        group: kind.group.into(),
        plural: kind.plural.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}
