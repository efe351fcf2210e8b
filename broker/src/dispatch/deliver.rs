//! One event's way through a trigger: attempts with backoff, `Retry-After`, the dead-letter
//! sink or the trigger's parking lot, and the reply event back into the broker.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use cloudevents::Event;
use cloudevents::event::ExtensionValue;
use tokio::sync::watch;

use herald_buses::Bus;

use super::retry::RetryPolicy;
use super::sender::{Attempt, Failure, Reply, Sender};
use crate::config::{ReplyTo, Target, TriggerConfig};
use crate::ingress::{self, Ingress};
use crate::metrics::{Metrics, TriggerMetrics};
use crate::outbound::SendAs;

/// `knativeerrordata` carries at most this many bytes of the failed response body.
const ERROR_DATA_LIMIT: usize = 1024;

/// Everything a trigger's deliveries share.
pub struct TriggerContext {
    pub trigger: TriggerConfig,
    /// `namespace/name`, for logs and metric labels.
    pub label: String,
    pub sender: Sender,
    pub ingress: Arc<Ingress>,
    /// The bus the trigger's parking lot is on.
    pub bus: Arc<dyn Bus>,
    /// `knative-trigger-{ns}-{name}-parked`: where poison events go.
    pub parked_topic: String,
    pub metrics: Arc<Metrics>,
    pub stats: TriggerMetrics,
    /// Lag and last error, shared with the trigger's other dispatcher and its status.
    pub health: Arc<super::health::TriggerHealth>,
    /// Adds up to 10% random jitter to backoff waits (off in tests that pin the formula).
    pub jitter: bool,
    /// Who this trigger's replies and broker deliveries are published as.
    pub identity: crate::identity::SenderIdentity,
    /// The trigger's outbound identity and signer, for its subscriber and dead-letter sink.
    pub send_as: SendAs,
}

/// How processing an event ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered, dead-lettered, parked or dropped by policy: acknowledge it.
    Finished,
    /// Shutting down before it finished: leave it unacknowledged for the next run.
    HandBack,
}

enum Stop {
    HandBack,
    Exhausted(Failure),
}

/// Waits `duration` unless shutdown comes first; true when the wait completed.
pub async fn pause(duration: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => true,
        _ = shutdown.wait_for(|s| *s) => false,
    }
}

impl TriggerContext {
    /// Shares `health` (kept by the runtime across restarts of the trigger).
    pub fn with_health(mut self, health: Arc<super::health::TriggerHealth>) -> Self {
        self.health = health;
        self
    }

    pub fn new(
        trigger: TriggerConfig,
        sender: Sender,
        ingress: Arc<Ingress>,
        bus: Arc<dyn Bus>,
        jitter: bool,
    ) -> Self {
        let label = trigger.to_string();
        let metrics = ingress.metrics.clone();
        // A subscription (a flow's hop too) sends and publishes as itself.
        let kind = trigger.kind.name();
        let send_as = SendAs::resource(
            kind,
            &trigger.namespace,
            &trigger.name,
            &kind.to_lowercase(),
            trigger.signer.clone(),
        );
        Self {
            send_as,
            stats: TriggerMetrics::new(&metrics, &label),
            health: super::health::TriggerHealth::new(&metrics, &label),
            parked_topic: super::parked::ParkingLot::of(&trigger).parked,
            identity: crate::identity::SenderIdentity::resource(
                kind,
                &trigger.namespace,
                &trigger.name,
            ),
            label,
            trigger,
            sender,
            ingress,
            bus,
            metrics,
            jitter,
        }
    }

    fn retry_policy(&self) -> RetryPolicy<'_> {
        RetryPolicy::new(&self.trigger.delivery, self.jitter)
    }

    pub async fn process(&self, event: &Event, shutdown: &mut watch::Receiver<bool>) -> Outcome {
        let failure = match self
            .attempt_all(&self.trigger.subscriber, event, shutdown)
            .await
        {
            Ok(reply) => {
                if let Some(arrival) = arrival_age(event) {
                    self.stats.latency.observe(arrival);
                }
                if self.take_reply(event, reply, shutdown).await == Outcome::HandBack {
                    return Outcome::HandBack;
                }
                self.stats.delivered.inc();
                self.health.delivered();
                return Outcome::Finished;
            }
            Err(Stop::HandBack) => return Outcome::HandBack,
            Err(Stop::Exhausted(failure)) => failure,
        };
        self.stats.exhausted.inc();
        let dead = self.dead_letter_event(event, &failure);
        let why = match &self.trigger.delivery.dead_letter {
            None => failure.message,
            Some(dead_letter) => match self.attempt_all(dead_letter, &dead, shutdown).await {
                Ok(_) => {
                    tracing::info!(trigger = %self.label, event.id = ?cloudevents::AttributesReader::id(event),
                        error = %failure.message, "event dead-lettered");
                    self.stats.dead_lettered_total.inc();
                    self.stats.dead_lettered.inc();
                    return Outcome::Finished;
                }
                Err(Stop::HandBack) => return Outcome::HandBack,
                Err(Stop::Exhausted(dls_failure)) => {
                    format!(
                        "{}; dead-letter sink: {}",
                        failure.message, dls_failure.message
                    )
                }
            },
        };
        self.park(&dead, &why, shutdown).await
    }

    /// Writes `dead` to the trigger's parking lot, so that it no longer blocks its key or the
    /// window. Nothing is dropped: while the bus refuses it, the event stays unacknowledged and
    /// parking is retried with backoff (1 s doubling to 30 s) until it works or shutdown.
    async fn park(&self, dead: &Event, why: &str, shutdown: &mut watch::Receiver<bool>) -> Outcome {
        let mut wait = Duration::from_secs(1);
        loop {
            match self
                .bus
                .publish(&self.parked_topic, std::slice::from_ref(dead))
                .await
            {
                Ok(()) => {
                    tracing::warn!(trigger = %self.label, event.id = ?cloudevents::AttributesReader::id(dead),
                        error = %why, topic = %self.parked_topic, "event parked");
                    self.stats.parked.inc();
                    self.stats.parked_outcome.inc();
                    return Outcome::Finished;
                }
                Err(e) => {
                    tracing::error!(trigger = %self.label, event.id = ?cloudevents::AttributesReader::id(dead),
                        error = %e, retry_in = ?wait, "parking the event failed; event kept");
                    if !pause(wait, shutdown).await {
                        return Outcome::HandBack;
                    }
                    wait = wait.saturating_mul(2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// `retry + 1` attempts to `target`; the reply events of the successful one.
    async fn attempt_all(
        &self,
        target: &Target,
        event: &Event,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Reply, Stop> {
        let policy = &self.trigger.delivery;
        let mut last: Option<Failure> = None;
        for n in 0..=policy.retry {
            if n > 0 {
                let wait = self
                    .retry_policy()
                    .wait(n, last.as_ref().and_then(|f| f.retry_after));
                self.stats.retries.inc();
                if !pause(wait, shutdown).await {
                    return Err(Stop::HandBack);
                }
            }
            let attempt = match target {
                Target::Url(endpoint) => {
                    self.sender
                        .send(
                            endpoint,
                            event,
                            policy.format,
                            policy.timeout,
                            &self.send_as,
                        )
                        .await
                }
                Target::Broker(id) => {
                    // Forwarding to a broker is a hop: the loop guard applies as to replies.
                    let ttl = ingress::ttl(event).unwrap_or(crate::config::DEFAULT_TTL) - 1;
                    if ttl <= 0 {
                        tracing::warn!(trigger = %self.label, event.id = ?cloudevents::AttributesReader::id(event),
                            broker = %id, "event not forwarded: knativebrokerttl exhausted (broker loop?)");
                        self.stats.ttl_dropped.inc();
                        return Ok(Reply::None);
                    }
                    let mut forwarded = event.clone();
                    forwarded.set_extension(ingress::TTL, ExtensionValue::Integer(ttl));
                    self.forward(id, forwarded).await
                }
            };
            match attempt {
                Attempt::Delivered { reply } => return Ok(reply),
                Attempt::Failed(failure) => {
                    tracing::debug!(trigger = %self.label, attempt = n + 1, error = ?failure.message, "delivery attempt failed");
                    self.health.failed(&failure.message);
                    let retryable = failure.retryable;
                    last = Some(failure);
                    if !retryable {
                        break;
                    }
                }
            }
        }
        Err(Stop::Exhausted(last.expect("at least one attempt ran")))
    }

    async fn forward(&self, id: &crate::config::BrokerId, event: Event) -> Attempt {
        match self.ingress.publish(id, vec![event], &self.identity).await {
            Ok(()) => Attempt::Delivered { reply: Reply::None },
            Err(e) => Attempt::Failed(Failure {
                status: Some(e.status()),
                retryable: e.status().is_server_error(),
                retry_after: None,
                body: bytes::Bytes::from(e.to_string()),
                message: e.to_string(),
            }),
        }
    }

    fn dead_letter_event(&self, event: &Event, failure: &Failure) -> Event {
        let mut dead = event.clone();
        dead.set_extension(
            "knativeerrordest",
            ExtensionValue::String(self.trigger.subscriber.to_string()),
        );
        if let Some(status) = failure.status {
            dead.set_extension(
                "knativeerrorcode",
                ExtensionValue::String(status.as_u16().to_string()),
            );
        }
        let data = &failure.body[..failure.body.len().min(ERROR_DATA_LIMIT)];
        if !data.is_empty() {
            let encoded = base64::engine::general_purpose::STANDARD.encode(data);
            dead.set_extension("knativeerrordata", ExtensionValue::String(encoded));
        }
        dead
    }

    /// Publishes the subscriber's reply, if it is one event; a refused reply (a batch, an
    /// invalid event, a body that could not be read) is counted and the delivery still
    /// counts as delivered.
    async fn take_reply(
        &self,
        original: &Event,
        reply: Reply,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        match reply {
            Reply::None => Outcome::Finished,
            Reply::One(reply) => self.publish_reply(original, *reply, shutdown).await,
            Reply::Refused { reason, message } => {
                tracing::warn!(trigger = %self.label, event.id = ?cloudevents::AttributesReader::id(original),
                    reason, error = %message, "reply refused");
                self.metrics.reply_rejected(&self.label, reason);
                Outcome::Finished
            }
        }
    }

    /// Publishes a reply event where the dispatcher's replies go (a trigger's broker, a
    /// subscription's `spec.reply`, or nowhere) with the TTL decremented; a reply whose TTL
    /// reaches 0 is dropped (loop guard).
    async fn publish_reply(
        &self,
        original: &Event,
        mut reply: Event,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        /// Where the reply goes next: a broker or channel in-process, or a URL.
        enum Next<'a> {
            Ingress(&'a crate::config::BrokerId),
            Url(&'a Target),
        }
        let next = match &self.trigger.reply {
            ReplyTo::Source => Next::Ingress(&self.trigger.broker),
            ReplyTo::Drop => {
                // Knative: a subscription without `spec.reply` drops its subscriber's reply.
                tracing::debug!(trigger = %self.label, event.id = ?cloudevents::AttributesReader::id(original),
                    "reply dropped: the subscription has no spec.reply");
                return Outcome::Finished;
            }
            ReplyTo::Target(Target::Broker(id)) => Next::Ingress(id),
            ReplyTo::Target(target @ Target::Url(_)) => Next::Url(target),
        };
        // The loop guard holds on every hop, whichever way the reply goes on.
        let ttl = ingress::ttl(original).unwrap_or(crate::config::DEFAULT_TTL) - 1;
        if ttl <= 0 {
            tracing::warn!(trigger = %self.label, event.id = ?cloudevents::AttributesReader::id(original),
                "reply dropped: knativebrokerttl exhausted (event loop?)");
            self.stats.ttl_dropped.inc();
            return Outcome::Finished;
        }
        reply.set_extension(ingress::TTL, ExtensionValue::Integer(ttl));
        let destination = match next {
            Next::Ingress(id) => id,
            Next::Url(target) => return self.send_reply(target, reply, shutdown).await,
        };
        let mut n: u32 = 0;
        loop {
            match self
                .ingress
                .publish(destination, vec![reply.clone()], &self.identity)
                .await
            {
                Ok(()) => return Outcome::Finished,
                Err(e) if e.status().is_server_error() => {
                    n = n.saturating_add(1);
                    let wait = self
                        .retry_policy()
                        .wait(n.min(16), None)
                        .min(Duration::from_secs(30));
                    tracing::warn!(trigger = %self.label, error = ?e.to_string(), "reply not stored yet; retrying");
                    if !pause(wait, shutdown).await {
                        return Outcome::HandBack;
                    }
                }
                Err(e) => {
                    tracing::warn!(trigger = %self.label, error = ?e.to_string(), "reply rejected; dropped");
                    self.metrics
                        .reply_rejected(&self.label, "refused_by_broker");
                    return Outcome::Finished;
                }
            }
        }
    }
}

/// Seconds since the event's `knativearrivaltime`.
pub fn arrival_age(event: &Event) -> Option<f64> {
    let Some(ExtensionValue::String(at)) = event.extension(ingress::ARRIVAL_TIME) else {
        return None;
    };
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    let age = chrono::Utc::now().signed_duration_since(at);
    Some(age.num_microseconds()? as f64 / 1e6)
}

/// A subscription's reply to a URL `spec.reply`.
#[path = "reply.rs"]
mod reply;
