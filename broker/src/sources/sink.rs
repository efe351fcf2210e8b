//! The sinks a source's `spec.sink` resolves to: one of Herald's brokers (in-process, durable
//! before it returns) or a URL (HTTP delivery with retries, like a trigger's).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudevents::Event;
use herald_sources::{Sink, SinkError};

use crate::config::{BrokerId, DeliveryPolicy, Format};
use crate::dispatch::retry::RetryPolicy;
use crate::dispatch::sender::{Attempt, Failure, Sender};
use crate::ingress::Ingress;
use crate::metrics::SourceMetrics;
use crate::outbound::{Endpoint, SendAs};

/// A Herald broker: the events go through [`Ingress::publish`] (stamped like any published
/// event) and `send` returns once the bus made them durable.
pub struct BrokerSink {
    pub ingress: Arc<Ingress>,
    pub broker: BrokerId,
    /// The source's own identity, authorized like any sender's.
    pub identity: crate::identity::SenderIdentity,
}

#[async_trait]
impl Sink for BrokerSink {
    async fn send(&self, events: Vec<Event>) -> Result<(), SinkError> {
        self.ingress
            .publish(&self.broker, events, &self.identity)
            .await
            .map_err(|e| {
                let message = e.to_string();
                // The bus cannot take it now (503): try later. Anything else is about the event.
                if e.status().is_server_error() {
                    SinkError::Unavailable { message }
                } else {
                    SinkError::Rejected { message }
                }
            })
    }
}

/// Any URL: each event is POSTed in binary mode with the trigger delivery defaults (`retry:
/// 10`, exponential from `PT0.2S`, 30 s per attempt, Knative's retry table), one event at a time
/// in order. Replies are ignored, as Knative's source adapters do.
///
/// `budget` bounds the whole send: a GitHub webhook is answered within GitHub's 10 s timeout,
/// so its sink gives up early and GitHub gets `503` rather than a timeout.
pub struct UrlSink {
    pub sender: Sender,
    pub endpoint: Endpoint,
    /// The source's outbound identity and signer.
    pub from: SendAs,
    pub policy: DeliveryPolicy,
    pub budget: Option<Duration>,
    /// Up to 10% random jitter on backoff waits (off in tests that pin the waits).
    pub jitter: bool,
}

#[async_trait]
impl Sink for UrlSink {
    async fn send(&self, events: Vec<Event>) -> Result<(), SinkError> {
        for event in &events {
            self.deliver(event).await?;
        }
        Ok(())
    }
}

impl UrlSink {
    async fn deliver(&self, event: &Event) -> Result<(), SinkError> {
        let started = tokio::time::Instant::now();
        let left = |budget: Duration| budget.saturating_sub(started.elapsed());
        let mut last: Option<Failure> = None;
        for n in 0..=self.policy.retry {
            if n > 0 {
                let wait = RetryPolicy::new(&self.policy, self.jitter)
                    .wait(n, last.as_ref().and_then(|f| f.retry_after));
                if self.budget.is_some_and(|b| wait >= left(b)) {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            let timeout = match self.budget {
                Some(b) => self.policy.timeout.min(left(b)),
                None => self.policy.timeout,
            };
            if timeout.is_zero() {
                break;
            }
            match self
                .sender
                .send(&self.endpoint, event, Format::Binary, timeout, &self.from)
                .await
            {
                Attempt::Delivered { .. } => return Ok(()),
                Attempt::Failed(failure) => {
                    tracing::debug!(url = %self.endpoint, attempt = n + 1, error = ?failure.message, "source sink attempt failed");
                    let retryable = failure.retryable;
                    last = Some(failure);
                    if !retryable {
                        break;
                    }
                }
            }
        }
        Err(match last {
            Some(f) if !f.retryable => SinkError::Rejected { message: f.message },
            Some(f) => SinkError::Unavailable { message: f.message },
            None => SinkError::Unavailable {
                message: format!("no time left to deliver to {}", self.endpoint),
            },
        })
    }
}

/// Counts what reaches a source's sink: emitted events, failed sends by reason and, when
/// `permanent_is_rejection` (a source that drops an event its sink refused for good), a
/// rejection.
pub struct MeteredSink {
    pub inner: Arc<dyn Sink>,
    pub metrics: SourceMetrics,
    pub permanent_is_rejection: bool,
}

#[async_trait]
impl Sink for MeteredSink {
    async fn send(&self, events: Vec<Event>) -> Result<(), SinkError> {
        let n = events.len() as u64;
        let result = self.inner.send(events).await;
        match &result {
            Ok(()) => {
                self.metrics.emitted.inc_by(n);
            }
            Err(e) => {
                self.metrics.sink_failed(e.reason());
                if self.permanent_is_rejection && !e.is_retryable() {
                    self.metrics.rejected(e.reason());
                }
            }
        }
        result
    }
}
