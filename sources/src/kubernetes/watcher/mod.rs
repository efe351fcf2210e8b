//! The ApiServerSource transport: one list+watch per resource type, loss-free across restarts.
//!
//! Per `spec.resources[]` entry: discovery finds the real plural and scope; a list records
//! (first start) or diffs against (later starts) the persisted [`SeenState`]; a watch from the
//! list's resourceVersion follows changes, resuming from the last event or bookmark when the
//! stream closes. A `410 Gone` (the resume point was compacted away) triggers a relist whose
//! diff emits whatever changed meanwhile, deletes included. Knative drops those changes.
//!
//! Loss-free across kills: a change is recorded in the state file
//! (`{state_dir}/{ns}_{name}.d/{group}_{version}_{kind}.json`) as *pending* before the sink sees
//! it, and confirmed after the sink took it (retried while it is unavailable). A kill in between
//! leaves the object known, so its later delete is still found, and the pending changes are sent
//! again at the next start (at-least-once, with stable ids). See [`super::seen`].
//!
//! Namespaces: `NamespaceScope::Only` watches that namespace; `Matching("")` the whole cluster;
//! `Matching(selector)` the whole cluster, keeping objects whose namespace matched the selector
//! at the last (re)list (namespaces labelled later join at the next relist).

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cloudevents::Event;
use futures_util::{FutureExt, StreamExt};
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope, pinned_kind};
use serde_json::Value;

mod persist;

use super::seen::{self, SeenState};
use super::{ApiServerConfig, Change, EventContext, NamespaceScope, ResourceSelector, to_event};
use crate::sink::Sink;
use crate::state;

/// Keeps an event (`true`) or drops it: the compiled `spec.filters`, supplied by the broker.
pub type EventFilter = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// Runs one watcher per resource of `config` until `shutdown` resolves.
///
/// `api_server` is the URL the client talks to (the events' `source`), e.g.
/// `client_config.cluster_url.to_string()`.
pub async fn run(
    config: Arc<ApiServerConfig>,
    client: kube::Client,
    api_server: String,
    sink: Arc<dyn Sink>,
    state_dir: PathBuf,
    filter: EventFilter,
    shutdown: impl Future<Output = ()>,
) {
    let dir = state_dir.join(state_dir_name(&config));
    let mut tasks = tokio::task::JoinSet::new();
    for resource in config.resources.clone() {
        let w = ResourceWatch {
            config: Arc::clone(&config),
            client: client.clone(),
            api_server: api_server.clone(),
            sink: Arc::clone(&sink),
            filter: Arc::clone(&filter),
            path: dir.join(format!("{}.json", resource_file(&resource))),
            resource,
        };
        tasks.spawn(w.run());
    }
    shutdown.await;
    tasks.shutdown().await;
}

/// The directory of one ApiServerSource's state under the sources' `apiserver/` directory.
pub fn state_dir_name(config: &ApiServerConfig) -> String {
    state::file_name(&config.namespace, &config.name, "d")
}

fn resource_file(r: &ResourceSelector) -> String {
    format!("{}_{}", r.api_version.replace('/', "_"), r.kind)
}

struct ResourceWatch {
    config: Arc<ApiServerConfig>,
    client: kube::Client,
    api_server: String,
    sink: Arc<dyn Sink>,
    filter: EventFilter,
    resource: ResourceSelector,
    path: PathBuf,
}

/// The most changes journalled (and written) before their sink calls start.
const MAX_BATCH: usize = 100;

/// Why the watch loop went back to listing.
enum Relist {
    Gone,
}

impl ResourceWatch {
    async fn run(self) {
        let (group, version) = match self.resource.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.resource.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &self.resource.kind);
        let (ar, caps) = retry("discovery", || pinned_kind(&self.client, &gvk)).await;
        let api: Api<DynamicObject> = match (&self.config.namespaces, caps.scope) {
            (NamespaceScope::Only(ns), Scope::Namespaced) => {
                Api::namespaced_with(self.client.clone(), ns, &ar)
            }
            _ => Api::all_with(self.client.clone(), &ar),
        };
        let ctx = EventContext {
            api_server: self.api_server.clone(),
            plural: ar.plural.clone(),
            mode: self.config.mode,
            max_value_bytes: self.config.max_attribute_bytes,
        };
        let mut state = self.load().await;
        if let Some(s) = &mut state
            && !s.pending.is_empty()
        {
            // Killed while sending: the sink may or may not have these, so send them again
            // (same ids) before anything newer.
            tracing::info!(kind = %self.resource.kind, changes = s.pending.len(), "re-sending changes pending at the last stop");
            self.send_pending(s, &ctx).await;
            self.persist(s).await;
        }
        loop {
            let namespaces = self.namespaces().await;
            let lp = self.list_params();
            let list = retry("list", || api.list(&lp)).await;
            let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
            let listed: Vec<Value> = list
                .items
                .into_iter()
                .map(|o| self.value(o, &ar))
                .filter(|o| self.in_scope(o, &namespaces))
                .collect();
            match &mut state {
                // First start: record what exists, emit nothing (as Knative).
                None => {
                    let mut s = SeenState::default();
                    s.replace(&listed, self.config.mode);
                    self.persist(&s).await;
                    state = Some(s);
                }
                // A restart or a `410 Gone`: the missed changes are one batch.
                Some(s) => {
                    s.relist(&listed, self.config.mode);
                    let missed = s.pending.len();
                    self.send_batch(s, &ctx).await;
                    if missed > 0 {
                        self.persist(s).await;
                    }
                }
            }
            let s = state.as_mut().expect("set above");
            let Relist::Gone = self.watch(&api, &ar, &ctx, s, &mut rv, &namespaces).await;
            tracing::info!(kind = %self.resource.kind, "resource version gone, relisting");
        }
    }

    /// Watches from `rv` until the API server answers `410 Gone`; re-watches on stream ends.
    ///
    /// Changes are sent in batches of what the stream has ready: the batch is journalled and
    /// written before its first sink call, and the confirmation is written with the next batch's
    /// journal, or once the stream has nothing ready. So a burst costs one write per batch, and
    /// a crash re-sends at most the last batch.
    async fn watch(
        &self,
        api: &Api<DynamicObject>,
        ar: &ApiResource,
        ctx: &EventContext,
        state: &mut SeenState,
        rv: &mut String,
        namespaces: &Option<HashSet<String>>,
    ) -> Relist {
        let mut backoff = Duration::from_millis(200);
        loop {
            let stream = match api.watch(&self.watch_params(), rv).await {
                Ok(s) => s,
                Err(kube::Error::Api(status)) if status.code == 410 => return Relist::Gone,
                Err(e) => {
                    tracing::warn!(error = ?e.to_string(), kind = %self.resource.kind, "watch failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            let mut stream = std::pin::pin!(stream);
            // A sent batch is confirmed in memory but not yet on disk.
            let mut unconfirmed = false;
            let end = loop {
                let item = match stream.next().now_or_never() {
                    Some(item) => item,
                    None => {
                        if !state.pending.is_empty() {
                            self.send_batch(state, ctx).await;
                            unconfirmed = true;
                            continue;
                        }
                        if std::mem::take(&mut unconfirmed) {
                            self.persist(state).await;
                        }
                        stream.next().await
                    }
                };
                let (change, object) = match item {
                    None => break None,
                    Some(Ok(WatchEvent::Added(o))) => (Change::Added, o),
                    Some(Ok(WatchEvent::Modified(o))) => (Change::Updated, o),
                    Some(Ok(WatchEvent::Deleted(o))) => (Change::Deleted, o),
                    Some(Ok(WatchEvent::Bookmark(b))) => {
                        *rv = b.metadata.resource_version;
                        continue;
                    }
                    Some(Ok(WatchEvent::Error(status))) if status.code == 410 => {
                        break Some(Relist::Gone);
                    }
                    Some(Ok(WatchEvent::Error(status))) => {
                        tracing::warn!(code = status.code, message = ?status.message, kind = %self.resource.kind, "watch error");
                        break None;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = ?e.to_string(), kind = %self.resource.kind, "watch stream broke");
                        break None;
                    }
                };
                backoff = Duration::from_millis(200);
                let object = self.value(object, ar);
                if let Some(v) = seen::resource_version(&object) {
                    *rv = v.to_owned();
                }
                if !self.in_scope(&object, namespaces) {
                    continue;
                }
                let change = match change {
                    Change::Deleted
                        if seen::uid(&object).is_some_and(|u| state.objects.contains_key(u)) =>
                    {
                        Change::Deleted
                    }
                    Change::Deleted => continue,
                    // An ADDED replayed after a relist is not new: classify against the state.
                    _ => match state.classify(&object) {
                        Some(c) => c,
                        None => continue,
                    },
                };
                state.begin(change, &object, self.config.mode);
                if state.pending.len() >= MAX_BATCH {
                    self.send_batch(state, ctx).await;
                    unconfirmed = true;
                }
            };
            // Whatever ended the stream, the changes read from it are sent and confirmed first.
            if !state.pending.is_empty() {
                self.send_batch(state, ctx).await;
                unconfirmed = true;
            }
            if std::mem::take(&mut unconfirmed) {
                self.persist(state).await;
            }
            if let Some(relist) = end {
                return relist;
            }
        }
    }

    /// Sends the journalled batch once it is durable.
    async fn send_batch(&self, state: &mut SeenState, ctx: &EventContext) {
        self.persist_pending(state).await;
        self.send_pending(state, ctx).await;
    }

    /// Sends the journal in order; the caller writes the state to confirm it.
    async fn send_pending(&self, state: &mut SeenState, ctx: &EventContext) {
        for pending in state.take_pending() {
            self.emit(pending.change, &pending.object, ctx).await;
        }
    }

    /// Sends one change, retrying while the sink is unavailable; a rejected event is dropped.
    async fn emit(&self, change: Change, object: &Value, ctx: &EventContext) {
        let mut event = to_event(change, object, ctx);
        self.config.overrides.apply(&mut event);
        if !(self.filter)(&event) {
            return;
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.sink.send(vec![event.clone()]).await {
                Ok(()) => return,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = ?e.to_string(), kind = %self.resource.kind, "apiserver event not accepted, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::error!(error = ?e.to_string(), reason = e.reason(), kind = %self.resource.kind, "apiserver event rejected");
                    return;
                }
            }
        }
    }

    /// The namespaces `Matching(selector)` admits, listed at each (re)list.
    async fn namespaces(&self) -> Option<HashSet<String>> {
        let NamespaceScope::Matching(selector) = &self.config.namespaces else {
            return None;
        };
        if selector.is_empty() {
            return None;
        }
        let ar = ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&());
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        let lp = ListParams::default().labels(selector);
        let list = retry("namespaces", || api.list(&lp)).await;
        Some(
            list.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect(),
        )
    }

    fn in_scope(&self, object: &Value, namespaces: &Option<HashSet<String>>) -> bool {
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        namespaces.as_ref().is_none_or(|set| set.contains(ns))
            && self.config.owner.as_ref().is_none_or(|o| o.matches(object))
    }

    /// The object as JSON with `apiVersion`/`kind` filled in (list items omit them).
    fn value(&self, object: DynamicObject, ar: &ApiResource) -> Value {
        let mut v = serde_json::to_value(&object).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.entry("apiVersion")
                .or_insert_with(|| Value::String(ar.api_version.clone()));
            map.entry("kind")
                .or_insert_with(|| Value::String(ar.kind.clone()));
        }
        v
    }

    fn list_params(&self) -> ListParams {
        match &self.resource.label_selector {
            Some(sel) if !sel.is_empty() => ListParams::default().labels(sel),
            _ => ListParams::default(),
        }
    }

    fn watch_params(&self) -> WatchParams {
        let wp = WatchParams::default().timeout(290);
        match &self.resource.label_selector {
            Some(sel) if !sel.is_empty() => wp.labels(sel),
            _ => wp,
        }
    }
}

/// Retries `op` with backoff (200 ms doubling to 30 s) until it succeeds.
async fn retry<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), what, "kubernetes request failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
