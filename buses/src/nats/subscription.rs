//! One group's subscription: pull requests on the group's durable consumer, read from a private
//! inbox.
//!
//! The pull protocol is spoken directly (a request to `$JS.API.CONSUMER.MSG.NEXT.{stream}.
//! {consumer}` answered on the inbox) rather than through the client's pull stream, because a
//! dropped subscription must hand back the messages it received but did not deliver: it drains
//! the inbox (the server stops sending to it) and `-NAK`s them, lowest sequence first, with the
//! deliveries dropped unacknowledged, so the group's next subscription gets them at once and in
//! order. Pull requests carry an idle heartbeat; one silent for [`PULL_SILENCE`] (a server
//! restart, a broken connection) is replaced, so a subscription outlives NATS outages.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, StatusCode, Subscriber};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::ack::{Acks, MessageAcker, NAK, SubscriptionState, TERM, stream_sequence};
use super::codec;
use crate::{BusError, Delivery, Subscription};

/// How long a pull request waits on the server for messages before it expires.
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// Interval of the server's heartbeats on an idle pull request.
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);
/// A pull request silent this long is considered lost and replaced.
const PULL_SILENCE: Duration = Duration::from_secs(5);
/// Bound on draining the inbox when a subscription is dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages asked for by one pull request at most.
const MAX_BATCH: usize = 256;

pub(super) struct NatsSubscription {
    client: Client,
    inbox: Option<Subscriber>,
    inbox_subject: String,
    /// `$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}`
    next_subject: String,
    batch: usize,
    /// The outstanding pull request: messages still due and when it counts as lost.
    pull: Option<(usize, Instant)>,
    acks: Arc<Acks>,
    state: Arc<SubscriptionState>,
    label: String,
}

impl NatsSubscription {
    pub async fn open(
        client: Client,
        acks: Arc<Acks>,
        stream: &str,
        consumer: &str,
        max_ack_pending: usize,
    ) -> Result<Self, BusError> {
        let inbox_subject = client.new_inbox();
        let inbox = client
            .subscribe(inbox_subject.clone())
            .await
            .map_err(|e| BusError::unavailable(format!("subscribing to an inbox: {e}")))?;
        Ok(Self {
            client,
            inbox: Some(inbox),
            inbox_subject,
            next_subject: format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            batch: max_ack_pending.clamp(1, MAX_BATCH),
            pull: None,
            acks,
            state: Arc::default(),
            label: format!("{stream}/{consumer}"),
        })
    }

    async fn request_pull(&mut self) -> Result<(), BusError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            // Requests queued while disconnected would all arrive at once; wait instead.
            tokio::time::sleep(PULL_HEARTBEAT).await;
            return Ok(());
        }
        let request = serde_json::json!({
            "batch": self.batch,
            "expires": PULL_EXPIRES.as_nanos() as u64,
            "idle_heartbeat": PULL_HEARTBEAT.as_nanos() as u64,
        });
        self.client
            .publish_with_reply(
                self.next_subject.clone(),
                self.inbox_subject.clone(),
                request.to_string().into(),
            )
            .await
            .map_err(|e| BusError::unavailable(format!("pull request: {e}")))?;
        self.pull = Some((self.batch, Instant::now() + PULL_SILENCE));
        Ok(())
    }
}

#[async_trait]
impl Subscription for NatsSubscription {
    /// Cancel-safe: a message is taken from the inbox only in the step that returns it.
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let deadline = match self.pull {
                Some((due, deadline)) if due > 0 && deadline > Instant::now() => deadline,
                _ => {
                    self.pull = None;
                    self.request_pull().await?;
                    continue;
                }
            };
            let inbox = self.inbox.as_mut().expect("inbox taken only on drop");
            let message = match tokio::time::timeout_at(deadline, inbox.next()).await {
                Err(_) => {
                    tracing::debug!(subscription = %self.label, "pull request silent; replacing it");
                    self.pull = None;
                    continue;
                }
                // The client dropped the inbox subscription (connection closed for good).
                Ok(None) => {
                    return Err(BusError::Closed {
                        reason: format!("inbox of {} closed", self.label),
                    });
                }
                Ok(Some(message)) => message,
            };
            let (due, _) = self.pull.unwrap_or((self.batch, deadline));
            self.pull = Some((due, Instant::now() + PULL_SILENCE));
            match message.status {
                None => {}
                Some(StatusCode::IDLE_HEARTBEAT) => continue,
                Some(StatusCode::NOT_FOUND | StatusCode::TIMEOUT) => {
                    self.pull = None;
                    continue;
                }
                Some(status) => {
                    // 409s: consumer deleted, leadership change, limits; the next call retries.
                    self.pull = None;
                    return Err(BusError::unavailable(format!(
                        "pull request on {} ended with {status}: {}",
                        self.label,
                        message.description.as_deref().unwrap_or("")
                    )));
                }
            }
            self.pull = Some((due.saturating_sub(1), Instant::now() + PULL_SILENCE));
            let Some(reply) = message.reply else {
                tracing::warn!(subscription = %self.label, "message without ack subject ignored");
                continue;
            };
            let Some(sequence) = stream_sequence(&reply) else {
                tracing::warn!(subscription = %self.label, %reply, "unparsable ack subject");
                continue;
            };
            // Under a panic guard: a panic in the decoder or the CloudEvents SDK must not end
            // the subscription, whose successor would meet the same message again.
            let decoded = catch_unwind(AssertUnwindSafe(|| {
                codec::decode(message.headers.as_ref(), &message.payload)
            }));
            let reason = match decoded {
                Ok(Ok(event)) => {
                    let acker =
                        MessageAcker::new(self.acks.clone(), self.state.clone(), sequence, reply);
                    return Ok(Delivery::new(event, sequence, Arc::new(acker)));
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the decoder panicked".to_owned(),
            };
            // Never deliverable: terminated rather than redelivered forever; the caller counts
            // and logs it.
            self.acks.send(reply, TERM);
            return Err(BusError::Corrupt {
                position: sequence,
                reason,
            });
        }
    }
}

impl Drop for NatsSubscription {
    fn drop(&mut self) {
        let mut handed_back = self.state.close();
        let Some(mut inbox) = self.inbox.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime: JetStream redelivers after AckWait
        };
        let acks = self.acks.clone();
        let client = self.client.clone();
        runtime.spawn(async move {
            let drain = async {
                // Unsubscribes, then yields what arrived before the server stopped sending.
                if inbox.drain().await.is_ok() {
                    while let Some(message) = inbox.next().await {
                        if let (None, Some(reply)) = (message.status, message.reply)
                            && let Some(sequence) = stream_sequence(&reply)
                        {
                            handed_back.push((sequence, reply));
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
            // Each -NAK as a request: the server answers once it processed it, so the group's
            // next subscription (maybe on a new connection) finds them all, lowest first.
            handed_back.sort_by_key(|(sequence, _)| *sequence);
            for (_, reply) in handed_back {
                let nak = client.request(reply, Bytes::from_static(NAK));
                if tokio::time::timeout(DRAIN_TIMEOUT, nak).await.is_err() {
                    tracing::debug!("hand-back not confirmed; JetStream redelivers after AckWait");
                }
            }
            drop(acks); // the bus counts as flushed once this is gone
        });
    }
}
