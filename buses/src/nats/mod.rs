//! The NATS JetStream bus: JetStream stores and replicates, several Herald replicas share it.
//!
//! # Layout
//! - [`config`]: [`NatsConfig`] and the names derived from topics and groups.
//! - [`codec`]: the CloudEvents NATS protocol binding (binary mode written, both modes read).
//! - `subscription`: a group's pull requests and the hand-back of undelivered messages.
//! - `ack`: acknowledgements, keep-alives (`+WPI`) of held deliveries.
//! - [`testing`]: a `nats-server` per test, for this crate's tests and the broker's.
//!
//! # Naming
//! | Herald | JetStream |
//! | --- | --- |
//! | topic `knative-broker-{ns}-{name}` | stream named after the topic, one subject `herald.{stream}` |
//! | group `knative-trigger-{ns}-{name}` | durable pull consumer named after the group |
//!
//! Names keep `[A-Za-z0-9-]`; every other byte becomes `_xx` (hex), so `my.broker` is
//! `my_2ebroker`. Names may escape to at most 255 bytes.
//!
//! # Settings
//! Streams (created on first publish or subscribe, settings applied at creation): file storage,
//! `replicas` (default 1), retention `interest` (an event is deleted once every group
//! acknowledged it; events published while a topic has no group are not kept, as a new group
//! starts at the end anyway), discard `new` with optional `max_bytes` (a full stream refuses
//! publishes with a retryable error instead of dropping unacknowledged events), optional
//! `max_age`, `duplicate_window` (default 2 min).
//!
//! Consumers (created or updated on `subscribe`): durable, pull, explicit ack, deliver policy
//! `new`, `ack_wait` (default 30 s), `max_ack_pending` (default 256, the in-flight window),
//! unlimited deliveries (the broker dead-letters, not JetStream).
//!
//! # Guarantees
//! - `publish` sends every event of the batch with `Nats-Msg-Id` = percent-encoded source and
//!   id ([`codec::message_id`]) and returns only after every PubAck arrived; any failure, or
//!   `publish_timeout` (default 5 s) passing, is a retryable error. Retrying a batch that
//!   partly succeeded does not store its events twice (within the duplicate window).
//! - A delivery's position is its stream sequence; one stream per topic keeps the topic's order.
//! - Unacknowledged deliveries come back. When a subscription is dropped, what it received but
//!   did not hand out and the deliveries dropped unacknowledged are handed back (`-NAK`, lowest
//!   sequence first) for the group's next subscription; a delivery dropped unacknowledged while
//!   its subscription lives, and everything a killed process held, comes back after `ack_wait`.
//!   Deliveries still held are kept alive with `+WPI` every third of `ack_wait`.
//! - [`NatsBus::flushed`] resolves once a dropped bus sent its last acks and hand-backs; await
//!   it at shutdown.
//! - `publish` is pipelined but not atomic: a failed batch may be partly stored, and its retry is
//!   de-duplicated by `Nats-Msg-Id`.
//! - The connection reconnects forever; the same bus instance recovers after NATS restarts.

mod ack;
pub mod codec;
pub mod config;
mod subscription;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, consumer, context::PublishErrorKind, stream};
use async_trait::async_trait;
use cloudevents::Event;
use tokio::sync::watch;

pub use config::NatsConfig;
use config::{TopicNames, consumer_name};
use subscription::NatsSubscription;

use crate::{Bus, BusError, StartPosition, Subscription};

/// A bus on a NATS server or cluster with JetStream. Cheap to share as `Arc<dyn Bus>`.
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    config: NatsConfig,
    /// Streams this process created or found, so publishes skip the lookup.
    streams: Mutex<HashSet<String>>,
    acks: Arc<ack::Acks>,
    flushed: watch::Receiver<bool>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("url", &self.config.url)
            .finish()
    }
}

impl NatsBus {
    /// Connects to `config.url`; fails with [`BusError::Unavailable`] if no server answers
    /// within `connect_timeout`. Once connected, the bus reconnects by itself for ever.
    pub async fn connect(config: NatsConfig) -> Result<NatsBus, BusError> {
        let options = async_nats::ConnectOptions::new()
            .name("herald")
            .connection_timeout(config.connect_timeout)
            .ping_interval(std::time::Duration::from_secs(10))
            .max_reconnects(None)
            .event_callback(|event| async move {
                tracing::info!(%event, "nats connection");
            });
        let client =
            tokio::time::timeout(config.connect_timeout, options.connect(config.url.as_str()))
                .await
                .map_err(|_| {
                    BusError::unavailable(format!("connecting to {}: timed out", config.url))
                })?
                .map_err(|e| BusError::unavailable(format!("connecting to {}: {e}", config.url)))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.publish_timeout)
            .build(client.clone());
        let (done, flushed) = watch::channel(false);
        let acks = ack::Acks::start(client.clone(), config.ack_wait, done);
        Ok(NatsBus {
            client,
            js,
            config,
            streams: Mutex::default(),
            acks,
            flushed,
        })
    }

    /// Resolves once this bus, its subscriptions and every delivery it handed out are dropped
    /// and the last acknowledgements and hand-backs were flushed to NATS. Take it before the
    /// bus goes into an `Arc<dyn Bus>`; await it (with a timeout) at shutdown so that a
    /// successor does not see events again that were acknowledged just before.
    pub fn flushed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut flushed = self.flushed.clone();
        async move {
            let _ = flushed.wait_for(|done| *done).await;
        }
    }

    /// Whether the connection to NATS is up now (for readiness).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the topic's stream unless this process already saw it.
    async fn ensure_stream(&self, names: &TopicNames) -> Result<(), BusError> {
        if self.streams.lock().unwrap().contains(&names.stream) {
            return Ok(());
        }
        let c = &self.config;
        let config = stream::Config {
            name: names.stream.clone(),
            subjects: vec![names.subject.clone()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Interest,
            discard: stream::DiscardPolicy::New,
            num_replicas: c.replicas,
            max_age: c.max_age.unwrap_or_default(),
            max_bytes: c.max_bytes.map_or(-1, |b| b.min(i64::MAX as u64) as i64),
            duplicate_window: c.duplicate_window,
            description: Some("Herald topic".into()),
            ..Default::default()
        };
        self.js
            .get_or_create_stream(config)
            .await
            .map_err(|e| BusError::unavailable(format!("stream {}: {e}", names.stream)))?;
        self.streams.lock().unwrap().insert(names.stream.clone());
        Ok(())
    }

    async fn publish_all(&self, names: &TopicNames, events: &[Event]) -> Result<(), BusError> {
        self.ensure_stream(names).await?;
        let mut pending = Vec::with_capacity(events.len());
        let mut messages = Vec::with_capacity(events.len());
        let limit = self.client.max_payload();
        for event in events {
            let (mut headers, payload) = codec::encode(event).map_err(|e| BusError::Rejected {
                reason: format!(
                    "event {:?} as a nats message: {e}",
                    cloudevents::AttributesReader::id(event)
                ),
            })?;
            headers.insert(codec::MSG_ID, codec::message_id(event).as_str());
            let size = codec::wire_size(&headers, &payload);
            // 0 until the first connection told the server's limit.
            if limit > 0 && size > limit {
                return Err(too_large(size, limit));
            }
            messages.push((headers, payload, size));
        }
        for (headers, payload, size) in messages {
            let ack = self
                .js
                .publish_with_headers(names.subject.clone(), headers, payload)
                .await
                .map_err(|e| match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => {
                        too_large(size, self.client.max_payload())
                    }
                    _ => self.publish_error(names, e),
                })?;
            pending.push(ack);
        }
        for ack in pending {
            ack.await.map_err(|e| self.publish_error(names, e))?;
        }
        Ok(())
    }

    fn publish_error(&self, names: &TopicNames, e: jetstream::context::PublishError) -> BusError {
        let reason = format!("publishing to {}: {e}", names.stream);
        match e.kind() {
            PublishErrorKind::MaxPayloadExceeded => BusError::Rejected { reason },
            PublishErrorKind::StreamNotFound => {
                // Deleted behind our back: recreate it on the next publish.
                self.streams.lock().unwrap().remove(&names.stream);
                BusError::Unavailable { reason }
            }
            _ if is_full(&reason) => BusError::Overloaded { reason },
            _ => BusError::Unavailable { reason },
        }
    }
}

fn too_large(size: usize, limit: usize) -> BusError {
    BusError::TooLarge {
        size: size as u64,
        limit: limit as u64,
    }
}

/// JetStream's answers when a stream or the server's storage is full.
fn is_full(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "maximum bytes",
        "maximum messages",
        "insufficient resources",
        "storage",
    ]
    .iter()
    .any(|m| reason.contains(m))
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let names = TopicNames::new(topic)?;
        tokio::time::timeout(
            self.config.publish_timeout,
            self.publish_all(&names, events),
        )
        .await
        .map_err(|_| {
            BusError::unavailable(format!(
                "publishing to {}: no PubAck within {:?}",
                names.stream, self.config.publish_timeout
            ))
        })?
    }

    /// The start applies when the durable consumer is created; an existing consumer keeps
    /// its position (and its deliver policy: creating it again with another would fail).
    async fn subscribe_from(
        &self,
        topic: &str,
        group: &str,
        start: StartPosition,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let names = TopicNames::new(topic)?;
        let consumer = consumer_name(group)?;
        self.ensure_stream(&names).await?;
        // Creating a consumer again with another deliver policy fails: an existing one keeps
        // its own (and its position).
        let existing = self
            .js
            .get_consumer_from_stream::<consumer::pull::Config, _, _>(
                consumer.as_str(),
                names.stream.as_str(),
            )
            .await
            .ok();
        let deliver_policy = match (existing, start) {
            (Some(existing), _) => existing.cached_info().config.deliver_policy,
            (None, StartPosition::Latest) => consumer::DeliverPolicy::New,
            (None, StartPosition::Earliest) => consumer::DeliverPolicy::All,
            // A time to come: what arrives until then would be skipped; start at the end
            // instead, as the other buses do.
            (None, StartPosition::Time(time)) if time >= chrono::Utc::now() => {
                consumer::DeliverPolicy::New
            }
            (None, StartPosition::Time(time)) => consumer::DeliverPolicy::ByStartTime {
                start_time: async_nats::datetime::parse_rfc3339(&time.to_rfc3339()).map_err(
                    |e| BusError::Rejected {
                        reason: format!("start time {time}: {e}"),
                    },
                )?,
            },
        };
        let config = consumer::pull::Config {
            durable_name: Some(consumer.clone()),
            deliver_policy,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            max_ack_pending: self.config.max_ack_pending as i64,
            max_deliver: -1,
            description: Some(format!("Herald group {group}")),
            ..Default::default()
        };
        self.js
            .create_consumer_on_stream(config, names.stream.as_str())
            .await
            .map_err(|e| BusError::unavailable(format!("consumer {consumer}: {e}")))?;
        let subscription = NatsSubscription::open(
            self.client.clone(),
            self.acks.clone(),
            &names.stream,
            &consumer,
            self.config.max_ack_pending,
        )
        .await?;
        Ok(Box::new(subscription))
    }

    async fn forget_group(&self, topic: &str, group: &str) -> Result<(), BusError> {
        let names = TopicNames::new(topic)?;
        let consumer = consumer_name(group)?;
        match self
            .js
            .delete_consumer_from_stream(consumer.as_str(), names.stream.as_str())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("not found") => Ok(()),
            Err(e) => Err(BusError::unavailable(format!(
                "deleting consumer {consumer}: {e}"
            ))),
        }
    }

    /// The consumer's `num_pending` (not yet sent) plus `num_ack_pending` (sent, not
    /// acknowledged): one request to the server.
    async fn backlog(&self, topic: &str, group: &str) -> Result<Option<u64>, BusError> {
        let names = TopicNames::new(topic)?;
        let consumer = consumer_name(group)?;
        match self
            .js
            .get_consumer_from_stream::<consumer::pull::Config, _, _>(
                consumer.as_str(),
                names.stream.as_str(),
            )
            .await
        {
            Ok(consumer) => {
                let info = consumer.cached_info();
                Ok(Some(info.num_pending + info.num_ack_pending as u64))
            }
            Err(e) if e.to_string().contains("not found") => Ok(None),
            Err(e) => Err(BusError::unavailable(format!(
                "reading consumer {consumer}: {e}"
            ))),
        }
    }

    fn unready_reason(&self) -> Option<String> {
        (!self.is_connected()).then(|| format!("not connected to nats at {}", self.config.url))
    }

    async fn close(self: Arc<Self>) {
        let flushed = self.flushed();
        drop(self);
        crate::await_flushed("nats acknowledgements", flushed).await;
    }
}
