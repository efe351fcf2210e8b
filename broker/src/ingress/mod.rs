//! HTTP ingress: `POST /{namespace}/{broker}`, the webhook handshake, health and metrics.
//!
//! # Layout
//! - [`Ingress`]: publishes events to a broker's topic (used by HTTP and, in-process, by
//!   replies and broker destinations) after stamping `knativearrivaltime` and the TTL.
//! - [`router`]: the axum router of the one listener.
//! - [`error`]: status codes.

mod error;
mod routes;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{SecondsFormat, Utc};
use cloudevents::Event;
use cloudevents::event::ExtensionValue;
use herald_buses::Bus;

pub use error::IngressError;
pub use routes::router;

use crate::config::{BrokerId, DEFAULT_TTL};
use crate::metrics::{BrokerLabels, Metrics, RejectLabels};

pub const ARRIVAL_TIME: &str = "knativearrivaltime";
pub const TTL: &str = "knativebrokerttl";

/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

pub struct Ingress {
    brokers: HashMap<BrokerId, String>,
    bus: Arc<dyn Bus>,
    pub metrics: Arc<Metrics>,
    pub max_body: usize,
    ready: AtomicBool,
}

impl Ingress {
    pub fn new(
        brokers: impl IntoIterator<Item = BrokerId>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        max_body: usize,
    ) -> Self {
        Self {
            brokers: brokers
                .into_iter()
                .map(|b| (b.topic(), b))
                .map(|(t, b)| (b, t))
                .collect(),
            bus,
            metrics,
            max_body,
            ready: AtomicBool::new(false),
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn has_broker(&self, id: &BrokerId) -> bool {
        self.brokers.contains_key(id)
    }

    /// Stamps and stores `events` on `broker`'s topic; returns once the bus made them durable.
    pub async fn publish(
        &self,
        broker: &BrokerId,
        mut events: Vec<Event>,
    ) -> Result<(), IngressError> {
        let result = self.publish_inner(broker, &mut events).await;
        let name = broker.to_string();
        match &result {
            Ok(()) => {
                self.metrics
                    .events_accepted
                    .get_or_create(&BrokerLabels { broker: name })
                    .inc_by(events.len() as u64);
            }
            Err(e) => {
                self.metrics
                    .events_rejected
                    .get_or_create(&RejectLabels {
                        broker: name,
                        reason: e.reason(),
                    })
                    .inc_by(events.len().max(1) as u64);
            }
        }
        result
    }

    async fn publish_inner(
        &self,
        broker: &BrokerId,
        events: &mut [Event],
    ) -> Result<(), IngressError> {
        let topic = self
            .brokers
            .get(broker)
            .ok_or_else(|| IngressError::UnknownBroker {
                namespace: broker.namespace.clone(),
                name: broker.name.clone(),
            })?;
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::AutoSi, true);
        for event in events.iter_mut() {
            stamp(event, &now)?;
        }
        let started = tokio::time::Instant::now();
        self.bus.publish(topic, events).await?;
        self.metrics
            .bus_append_latency
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// Reads the loop-guard TTL of an event (absent: Knative's default).
pub fn ttl(event: &Event) -> Result<i64, IngressError> {
    match event.extension(TTL) {
        None => Ok(DEFAULT_TTL),
        Some(ExtensionValue::Integer(i)) => Ok(*i),
        Some(ExtensionValue::String(s)) => s.trim().parse().map_err(|_| {
            IngressError::Binding(crate::binding::invalid(format!(
                "extension {TTL} {s:?} is not an integer"
            )))
        }),
        Some(ExtensionValue::Boolean(_)) => Err(IngressError::Binding(crate::binding::invalid(
            format!("extension {TTL} must be an integer"),
        ))),
    }
}

fn stamp(event: &mut Event, now: &str) -> Result<(), IngressError> {
    let ttl = ttl(event)?;
    if ttl <= 0 {
        return Err(IngressError::TtlExhausted(ttl));
    }
    event.set_extension(TTL, ExtensionValue::Integer(ttl));
    event.set_extension(ARRIVAL_TIME, ExtensionValue::String(now.to_owned()));
    Ok(())
}
