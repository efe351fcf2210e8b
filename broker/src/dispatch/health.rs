//! What a trigger's operators ask about it beyond counters: its lag (kept honest by
//! [`Lag`]) and its last delivery error, kept in memory per trigger across restarts of its
//! dispatchers (a reload that changes it, a pause and resume) and shown in its `status`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::lag::Lag;
use crate::metrics::Metrics;

/// The last failed delivery attempt of a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// What failed, as the attempt reported it (status code or connection error).
    pub message: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// No delivery succeeded since.
    pub failing: bool,
}

/// One trigger's health, shared by its dispatchers, its lag probe and its status.
pub struct TriggerHealth {
    pub lag: Arc<Lag>,
    last_error: Mutex<Option<LastError>>,
    /// Whether the last attempt failed (a success after it clears this, not the error).
    failing: AtomicBool,
}

impl TriggerHealth {
    pub fn new(metrics: &Metrics, trigger: &str) -> Arc<Self> {
        let labels = metrics.trigger(trigger);
        Arc::new(Self {
            lag: Lag::new(
                metrics.lag_seconds.get_or_create(&labels).clone(),
                metrics.backlog_events.get_or_create(&labels).clone(),
            ),
            last_error: Mutex::new(None),
            failing: AtomicBool::new(false),
        })
    }

    /// A delivery attempt failed with `message`.
    pub fn failed(&self, message: &str) {
        *self.last_error.lock().unwrap() = Some(LastError {
            message: message.to_owned(),
            at: chrono::Utc::now(),
            failing: true,
        });
        self.failing.store(true, Ordering::Release);
    }

    /// An event was delivered (one atomic store on the delivery path).
    pub fn delivered(&self) {
        if self.failing.load(Ordering::Relaxed) {
            self.failing.store(false, Ordering::Release);
        }
    }

    pub fn last_error(&self) -> Option<LastError> {
        let mut error = self.last_error.lock().unwrap().clone()?;
        error.failing = self.failing.load(Ordering::Acquire);
        Some(error)
    }
}

/// Every configured trigger's health, by `namespace/name`.
#[derive(Default)]
pub struct HealthTable(Mutex<HashMap<String, Arc<TriggerHealth>>>);

impl HealthTable {
    /// The trigger's health, created on first use.
    pub fn of(&self, metrics: &Metrics, trigger: &str) -> Arc<TriggerHealth> {
        self.0
            .lock()
            .unwrap()
            .entry(trigger.to_owned())
            .or_insert_with(|| TriggerHealth::new(metrics, trigger))
            .clone()
    }

    /// Forgets a removed trigger.
    pub fn remove(&self, trigger: &str) {
        self.0.lock().unwrap().remove(trigger);
    }

    pub fn last_error(&self, trigger: &str) -> Option<LastError> {
        self.0.lock().unwrap().get(trigger)?.last_error()
    }
}
