//! The Google Cloud Pub/Sub bus: Pub/Sub stores and delivers, several Herald replicas share a
//! trigger's subscription.
//!
//! Herald speaks Pub/Sub's REST/JSON API with the hyper + rustls client it already has; the
//! gRPC API (tonic, prost, the Google Cloud crates) would double the build for no behaviour
//! Herald needs.
//!
//! # Layout
//! - [`config`]: [`PubsubConfig`], the endpoint (emulator or Google) and resource names.
//! - [`codec`]: the CloudEvents Pub/Sub protocol binding (binary mode written, both read).
//! - `client`: one JSON request, one JSON answer; [`auth`]: Application Default Credentials.
//! - `subscription`: a group's pulls; `ack`: acknowledgements and deadline extensions.
//! - [`source_client`]: create/pull/acknowledge for `CloudPubSubSource` (the broker's loop).
//! - [`testing`]: the Pub/Sub emulator per test, for this crate's tests and the broker's.
//!
//! # Naming
//! | Herald | Pub/Sub |
//! | --- | --- |
//! | topic `knative-broker-{ns}-{name}` | topic of that name, created if missing |
//! | group `knative-trigger-{ns}-{name}` | subscription of that name, created if missing |
//!
//! Names must be Pub/Sub resource ids (3–255 characters, a letter first); others are
//! refused. Groups not named `knative-...` (tests, tools) are `{topic}.{group}`.
//!
//! # Guarantees
//! - `publish` returns once Pub/Sub acknowledged every message (it answers with their ids);
//!   any failure, or `publish_timeout` (default 5 s) passing, is a retryable error (`503`).
//!   A batch is split into requests of at most 1000 messages; a failed batch may be partly
//!   stored and its retry stores those events again (Pub/Sub has no publish de-duplication):
//!   at-least-once, as everywhere in Herald.
//! - A message larger than Pub/Sub's 10 MB limit is [`BusError::TooLarge`] (`413`).
//! - The event's `partitionkey` is the message's ordering key; subscriptions are created with
//!   `enableMessageOrdering` (unless `message_ordering` is off), so one key's events arrive in
//!   order. Events without a key are in Pub/Sub's best-effort order (the emulator keeps
//!   publish order; Google's service does not promise it).
//! - Unacknowledged deliveries come back: a dropped subscription hands back (deadline 0)
//!   what it did not deliver and what was dropped unacknowledged; a killed process's messages
//!   come back after the ack deadline (default 30 s). Held deliveries are extended every third
//!   of the deadline.
//! - A new group starts at the end (`Latest`). `Earliest` and `Time` seek the new subscription
//!   (`:seek` to a time); topics are created with `messageRetentionDuration` (default 1 day) so
//!   that a seek reaches events published before the subscription existed. The emulator does
//!   not implement seek on subscriptions with message ordering: there such a start is refused
//!   with an error saying so (run with `message_ordering` off, or start at `Latest`).

mod ack;
pub mod auth;
mod client;
pub mod codec;
pub mod config;
pub mod source_client;
mod subscription;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cloudevents::{AttributesReader, Event};
use serde_json::{Value, json};
use tokio::sync::watch;

use client::{Api, ApiError};
pub use config::{Endpoint, PubsubConfig};
use config::{MAX_MESSAGE_BYTES, duration_json};
use subscription::PubsubSubscription;

use crate::{Bus, BusError, StartPosition, Subscription};

/// Messages one publish request carries at most (Pub/Sub's limit).
const MAX_MESSAGES_PER_REQUEST: usize = 1000;
/// How often the background probe checks that Pub/Sub answers (for readiness).
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// A bus on Google Cloud Pub/Sub or its emulator. Cheap to share as `Arc<dyn Bus>`.
pub struct PubsubBus {
    api: Arc<Api>,
    config: PubsubConfig,
    /// Topics this process created or found, so publishes skip the creation.
    topics: Mutex<HashSet<String>>,
    acks: Arc<ack::Acks>,
    flushed: watch::Receiver<bool>,
    unready: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for PubsubBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubsubBus")
            .field("project", &self.config.project)
            .field("endpoint", &self.config.endpoint)
            .finish()
    }
}

impl PubsubBus {
    /// Connects: loads credentials (Google) and checks that Pub/Sub answers within
    /// `request_timeout`, else [`BusError::Unavailable`]. A probe keeps checking afterwards.
    pub async fn connect(config: PubsubConfig) -> Result<PubsubBus, BusError> {
        config::check_project(&config.project)?;
        let http = client::http_client()?;
        let auth = match config.endpoint {
            Endpoint::Emulator { .. } => None,
            Endpoint::Google => Some(
                auth::TokenSource::from_env()
                    .await
                    .map_err(|e| BusError::unavailable(format!("pubsub credentials: {e}")))?,
            ),
        };
        let api = Arc::new(Api::new(http, config.base_url(), auth));
        let probe_path = format!("projects/{}/topics?pageSize=1", config.project);
        if let Some(reason) = unreachable(
            api.call("GET", &probe_path, &Value::Null, config.request_timeout)
                .await,
        ) {
            return Err(BusError::unavailable(format!(
                "connecting to pubsub: {reason}"
            )));
        }
        let unready = Arc::new(Mutex::new(None));
        tokio::spawn(probe(
            Arc::downgrade(&api),
            probe_path,
            config.request_timeout.min(PROBE_INTERVAL),
            unready.clone(),
        ));
        let (done, flushed) = watch::channel(false);
        let acks = ack::Acks::start(
            api.clone(),
            config.ack_deadline,
            config.request_timeout,
            done,
        );
        Ok(PubsubBus {
            api,
            config,
            topics: Mutex::default(),
            acks,
            flushed,
            unready,
        })
    }

    /// Resolves once this bus, its subscriptions and every delivery it handed out are dropped
    /// and the last acknowledgements and hand-backs were sent. Take it before the bus goes
    /// into an `Arc<dyn Bus>`.
    pub fn flushed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut flushed = self.flushed.clone();
        async move {
            let _ = flushed.wait_for(|done| *done).await;
        }
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        self.api
            .call(method, path, body, self.config.request_timeout)
            .await
    }

    /// Creates the topic (with its retention) unless this process already saw it.
    async fn ensure_topic(&self, path: &str) -> Result<(), BusError> {
        if self.topics.lock().unwrap().contains(path) {
            return Ok(());
        }
        let body =
            json!({ "messageRetentionDuration": duration_json(self.config.topic_retention) });
        match self.call("PUT", path, &body).await {
            Ok(_) => {}
            Err(e) if e.status() == Some("ALREADY_EXISTS") => {}
            Err(e) => return Err(e.into_bus_error()),
        }
        self.topics.lock().unwrap().insert(path.to_owned());
        Ok(())
    }

    async fn publish_all(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        let mut messages = Vec::with_capacity(events.len());
        for event in events {
            let message = codec::encode(event).map_err(|e| BusError::Rejected {
                reason: format!("event {:?} as a pubsub message: {e}", event.id()),
            })?;
            let size = message.size();
            if size > MAX_MESSAGE_BYTES {
                return Err(BusError::TooLarge {
                    size,
                    limit: MAX_MESSAGE_BYTES,
                });
            }
            let mut json = json!({
                "data": STANDARD.encode(&message.data),
                "attributes": message.attributes,
            });
            if let Some(key) = message.ordering_key {
                json["orderingKey"] = Value::String(key);
            }
            messages.push((json, size));
        }
        self.ensure_topic(topic).await?;
        for chunk in requests(messages) {
            let body = json!({ "messages": chunk });
            match self.call("POST", &format!("{topic}:publish"), &body).await {
                Ok(_) => {}
                Err(e) if e.status() == Some("NOT_FOUND") => {
                    // Deleted behind our back: recreate it on the next publish.
                    self.topics.lock().unwrap().remove(topic);
                    return Err(e.into_bus_error());
                }
                Err(e) => return Err(e.into_bus_error()),
            }
        }
        Ok(())
    }

    /// Applies `start` to a subscription this call created at `created` (by Herald's clock).
    ///
    /// `Latest` seeks to `created` too: on a topic with retention the emulator hands a new
    /// subscription the retained messages, Google's service does not (the seek is then a
    /// no-op). Where seek is not implemented (the emulator's ordered subscriptions) `Latest`
    /// goes on without it, and `Earliest` or a past `Time` is refused.
    async fn seek(
        &self,
        subscription: &str,
        start: StartPosition,
        created: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), BusError> {
        let (time, needed) = match start {
            StartPosition::Latest => (created, false),
            StartPosition::Time(time) if time >= created => (created, false),
            StartPosition::Time(time) => (time, true),
            StartPosition::Earliest => (
                created
                    - chrono::Duration::from_std(self.config.topic_retention)
                        .unwrap_or(chrono::Duration::days(7)),
                true,
            ),
        };
        let body = json!({ "time": time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) });
        match self
            .call("POST", &format!("{subscription}:seek"), &body)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some("UNIMPLEMENTED") && !needed => {
                tracing::debug!(error = %e, "seek to the subscription's creation not implemented");
                Ok(())
            }
            Err(e) if e.status() == Some("UNIMPLEMENTED") => Err(BusError::Rejected {
                reason: format!(
                    "starting {subscription} at {start:?} needs seek, which this Pub/Sub \
                     endpoint does not implement here (the emulator has no seek on \
                     subscriptions with message ordering): {e}"
                ),
            }),
            Err(e) => Err(e.into_bus_error()),
        }
    }
}

/// Splits messages into publish requests within Pub/Sub's count and size limits.
fn requests(messages: Vec<(Value, u64)>) -> Vec<Vec<Value>> {
    // Request bodies carry data in base64 (4/3) plus JSON: stay well under the 10 MB limit.
    const REQUEST_BUDGET: u64 = MAX_MESSAGE_BYTES / 2;
    let mut out: Vec<Vec<Value>> = Vec::new();
    let mut bytes = 0;
    for (message, size) in messages {
        let full = out.last().is_none_or(|last| {
            last.len() >= MAX_MESSAGES_PER_REQUEST || bytes + size > REQUEST_BUDGET
        });
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        out.last_mut().expect("pushed above").push(message);
    }
    out
}

async fn probe(
    api: std::sync::Weak<Api>,
    path: String,
    timeout: Duration,
    unready: Arc<Mutex<Option<String>>>,
) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let Some(api) = api.upgrade() else { return };
        let state = unreachable(api.call("GET", &path, &Value::Null, timeout).await)
            .map(|reason| format!("pubsub does not answer: {reason}"));
        *unready.lock().unwrap() = state;
    }
}

/// Why a probe (listing one topic) shows Pub/Sub unusable: no answer, a server error, or
/// credentials refused (`401`). A `403` is an answer: a service account with only the
/// publisher and subscriber roles may not list topics.
fn unreachable(answer: Result<Value, ApiError>) -> Option<String> {
    match answer {
        Ok(_) => None,
        Err(e) => match e.code() {
            Some(code) if code < 500 && code != 401 => None,
            _ => Some(e.to_string()),
        },
    }
}

#[async_trait]
impl Bus for PubsubBus {
    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let path = self.config.topic_path(topic)?;
        tokio::time::timeout(self.config.publish_timeout, self.publish_all(&path, events))
            .await
            .map_err(|_| {
                BusError::unavailable(format!(
                    "publishing to {path}: not acknowledged within {:?}",
                    self.config.publish_timeout
                ))
            })?
    }

    /// Deletes the group's subscription: its unacknowledged messages go with it, as a
    /// forgotten position must. A subscription that is already gone is not an error.
    async fn forget_group(&self, topic: &str, group: &str) -> Result<(), BusError> {
        let path = self.config.subscription_path(topic, group)?;
        match self.call("DELETE", &path, &Value::Null).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some("NOT_FOUND") => Ok(()),
            Err(e) => Err(e.into_bus_error()),
        }
    }

    /// The start applies when this call creates the subscription; an existing one keeps its
    /// position.
    async fn subscribe_from(
        &self,
        topic: &str,
        group: &str,
        start: StartPosition,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let topic_path = self.config.topic_path(topic)?;
        let path = self.config.subscription_path(topic, group)?;
        self.ensure_topic(&topic_path).await?;
        let body = json!({
            "topic": topic_path,
            "ackDeadlineSeconds": self.config.ack_deadline.as_secs().clamp(10, 600),
            "enableMessageOrdering": self.config.message_ordering,
        });
        let created = chrono::Utc::now();
        let mut answer = self.call("PUT", &path, &body).await;
        if let Err(e) = &answer
            && e.status() == Some("NOT_FOUND")
        {
            // The topic was deleted behind our back (or the emulator restarted): recreate it.
            self.topics.lock().unwrap().remove(&topic_path);
            self.ensure_topic(&topic_path).await?;
            answer = self.call("PUT", &path, &body).await;
        }
        match answer {
            Ok(_) => self.seek(&path, start, created).await?,
            Err(e) if e.status() == Some("ALREADY_EXISTS") => {
                let existing = self
                    .call("GET", &path, &Value::Null)
                    .await
                    .map_err(ApiError::into_bus_error)?;
                if existing["topic"].as_str() != Some(topic_path.as_str()) {
                    return Err(BusError::Rejected {
                        reason: format!(
                            "subscription {path} exists on topic {:?}, not {topic_path}",
                            existing["topic"].as_str().unwrap_or("(deleted)")
                        ),
                    });
                }
            }
            Err(e) => return Err(e.into_bus_error()),
        }
        Ok(Box::new(PubsubSubscription::new(
            self.api.clone(),
            self.acks.clone(),
            path,
            self.config.max_messages,
            self.config.request_timeout,
        )))
    }

    fn unready_reason(&self) -> Option<String> {
        self.unready.lock().unwrap().clone()
    }

    async fn close(self: Arc<Self>) {
        let flushed = self.flushed();
        drop(self);
        crate::await_flushed("pubsub acknowledgements", flushed).await;
    }
}
