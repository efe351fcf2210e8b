//! PingSource: a CloudEvent on every scheduled time of a cron schedule.
//!
//! [`PingConfig::to_event`] is the pure conversion (scheduled time -> event);
//! [`run`] is the transport: it sleeps until each scheduled time, sends the event and persists
//! the scheduled time it emitted, so a restart or a config reload never emits a time twice.

mod schedule;
mod scheduler;

use chrono::{DateTime, SecondsFormat, Utc};
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use sha2::{Digest, Sha256};

use crate::manifest::Overrides;

pub use schedule::Schedule;
pub use scheduler::{Clock, PingOutcome, run};

/// The event type every PingSource emits.
pub const PING_EVENT_TYPE: &str = "dev.knative.sources.ping";

/// A compiled `PingSource`.
#[derive(Debug, Clone)]
pub struct PingConfig {
    pub namespace: String,
    pub name: String,
    pub schedule: Schedule,
    pub data: PingData,
    pub overrides: Overrides,
}

/// `spec.data` (as UTF-8 bytes) or the decoded `spec.dataBase64`, with `spec.contentType`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PingData {
    pub content_type: Option<String>,
    pub body: Option<Vec<u8>>,
}

impl PingConfig {
    /// `/apis/v1/namespaces/{ns}/pingsources/{name}`, Knative's `source` for a PingSource.
    pub fn source(&self) -> String {
        format!(
            "/apis/v1/namespaces/{}/pingsources/{}",
            self.namespace, self.name
        )
    }

    /// The event for one scheduled time.
    ///
    /// The id is a UUID (as Knative) but derived from the source and the scheduled time rather
    /// than random: if Herald crashes after the sink took the event and before the time was
    /// persisted, the re-sent event carries the same id and consumers can recognise it.
    pub fn to_event(&self, scheduled: DateTime<Utc>) -> Event {
        let source = self.source();
        let mut hash = Sha256::new();
        hash.update(source.as_bytes());
        hash.update(b"\n");
        hash.update(
            scheduled
                .to_rfc3339_opts(SecondsFormat::Millis, true)
                .as_bytes(),
        );
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();

        let builder = EventBuilderV10::new()
            .id(id.to_string())
            .ty(PING_EVENT_TYPE)
            .source(source)
            .time(scheduled);
        let mut event = builder
            .build()
            .expect("id, type, source and time are all set");
        if let Some(body) = &self.data.body {
            // Raw bytes, not parsed: the payload reaches subscribers exactly as configured.
            let data = cloudevents::Data::Binary(body.clone());
            match &self.data.content_type {
                Some(ct) => {
                    event.set_data(ct.clone(), data);
                }
                // Knative sets no `datacontenttype` when `spec.contentType` is empty.
                None => {
                    event.set_data_unchecked(data);
                }
            }
        }
        self.overrides.apply(&mut event);
        event
    }
}

#[cfg(test)]
mod tests;
