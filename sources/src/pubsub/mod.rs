//! `CloudPubSubSource`: Pub/Sub messages of a user's topic as the CloudEvents Knative GCP's
//! source (`events.cloud.google.com/v1`, archived) emitted.
//!
//! The conversion is pure ([`to_event`]); the broker runs the pull loop with the Pub/Sub
//! client of `herald-buses` and acknowledges a message only after the sink took its event.
//!
//! | attribute | value |
//! | --- | --- |
//! | `specversion` | `1.0` |
//! | `id` | the message id |
//! | `source` | `//pubsub.googleapis.com/projects/{project}/topics/{topic}` |
//! | `type` | `google.cloud.pubsub.topic.v1.messagePublished` |
//! | `time` | the message's publish time |
//! | `datacontenttype` | `application/json` |
//! | `dataschema` | [`DATA_SCHEMA`] |
//! | data | `{"subscription": ID, "message": {"messageId", "data" (base64), "attributes", "publishTime", "orderingKey"}}` |
//!
//! `attributes` is left out when the message has none (as Knative's JSON did) and `orderingKey`
//! when it is empty (Knative's struct had no such field; Pub/Sub's push format has it). Message
//! attributes are not copied to CloudEvents extensions (Knative's `v1` did not either);
//! `spec.ceOverrides.extensions` are set on every event.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use serde_json::{Map, Value, json};

use crate::manifest::Overrides;

pub const EVENT_TYPE: &str = "google.cloud.pubsub.topic.v1.messagePublished";
pub const DATA_SCHEMA: &str = "https://raw.githubusercontent.com/googleapis/google-cloudevents/master/proto/google/events/cloud/pubsub/v1/data.proto";

/// A compiled `CloudPubSubSource`.
#[derive(Debug, Clone, PartialEq)]
pub struct PubsubSourceConfig {
    pub namespace: String,
    pub name: String,
    /// The project of the topic (and of the subscription Herald creates).
    pub project: String,
    pub topic: String,
    /// The subscription Herald creates on the topic: `herald-source-{ns}-{name}`.
    pub subscription: String,
    pub overrides: Overrides,
}

impl PubsubSourceConfig {
    /// The CloudEvents `source` of this source's events.
    pub fn event_source(&self) -> String {
        format!(
            "//pubsub.googleapis.com/projects/{}/topics/{}",
            self.project, self.topic
        )
    }
}

/// One pulled message, data decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PulledMessage {
    pub message_id: String,
    /// RFC 3339, as Pub/Sub wrote it.
    pub publish_time: String,
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub ordering_key: String,
}

/// Why a message does not become an event (it is acknowledged and counted, never retried).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("message {message_id:?} has a publish time that is not RFC 3339: {publish_time:?}")]
    PublishTime {
        message_id: String,
        publish_time: String,
    },
    #[error("message has an empty id")]
    NoId,
    #[error("event not valid: {0}")]
    Event(String),
}

/// The event Knative GCP's CloudPubSubSource emitted for `message`.
pub fn to_event(
    config: &PubsubSourceConfig,
    message: &PulledMessage,
) -> Result<Event, ConvertError> {
    if message.message_id.is_empty() {
        return Err(ConvertError::NoId);
    }
    let time = chrono::DateTime::parse_from_rfc3339(&message.publish_time).map_err(|_| {
        ConvertError::PublishTime {
            message_id: message.message_id.clone(),
            publish_time: message.publish_time.clone(),
        }
    })?;
    let mut inner = Map::new();
    inner.insert("messageId".into(), json!(message.message_id));
    inner.insert("data".into(), json!(STANDARD.encode(&message.data)));
    if !message.attributes.is_empty() {
        inner.insert("attributes".into(), json!(message.attributes));
    }
    inner.insert("publishTime".into(), json!(message.publish_time));
    if !message.ordering_key.is_empty() {
        inner.insert("orderingKey".into(), json!(message.ordering_key));
    }
    let data = json!({ "subscription": config.subscription, "message": Value::Object(inner) });
    let mut event = EventBuilderV10::new()
        .id(message.message_id.clone())
        .source(config.event_source())
        .ty(EVENT_TYPE)
        .time(time.with_timezone(&chrono::Utc))
        .data_with_schema("application/json", DATA_SCHEMA, data)
        .build()
        .map_err(|e| ConvertError::Event(e.to_string()))?;
    config.overrides.apply(&mut event);
    Ok(event)
}

#[cfg(test)]
mod tests;
