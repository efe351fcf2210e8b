//! One event's way through a trigger: attempts with backoff, `Retry-After`, the dead-letter
//! sink, and reply events back into the broker.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use cloudevents::Event;
use cloudevents::event::ExtensionValue;
use tokio::sync::watch;

use super::sender::{Attempt, Failure, Sender};
use crate::config::{DeliveryPolicy, Target, TriggerConfig};
use crate::ingress::{self, Ingress};
use crate::metrics::{Metrics, TriggerMetrics};

/// `knativeerrordata` carries at most this many bytes of the failed response body.
const ERROR_DATA_LIMIT: usize = 1024;

/// Everything a trigger's deliveries share.
pub struct TriggerContext {
    pub trigger: TriggerConfig,
    /// `namespace/name`, for logs and metric labels.
    pub label: String,
    pub sender: Sender,
    pub ingress: Arc<Ingress>,
    pub metrics: Arc<Metrics>,
    pub stats: TriggerMetrics,
    /// Adds up to 10% random jitter to backoff waits (off in tests that pin the formula).
    pub jitter: bool,
}

/// How processing an event ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered, dead-lettered or dropped by policy: acknowledge it.
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
    pub fn new(
        trigger: TriggerConfig,
        sender: Sender,
        ingress: Arc<Ingress>,
        metrics: Arc<Metrics>,
        jitter: bool,
    ) -> Self {
        let label = trigger.to_string();
        Self {
            stats: TriggerMetrics::new(&metrics, &label),
            label,
            trigger,
            sender,
            ingress,
            metrics,
            jitter,
        }
    }

    /// The wait before retry `n`: the policy's backoff (plus jitter), or `Retry-After` when
    /// that is longer, capped by `retryAfterMax`.
    pub fn retry_wait(
        &self,
        policy: &DeliveryPolicy,
        n: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        let mut wait = policy.backoff(n);
        if self.jitter {
            wait += wait.mul_f64(fastrand::f64() * 0.1);
        }
        if let Some(after) = retry_after {
            let after = policy.retry_after_max.map_or(after, |max| after.min(max));
            wait = wait.max(after);
        }
        wait
    }

    pub async fn process(&self, event: &Event, shutdown: &mut watch::Receiver<bool>) -> Outcome {
        let policy = &self.trigger.delivery;
        loop {
            let failure = match self
                .attempt_all(&self.trigger.subscriber, event, shutdown)
                .await
            {
                Ok(reply) => {
                    if let Some(arrival) = arrival_age(event) {
                        self.stats.latency.observe(arrival);
                    }
                    if !reply.is_empty()
                        && self.publish_reply(event, reply, shutdown).await == Outcome::HandBack
                    {
                        return Outcome::HandBack;
                    }
                    self.stats.delivered.inc();
                    return Outcome::Finished;
                }
                Err(Stop::HandBack) => return Outcome::HandBack,
                Err(Stop::Exhausted(failure)) => failure,
            };
            let Some(dead_letter) = &policy.dead_letter else {
                // At least once: with nowhere to dead-letter it, the event stays unacknowledged
                // and its delivery starts over after a pause.
                let wait = self.round_pause(policy);
                tracing::error!(trigger = %self.label, event.id = %cloudevents::AttributesReader::id(event),
                    error = %failure.message, retry_in = ?wait,
                    "delivery failed and no dead-letter sink is configured; event kept");
                self.stats.exhausted.inc();
                if !pause(wait, shutdown).await {
                    return Outcome::HandBack;
                }
                continue;
            };
            let dead = self.dead_letter_event(event, &failure);
            match self.attempt_all(dead_letter, &dead, shutdown).await {
                Ok(_) => {
                    tracing::info!(trigger = %self.label, event.id = %cloudevents::AttributesReader::id(event),
                        error = %failure.message, "event dead-lettered");
                    self.stats.dead_lettered_total.inc();
                    self.stats.dead_lettered.inc();
                    return Outcome::Finished;
                }
                Err(Stop::HandBack) => return Outcome::HandBack,
                Err(Stop::Exhausted(dls_failure)) => {
                    // Nothing is dropped silently: keep the event and start over later.
                    let wait = self.round_pause(policy);
                    self.stats.exhausted.inc();
                    tracing::error!(trigger = %self.label, event.id = %cloudevents::AttributesReader::id(event),
                        error = %dls_failure.message, retry_in = ?wait, "dead-letter sink failed; event kept");
                    if !pause(wait, shutdown).await {
                        return Outcome::HandBack;
                    }
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
    ) -> Result<Vec<Event>, Stop> {
        let policy = &self.trigger.delivery;
        let mut last: Option<Failure> = None;
        for n in 0..=policy.retry {
            if n > 0 {
                let wait = self.retry_wait(policy, n, last.as_ref().and_then(|f| f.retry_after));
                self.stats.retries.inc();
                if !pause(wait, shutdown).await {
                    return Err(Stop::HandBack);
                }
            }
            let attempt = match target {
                Target::Url(url) => {
                    self.sender
                        .send(url, event, policy.format, policy.timeout)
                        .await
                }
                Target::Broker(id) => {
                    // Forwarding to a broker is a hop: the loop guard applies as to replies.
                    let ttl = ingress::ttl(event).unwrap_or(crate::config::DEFAULT_TTL) - 1;
                    if ttl <= 0 {
                        tracing::warn!(trigger = %self.label, event.id = %cloudevents::AttributesReader::id(event),
                            broker = %id, "event not forwarded: knativebrokerttl exhausted (broker loop?)");
                        self.stats.ttl_dropped.inc();
                        return Ok(Vec::new());
                    }
                    let mut forwarded = event.clone();
                    forwarded.set_extension(ingress::TTL, ExtensionValue::Integer(ttl));
                    self.forward(id, forwarded).await
                }
            };
            match attempt {
                Attempt::Delivered { reply } => return Ok(reply),
                Attempt::Failed(failure) => {
                    tracing::debug!(trigger = %self.label, attempt = n + 1, error = %failure.message, "delivery attempt failed");
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
        match self.ingress.publish(id, vec![event]).await {
            Ok(()) => Attempt::Delivered { reply: Vec::new() },
            Err(e) => Attempt::Failed(Failure {
                status: Some(e.status()),
                retryable: e.status().is_server_error(),
                retry_after: None,
                body: bytes::Bytes::from(e.to_string()),
                message: e.to_string(),
            }),
        }
    }

    /// The pause before a kept event's delivery starts over: the policy's last backoff,
    /// between 1 s and 5 min.
    fn round_pause(&self, policy: &DeliveryPolicy) -> Duration {
        self.retry_wait(policy, policy.retry + 1, None)
            .clamp(Duration::from_secs(1), Duration::from_secs(300))
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

    /// Publishes reply events to the trigger's broker with the TTL decremented; a reply whose
    /// TTL reaches 0 is dropped (loop guard).
    async fn publish_reply(
        &self,
        original: &Event,
        mut reply: Vec<Event>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let ttl = ingress::ttl(original).unwrap_or(crate::config::DEFAULT_TTL) - 1;
        if ttl <= 0 {
            tracing::warn!(trigger = %self.label, event.id = %cloudevents::AttributesReader::id(original),
                "reply dropped: knativebrokerttl exhausted (event loop?)");
            self.stats.ttl_dropped.inc();
            return Outcome::Finished;
        }
        for event in &mut reply {
            event.set_extension(ingress::TTL, ExtensionValue::Integer(ttl));
        }
        let mut n = 0;
        loop {
            match self
                .ingress
                .publish(&self.trigger.broker, reply.clone())
                .await
            {
                Ok(()) => return Outcome::Finished,
                Err(e) if e.status().is_server_error() => {
                    n += 1;
                    let wait = self
                        .retry_wait(&self.trigger.delivery, n.min(16), None)
                        .min(Duration::from_secs(30));
                    tracing::warn!(trigger = %self.label, error = %e, "reply not stored yet; retrying");
                    if !pause(wait, shutdown).await {
                        return Outcome::HandBack;
                    }
                }
                Err(e) => {
                    tracing::warn!(trigger = %self.label, error = %e, "reply rejected; dropped");
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
