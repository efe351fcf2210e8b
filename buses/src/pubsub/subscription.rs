//! One group's subscription: `:pull` requests on the group's Pub/Sub subscription.
//!
//! A pull returns up to `max_messages`; they wait in a buffer (their deadlines extended like
//! handed-out deliveries) until `next` hands them out. An empty pull is retried after a short
//! pause that grows to [`MAX_IDLE_PAUSE`]. A dropped subscription hands back at once (deadline
//! 0) what it buffered and the deliveries dropped unacknowledged, lowest position first, so
//! the group's next subscription gets them without waiting for the deadline.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cloudevents::Event;
use serde_json::{Value, json};

use super::ack::{Acks, Kind, MessageAcker, SubscriptionState};
use super::client::{Api, ApiError};
use super::codec;
use crate::{BusError, Delivery, Subscription};

const FIRST_IDLE_PAUSE: Duration = Duration::from_millis(10);
const MAX_IDLE_PAUSE: Duration = Duration::from_millis(250);

type Pulled = (Result<Event, String>, Arc<MessageAcker>);

pub(super) struct PubsubSubscription {
    api: Arc<Api>,
    acks: Arc<Acks>,
    state: Arc<SubscriptionState>,
    path: Arc<str>,
    buffer: VecDeque<Pulled>,
    max_messages: u32,
    timeout: Duration,
}

impl PubsubSubscription {
    pub fn new(
        api: Arc<Api>,
        acks: Arc<Acks>,
        path: String,
        max_messages: u32,
        timeout: Duration,
    ) -> Self {
        Self {
            api,
            acks,
            state: Arc::default(),
            path: path.into(),
            buffer: VecDeque::new(),
            max_messages: max_messages.max(1),
            timeout,
        }
    }

    /// One pull; the number of messages it brought. Google's service holds a pull open until
    /// messages arrive: a pull unanswered within the request timeout is an idle one, not an
    /// error (an unreachable Pub/Sub shows in `unready_reason`, and connection errors are
    /// errors).
    async fn pull(&mut self) -> Result<usize, BusError> {
        let answer = self
            .api
            .call(
                "POST",
                &format!("{}:pull", self.path),
                &json!({ "maxMessages": self.max_messages }),
                self.timeout,
            )
            .await;
        if let Err(ApiError::Timeout { .. }) = answer {
            return Ok(0);
        }
        let answer = answer.map_err(|e| match e.status() {
            Some("NOT_FOUND") => BusError::Closed {
                reason: e.to_string(),
            },
            _ => e.into_bus_error(),
        })?;
        let received = answer["receivedMessages"].as_array().cloned();
        let received = received.unwrap_or_default();
        for entry in &received {
            let Some(ack_id) = entry["ackId"].as_str() else {
                continue;
            };
            let message = &entry["message"];
            let position = position(message["messageId"].as_str().unwrap_or(""));
            let acker = Arc::new(MessageAcker::new(
                self.acks.clone(),
                self.state.clone(),
                self.path.clone(),
                position,
                ack_id.to_owned(),
            ));
            self.buffer.push_back((decode(message), acker));
        }
        Ok(received.len())
    }
}

/// A message's position: its numeric message id (Pub/Sub's and the emulator's ids are
/// decimal), else a hash of the id (stable across redelivery either way).
pub(super) fn position(message_id: &str) -> u64 {
    message_id.parse().unwrap_or_else(|_| {
        // FNV-1a: stable across processes, unlike the standard library's hasher.
        message_id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        })
    })
}

fn decode(message: &Value) -> Result<Event, String> {
    let data = match message["data"].as_str() {
        Some(b64) => STANDARD
            .decode(b64)
            .map_err(|e| format!("data is not base64: {e}"))?,
        None => Vec::new(),
    };
    let attributes: BTreeMap<String, String> = message["attributes"]
        .as_object()
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    codec::decode(&attributes, &data).map_err(|e| e.to_string())
}

#[async_trait]
impl Subscription for PubsubSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        let mut pause = FIRST_IDLE_PAUSE;
        loop {
            if let Some((event, acker)) = self.buffer.pop_front() {
                let position = acker_position(&acker);
                return match event {
                    Ok(event) => Ok(Delivery::new(event, position, acker)),
                    Err(reason) => {
                        // Never deliverable: acknowledged so that it does not come back.
                        crate::Acknowledge::ack(&*acker, position);
                        Err(BusError::Corrupt { position, reason })
                    }
                };
            }
            if self.pull().await? == 0 {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_IDLE_PAUSE);
            }
        }
    }
}

fn acker_position(acker: &MessageAcker) -> u64 {
    acker.position()
}

impl Drop for PubsubSubscription {
    fn drop(&mut self) {
        let mut back = self.state.close();
        back.extend(self.buffer.drain(..).filter_map(|(_, a)| a.release()));
        back.sort_by_key(|(position, _)| *position);
        for (_, ack_id) in back {
            self.acks.send(self.path.clone(), ack_id, Kind::Nack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::position;

    #[test]
    fn positions_are_numeric_ids_or_a_stable_hash() {
        assert_eq!(position("2070443601311540"), 2070443601311540);
        assert_eq!(position("abc"), position("abc"));
        assert_ne!(position("abc"), position("abd"));
    }
}
