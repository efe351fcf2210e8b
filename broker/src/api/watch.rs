//! `?watch=true`: a chunked stream of `{"type": "ADDED|MODIFIED|DELETED", "object": ...}`
//! lines, one per change, resumable from a `resourceVersion`.
//!
//! Changes made through the API arrive as they are committed. A resource's `status` and the
//! `-f` files' objects change without a resource version (the broker reports state, a file
//! is reloaded), so the stream also compares what it last sent with the current objects every
//! `--api-watch-status-interval` and reports the difference: `kubectl wait` sees `Ready`
//! turn `True`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, Interval};

use super::Api;
use super::handlers::{ListQuery, streaming};
use super::kinds::Kind;
use super::registry::{Change, WatchEvent, key_of};
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::ObjectKey;

struct Stream {
    api: Arc<Api>,
    kind: &'static Kind,
    namespace: Option<String>,
    selectors: Selectors,
    receiver: tokio::sync::broadcast::Receiver<WatchEvent>,
    pending: VecDeque<Bytes>,
    /// What the client holds: the objects as last sent, with status.
    sent: HashMap<ObjectKey, Value>,
    ticker: Interval,
    deadline: Instant,
    stop: tokio::sync::watch::Receiver<bool>,
    done: bool,
}

pub fn start(
    api: &Arc<Api>,
    kind: &'static Kind,
    namespace: Option<String>,
    selectors: Selectors,
    query: &ListQuery,
) -> Result<Response, ApiError> {
    let since = match query.resource_version.as_deref() {
        None | Some("" | "0") => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion {v:?} is not one this server issued"
            ))
        })?),
    };
    let (backlog, receiver) = api
        .registry
        .watch_from(since.unwrap_or_else(|| api.registry.revision()))?;
    let lifetime = query.timeout_seconds.map_or(api.options.watch_max, |s| {
        std::time::Duration::from_secs(s).min(api.options.watch_max)
    });
    let mut ticker = tokio::time::interval(api.options.watch_status_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stream = Stream {
        api: api.clone(),
        kind,
        namespace,
        selectors,
        receiver,
        pending: VecDeque::new(),
        sent: HashMap::new(),
        ticker,
        deadline: Instant::now() + lifetime,
        stop: api.stop.clone(),
        done: false,
    };
    match since {
        // A fresh watch starts with every current object as ADDED.
        None => stream.diff(),
        // A resumed one holds the objects as they were; their status is sent again on the
        // first tick (it may have changed since the client's list).
        Some(_) => {
            for (key, object) in stream.current() {
                let mut unknown = object;
                unknown["status"] = Value::Null;
                stream.sent.insert(key, unknown);
            }
            for event in backlog {
                stream.on_event(event);
            }
        }
    }
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        stream
            .next()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), stream))
    });
    Ok(streaming(Body::from_stream(body)))
}

fn line(change: &str, object: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({ "type": change, "object": object }))
        .expect("a Value always serializes");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

impl Stream {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            if self.done || *self.stop.borrow() {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => self.done = true,
                changed = self.stop.changed() => if changed.is_err() { self.done = true },
                event = self.receiver.recv() => match event {
                    Ok(event) => self.on_event(event),
                    Err(RecvError::Lagged(_)) => {
                        let gone = ApiError::new(
                            axum::http::StatusCode::GONE,
                            "Expired",
                            "the watch fell behind the changes; list and watch again",
                        );
                        self.pending.push_back(line("ERROR", &gone.to_status()));
                        self.done = true;
                    }
                    Err(RecvError::Closed) => self.done = true,
                },
                _ = self.ticker.tick() => self.diff(),
            }
        }
    }

    fn wanted(&self, key: &ObjectKey) -> bool {
        key.group == self.kind.group
            && key.plural == self.kind.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }

    /// The current objects this watch covers, with status.
    fn current(&self) -> Vec<(ObjectKey, Value)> {
        let (items, _) = self.api.registry.list(self.kind, self.namespace.as_deref());
        items
            .into_iter()
            .filter(|o| self.selectors.matches(o))
            .filter_map(|o| {
                let (key, _) = key_of(&o)?;
                Some((key, self.api.registry.with_status(self.kind, o)))
            })
            .collect()
    }

    fn on_event(&mut self, event: WatchEvent) {
        if !self.wanted(&event.key) {
            return;
        }
        let object = self.api.registry.with_status(self.kind, event.object);
        let matches = self.selectors.matches(&object);
        match event.change {
            Change::Deleted => {
                if self.sent.remove(&event.key).is_some() || matches {
                    self.pending
                        .push_back(line(Change::Deleted.as_str(), &object));
                }
            }
            _ if !matches => {
                // No longer selected: gone, as far as this watch is concerned.
                if let Some(previous) = self.sent.remove(&event.key) {
                    self.pending
                        .push_back(line(Change::Deleted.as_str(), &previous));
                }
            }
            change => {
                self.pending.push_back(line(change.as_str(), &object));
                self.sent.insert(event.key, object);
            }
        }
    }

    /// Reports what changed without an event: status, and the files' objects.
    fn diff(&mut self) {
        let current = self.current();
        let mut seen = std::collections::HashSet::new();
        for (key, object) in current {
            seen.insert(key.clone());
            let change = match self.sent.get(&key) {
                None => Change::Added,
                Some(previous) if *previous != object => Change::Modified,
                Some(_) => continue,
            };
            self.pending.push_back(line(change.as_str(), &object));
            self.sent.insert(key, object);
        }
        let gone: Vec<ObjectKey> = self
            .sent
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(previous) = self.sent.remove(&key) {
                self.pending
                    .push_back(line(Change::Deleted.as_str(), &previous));
            }
        }
    }
}
