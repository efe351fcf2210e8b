//! `CloudPubSubSource`'s pull loop: a subscription `herald-source-{ns}-{name}` on the user's
//! topic (created with message ordering; it keeps the source's position, so Herald keeps no
//! state), one message at a time in pull order, acknowledged only once the sink took its event
//! (durable on a Herald broker, delivered to a URL). A sink that cannot take it now hands the
//! message back (deadline 0) and the loop pauses; a sink that refuses it for good, or a
//! message that is not convertible, is acknowledged and counted (retrying cannot help).
//! Pub/Sub outages are retried with backoff for ever; the loop stops at shutdown.

use std::sync::Arc;
use std::time::Duration;

use herald_buses::pubsub::source_client::{PubsubClient, PulledMessage};
use herald_sources::Sink;
use herald_sources::pubsub::{self as source, PubsubSourceConfig};
use tokio::sync::watch;

use crate::dispatch::deliver::pause;
use crate::metrics::SourceMetrics;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_PAUSE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub async fn run(
    config: Arc<PubsubSourceConfig>,
    options: super::PubsubSourceOptions,
    sink: Arc<dyn Sink>,
    metrics: SourceMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let source = format!("{}/{}", config.namespace, config.name);
    let mut backoff = Duration::from_secs(1);
    let client = loop {
        let ready = match PubsubClient::from_env(&config.project, REQUEST_TIMEOUT).await {
            Ok(client) => client
                .ensure_subscription(&config.topic, &config.subscription, options.ack_deadline)
                .await
                .map(|()| client),
            Err(e) => Err(e),
        };
        match ready {
            Ok(client) => break client,
            Err(e) => {
                tracing::warn!(%source, error = ?e.to_string(), retry_in = ?backoff, "cloudpubsub source cannot open its subscription; retrying");
                if !pause(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    };
    tracing::info!(%source, topic = %config.topic, subscription = %config.subscription, "cloudpubsub source pulling");
    let mut backoff = Duration::from_millis(200);
    while !*shutdown.borrow() {
        let pulled = tokio::select! {
            pulled = client.pull(&config.subscription, options.pull_max) => pulled,
            _ = shutdown.changed() => return,
        };
        let outcome = match pulled {
            Ok(messages) if messages.is_empty() => Ok(false),
            Ok(messages) => forward(&client, &config, &*sink, &metrics, messages).await,
            Err(e) => Err(e.to_string()),
        };
        let wait = match outcome {
            Ok(true) => {
                backoff = Duration::from_millis(200);
                continue;
            }
            Ok(false) => IDLE_PAUSE,
            Err(reason) => {
                tracing::warn!(%source, error = ?reason, retry_in = ?backoff, "cloudpubsub source paused");
                let wait = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                wait
            }
        };
        if !pause(wait, &mut shutdown).await {
            return;
        }
    }
}

/// Sends the messages' events in order; `Ok(true)` when all were settled, `Err` when the sink
/// could not take one now (it and the rest were handed back).
async fn forward(
    client: &PubsubClient,
    config: &PubsubSourceConfig,
    sink: &dyn Sink,
    metrics: &SourceMetrics,
    messages: Vec<PulledMessage>,
) -> Result<bool, String> {
    let mut rest = messages.into_iter();
    while let Some(message) = rest.next() {
        metrics.received.inc();
        let converted = source::to_event(
            config,
            &source::PulledMessage {
                message_id: message.message_id.clone(),
                publish_time: message.publish_time.clone(),
                data: message.data.clone(),
                attributes: message.attributes.clone(),
                ordering_key: message.ordering_key.clone(),
            },
        );
        let settled = match converted {
            Err(e) => {
                tracing::warn!(source = %config.name, error = ?e.to_string(), "pubsub message dropped: not convertible");
                metrics.rejected("unconvertible");
                true
            }
            // MeteredSink counts emitted and rejected events.
            Ok(event) => match sink.send(vec![event]).await {
                Ok(()) => true,
                Err(e) if !e.is_retryable() => true,
                Err(e) => {
                    let back: Vec<String> = std::iter::once(message.ack_id.clone())
                        .chain(rest.map(|m| m.ack_id))
                        .collect();
                    // If this fails too, Pub/Sub redelivers after the deadline.
                    let _ = client.modify_deadline(&config.subscription, &back, 0).await;
                    return Err(e.to_string());
                }
            },
        };
        if settled
            && let Err(e) = client
                .acknowledge(&config.subscription, &[message.ack_id])
                .await
        {
            // Not acknowledged: delivered again after the deadline (at-least-once).
            tracing::warn!(source = %config.name, error = ?e.to_string(), "pubsub acknowledgement failed");
        }
    }
    Ok(true)
}
