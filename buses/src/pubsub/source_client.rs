//! A small Pub/Sub client for `CloudPubSubSource` (the broker's pull loop): create a
//! subscription on a user's topic, pull, acknowledge, hand back. Same endpoint and credentials
//! rules as the bus (`PUBSUB_EMULATOR_HOST`, else Application Default Credentials).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::client::{self, Api};
use super::config::{Endpoint, PubsubConfig, check_id};
use super::{auth, config};
use crate::BusError;

/// One pulled message with its ack id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PulledMessage {
    pub ack_id: String,
    pub message_id: String,
    pub publish_time: String,
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub ordering_key: String,
}

/// A Pub/Sub API client bound to one project.
pub struct PubsubClient {
    api: Arc<Api>,
    project: String,
    timeout: Duration,
}

impl std::fmt::Debug for PubsubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubsubClient")
            .field("project", &self.project)
            .finish()
    }
}

impl PubsubClient {
    /// A client for `project` on the endpoint the environment names.
    pub async fn from_env(project: &str, timeout: Duration) -> Result<Self, BusError> {
        config::check_project(project)?;
        let config = PubsubConfig::from_env(project);
        let auth = match config.endpoint {
            Endpoint::Emulator { .. } => None,
            Endpoint::Google => Some(
                auth::TokenSource::from_env()
                    .await
                    .map_err(|e| BusError::unavailable(format!("pubsub credentials: {e}")))?,
            ),
        };
        Ok(Self {
            api: Arc::new(Api::new(client::http_client()?, config.base_url(), auth)),
            project: project.to_owned(),
            timeout,
        })
    }

    fn subscription_path(&self, subscription: &str) -> String {
        format!("projects/{}/subscriptions/{subscription}", self.project)
    }

    /// Creates `subscription` on `topic` (ordered, with `ack_deadline`) unless it exists; an
    /// existing subscription on another topic is refused.
    pub async fn ensure_subscription(
        &self,
        topic: &str,
        subscription: &str,
        ack_deadline: Duration,
    ) -> Result<(), BusError> {
        check_id("topic", topic)?;
        check_id("subscription", subscription)?;
        let topic_path = format!("projects/{}/topics/{topic}", self.project);
        let path = self.subscription_path(subscription);
        let body = json!({
            "topic": topic_path,
            "ackDeadlineSeconds": ack_deadline.as_secs().clamp(10, 600),
            "enableMessageOrdering": true,
        });
        match self.api.call("PUT", &path, &body, self.timeout).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some("ALREADY_EXISTS") => {
                let existing = self
                    .api
                    .call("GET", &path, &Value::Null, self.timeout)
                    .await
                    .map_err(client::ApiError::into_bus_error)?;
                if existing["topic"].as_str() == Some(topic_path.as_str()) {
                    Ok(())
                } else {
                    Err(BusError::Rejected {
                        reason: format!(
                            "subscription {path} exists on topic {:?}, not {topic_path}",
                            existing["topic"].as_str().unwrap_or("(deleted)")
                        ),
                    })
                }
            }
            Err(e) => Err(e.into_bus_error()),
        }
    }

    /// Up to `max` messages (none when there are none now).
    pub async fn pull(&self, subscription: &str, max: u32) -> Result<Vec<PulledMessage>, BusError> {
        let path = format!("{}:pull", self.subscription_path(subscription));
        let answer = self
            .api
            .call(
                "POST",
                &path,
                &json!({ "maxMessages": max.max(1) }),
                self.timeout,
            )
            .await
            .map_err(client::ApiError::into_bus_error)?;
        let mut out = Vec::new();
        for entry in answer["receivedMessages"].as_array().into_iter().flatten() {
            let message = &entry["message"];
            let text = |name: &str| message[name].as_str().unwrap_or("").to_owned();
            out.push(PulledMessage {
                ack_id: entry["ackId"].as_str().unwrap_or("").to_owned(),
                message_id: text("messageId"),
                publish_time: text("publishTime"),
                // Pub/Sub always sends valid base64; anything else is kept as empty data.
                data: STANDARD.decode(text("data")).unwrap_or_default(),
                attributes: message["attributes"]
                    .as_object()
                    .map(|a| {
                        a.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default(),
                ordering_key: text("orderingKey"),
            });
        }
        Ok(out)
    }

    /// Acknowledges: the messages are done.
    pub async fn acknowledge(
        &self,
        subscription: &str,
        ack_ids: &[String],
    ) -> Result<(), BusError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let path = format!("{}:acknowledge", self.subscription_path(subscription));
        self.api
            .call("POST", &path, &json!({ "ackIds": ack_ids }), self.timeout)
            .await
            .map(drop)
            .map_err(client::ApiError::into_bus_error)
    }

    /// Sets the messages' ack deadline: 0 hands them back at once, more keeps them.
    pub async fn modify_deadline(
        &self,
        subscription: &str,
        ack_ids: &[String],
        seconds: u64,
    ) -> Result<(), BusError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let path = format!("{}:modifyAckDeadline", self.subscription_path(subscription));
        let body = json!({ "ackIds": ack_ids, "ackDeadlineSeconds": seconds.min(600) });
        self.api
            .call("POST", &path, &body, self.timeout)
            .await
            .map(drop)
            .map_err(client::ApiError::into_bus_error)
    }
}
