//! The ApiServerSource transport: one list+watch per resource type, loss-free across restarts.
//!
//! Per `spec.resources[]` entry: discovery finds the real plural and scope; a list records
//! (first start) or diffs against (later starts) the persisted [`SeenState`]; a watch from the
//! list's resourceVersion follows changes, resuming from the last event or bookmark when the
//! stream closes. A `410 Gone` (the resume point was compacted away) triggers a relist whose
//! diff emits whatever changed meanwhile, deletes included. Knative drops those changes.
//!
//! Each change is sent to the sink (retried while it is unavailable) before it is recorded and
//! the state file (`{state_dir}/{ns}_{name}/{group}_{version}_{kind}.json`) rewritten, so a crash
//! re-sends at most the changes after the last write (at-least-once, with stable ids).
//!
//! Namespaces: `NamespaceScope::Only` watches that namespace; `Matching("")` the whole cluster;
//! `Matching(selector)` the whole cluster, keeping objects whose namespace matched the selector
//! at the last (re)list (namespaces labelled later join at the next relist).

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cloudevents::Event;
use futures_util::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope, pinned_kind};
use serde_json::Value;

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
    let dir = state_dir.join(state::file_name(&config.namespace, &config.name, "d"));
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
        };
        let mut state = match state::load::<SeenState>(&self.path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "apiserver source state unreadable, relisting fresh");
                None
            }
        };
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
                    self.persist(&s);
                    state = Some(s);
                }
                Some(s) => {
                    for (change, object) in s.diff(&listed) {
                        self.emit(change, &object, &ctx).await;
                        s.observe(change, &object, self.config.mode);
                    }
                    // Objects that left the scope are forgotten without an event.
                    s.replace(&listed, self.config.mode);
                    self.persist(s);
                }
            }
            let s = state.as_mut().expect("set above");
            let Relist::Gone = self.watch(&api, &ar, &ctx, s, &mut rv, &namespaces).await;
            tracing::info!(kind = %self.resource.kind, "resource version gone, relisting");
        }
    }

    /// Watches from `rv` until the API server answers `410 Gone`; re-watches on stream ends.
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
                    tracing::warn!(error = %e, kind = %self.resource.kind, "watch failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                let (change, object) = match item {
                    Ok(WatchEvent::Added(o)) => (Change::Added, o),
                    Ok(WatchEvent::Modified(o)) => (Change::Updated, o),
                    Ok(WatchEvent::Deleted(o)) => (Change::Deleted, o),
                    Ok(WatchEvent::Bookmark(b)) => {
                        *rv = b.metadata.resource_version;
                        continue;
                    }
                    Ok(WatchEvent::Error(status)) if status.code == 410 => return Relist::Gone,
                    Ok(WatchEvent::Error(status)) => {
                        tracing::warn!(code = status.code, message = %status.message, "watch error");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watch stream broke");
                        break;
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
                self.emit(change, &object, ctx).await;
                state.observe(change, &object, self.config.mode);
                self.persist(state);
            }
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
                    tracing::warn!(error = %e, "apiserver event not accepted, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::error!(error = %e, reason = e.reason(), "apiserver event rejected");
                    return;
                }
            }
        }
    }

    fn persist(&self, state: &SeenState) {
        if let Err(e) = state::store(&self.path, state) {
            tracing::warn!(error = %e, "apiserver source state not persisted");
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
                tracing::warn!(error = %e, what, "kubernetes request failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The state directory of one ApiServerSource, for cleanup when it is removed.
pub fn state_dir_of(state_dir: &Path, config: &ApiServerConfig) -> PathBuf {
    state_dir.join(state::file_name(&config.namespace, &config.name, "d"))
}
