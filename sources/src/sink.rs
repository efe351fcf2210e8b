//! Where a source's events go.

use async_trait::async_trait;
use cloudevents::Event;

/// A destination for a source's events, implemented by the broker: its own ingress (returns
/// once the events are durable on the bus) or a URL (returns once delivered, after retries).
///
/// Sources answer their own callers (GitHub, the scheduler's bookkeeping, the watcher's state)
/// only after `send` returned `Ok`, so a failure here never loses an acknowledged event.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Returns once the events are durable (a Herald broker) or delivered (a URL).
    async fn send(&self, events: Vec<Event>) -> Result<(), SinkError>;
}

/// Why a sink did not take the events.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink cannot take them now (bus down or full, URL unreachable after retries):
    /// the source should try again later (GitHub gets `503` and redelivers).
    #[error("sink unavailable: {message}")]
    Unavailable { message: String },
    /// The sink refused them for good (invalid event, `4xx` from a URL): retrying won't help.
    #[error("sink rejected the events: {message}")]
    Rejected { message: String },
}

impl SinkError {
    /// Whether sending the same events again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Unavailable { .. })
    }

    /// A short, fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SinkError::Unavailable { .. } => "sink_unavailable",
            SinkError::Rejected { .. } => "sink_rejected",
        }
    }
}

/// A sink that keeps every event in memory; for tests and examples.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: std::sync::Mutex<Vec<Event>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events sent so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .expect("memory sink lock poisoned")
            .clone()
    }
}

#[async_trait]
impl Sink for MemorySink {
    async fn send(&self, events: Vec<Event>) -> Result<(), SinkError> {
        self.events
            .lock()
            .expect("memory sink lock poisoned")
            .extend(events);
        Ok(())
    }
}
