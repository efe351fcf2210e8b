//! HTTP ingress: `POST /{namespace}/{broker}`, the webhook handshake, health and metrics.
//!
//! # Layout
//! - [`Ingress`]: publishes events to a broker's topic (used by HTTP and, in-process, by
//!   replies, broker destinations and sources) after checking them against the attribute
//!   limits and stamping `knativearrivaltime` and the TTL: nothing invalid is ever stored.
//! - [`router`]: the axum router of the one listener.
//! - [`error`]: status codes.

mod error;
mod routes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{SecondsFormat, Utc};
use cloudevents::Event;
use cloudevents::event::ExtensionValue;
use herald_buses::Bus;

pub use error::IngressError;
pub(crate) use routes::read_limited;
pub use routes::router;

use crate::binding::AttributeLimits;
use crate::config::{BrokerId, DEFAULT_TTL};
use crate::metrics::{BrokerLabels, Metrics, RejectLabels};
use prometheus_client::metrics::counter::Counter;

pub const ARRIVAL_TIME: &str = "knativearrivaltime";
pub const TTL: &str = "knativebrokerttl";

/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The broker label of refusals whose path names no configured broker: metric labels come
/// from configuration only, so any number of unknown paths is one series.
pub const UNKNOWN_BROKER: &str = "_unknown";

/// The highest `knativebrokerttl` a publisher can set (Knative's default); higher is clamped.
pub const MAX_TTL: i64 = 255;

/// A broker as ingress serves it, with its metric handles made once.
pub struct BrokerEntry {
    pub id: BrokerId,
    topic: String,
    accepted: Counter,
}

pub struct Ingress {
    /// Keyed by `namespace/name`, the request path without its leading `/`, so a request
    /// finds its broker without allocating. Replaced whole when the configuration changes
    /// ([`Ingress::set_brokers`]); a request holds its entry's `Arc` until it is stored.
    brokers: RwLock<Arc<HashMap<String, Arc<BrokerEntry>>>>,
    bus: Arc<dyn Bus>,
    pub metrics: Arc<Metrics>,
    pub max_body: usize,
    limits: AttributeLimits,
    ready: AtomicBool,
}

impl Ingress {
    pub fn new(
        brokers: impl IntoIterator<Item = BrokerId>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        max_body: usize,
    ) -> Self {
        let brokers = broker_table(brokers, &metrics);
        Self {
            brokers: RwLock::new(Arc::new(brokers)),
            bus,
            metrics,
            max_body,
            limits: AttributeLimits::default(),
            ready: AtomicBool::new(false),
        }
    }

    /// The attribute limits every published event is checked against (default: the
    /// defaults of [`AttributeLimits`]).
    pub fn with_limits(mut self, limits: AttributeLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Started, not shutting down, and the bus able to take events.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.bus.unready_reason().is_none()
    }

    /// The broker at `namespace/name`.
    pub fn broker(&self, key: &str) -> Option<Arc<BrokerEntry>> {
        self.brokers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Serves exactly `brokers` from now on: new ones are accepted at once, removed ones
    /// answer 404 (requests already past the lookup finish storing).
    pub fn set_brokers(&self, brokers: impl IntoIterator<Item = BrokerId>) {
        let table = Arc::new(broker_table(brokers, &self.metrics));
        *self.brokers.write().unwrap_or_else(|e| e.into_inner()) = table;
    }

    /// Counts a refused request in `herald_events_rejected_total`; `broker` is a configured
    /// broker's id or [`UNKNOWN_BROKER`], never text from a request.
    pub fn count_rejected(&self, broker: &str, error: &IngressError, events: usize) {
        self.metrics
            .events_rejected
            .get_or_create(&RejectLabels {
                broker: broker.to_owned(),
                reason: error.reason(),
            })
            .inc_by(events.max(1) as u64);
    }

    /// Stamps and stores `events` on `broker`'s topic (in-process publishing: replies and
    /// broker destinations); returns once the bus made them durable.
    pub async fn publish(&self, broker: &BrokerId, events: Vec<Event>) -> Result<(), IngressError> {
        let key = broker.to_string();
        let Some(entry) = self.broker(&key) else {
            let error = IngressError::UnknownBroker {
                namespace: broker.namespace.clone(),
                name: broker.name.clone(),
            };
            self.count_rejected(UNKNOWN_BROKER, &error, events.len());
            return Err(error);
        };
        self.publish_to(&entry, events).await
    }

    /// Stamps and stores `events` on `entry`'s topic.
    pub async fn publish_to(
        &self,
        entry: &BrokerEntry,
        mut events: Vec<Event>,
    ) -> Result<(), IngressError> {
        let result = self.store(entry, &mut events).await;
        match &result {
            Ok(()) => {
                entry.accepted.inc_by(events.len() as u64);
            }
            Err(e) => self.count_rejected(&entry.id.to_string(), e, events.len()),
        }
        result
    }

    async fn store(&self, entry: &BrokerEntry, events: &mut [Event]) -> Result<(), IngressError> {
        for (i, event) in events.iter().enumerate() {
            self.limits.check(event).map_err(|e| match events.len() {
                1 => IngressError::Binding(e),
                _ => IngressError::Binding(batch_error(i, e)),
            })?;
        }
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::AutoSi, true);
        for event in events.iter_mut() {
            stamp(event, &now)?;
        }
        let started = tokio::time::Instant::now();
        self.bus.publish(&entry.topic, events).await?;
        self.metrics
            .bus_append_latency
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

fn broker_table(
    brokers: impl IntoIterator<Item = BrokerId>,
    metrics: &Metrics,
) -> HashMap<String, Arc<BrokerEntry>> {
    brokers
        .into_iter()
        .map(|id| {
            let entry = BrokerEntry {
                topic: id.topic(),
                accepted: metrics
                    .events_accepted
                    .get_or_create(&BrokerLabels {
                        broker: id.to_string(),
                    })
                    .clone(),
                id,
            };
            (entry.id.to_string(), Arc::new(entry))
        })
        .collect()
}

/// Which event of a batch broke a limit; the limit errors keep their kind (and reason label).
fn batch_error(index: usize, error: crate::binding::BindingError) -> crate::binding::BindingError {
    match error {
        crate::binding::BindingError::Invalid(message) => {
            crate::binding::invalid(format!("batch event {index}: {message}"))
        }
        crate::binding::BindingError::ControlCharacter {
            attribute,
            character,
        } => crate::binding::BindingError::ControlCharacter {
            attribute: format!("{attribute} of batch event {index}"),
            character,
        },
        other => other,
    }
}

/// Reads the loop-guard TTL of an event (absent: Knative's default). A decimal integer too
/// large for `i64` reads as `i64::MAX` (and is clamped to [`MAX_TTL`] when stamped).
pub fn ttl(event: &Event) -> Result<i64, IngressError> {
    match event.extension(TTL) {
        None => Ok(DEFAULT_TTL),
        Some(ExtensionValue::Integer(i)) => Ok(*i),
        Some(ExtensionValue::String(s)) => {
            let text = s.trim();
            text.parse().or_else(|_| {
                let digits = text.strip_prefix('+').unwrap_or(text);
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(i64::MAX)
                } else {
                    Err(IngressError::Binding(crate::binding::invalid(format!(
                        "extension {TTL} {s:?} is not an integer"
                    ))))
                }
            })
        }
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
    // A publisher cannot switch the loop guard off with a huge TTL.
    event.set_extension(TTL, ExtensionValue::Integer(ttl.min(MAX_TTL)));
    event.set_extension(ARRIVAL_TIME, ExtensionValue::String(now.to_owned()));
    Ok(())
}

#[cfg(test)]
mod tests;
