//! The PingSource transport: sleep until each scheduled time, send, persist progress.
//!
//! Invariant: the state file holds the latest scheduled time whose event the sink accepted.
//! On start, times after it that are already past are missed ticks. Knative emits none of
//! them; Herald emits **at most one**, the latest, so a reload or a short restart that spans
//! a tick still produces it, while a long outage does not flood subscribers with stale ticks.
//! A first start (no state) emits nothing for past times. A crash between the sink accepting
//! an event and the state being written re-sends that event with the same id (at-least-once).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::PingConfig;
use crate::sink::Sink;
use crate::state::{self, Loaded};

/// Where "now" comes from. `Monotonic` follows tokio's clock from a fixed wall-clock start, so
/// tests under `tokio::time::pause()` control it; production uses `System`.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Monotonic {
        start_wall: DateTime<Utc>,
        start: Instant,
    },
}

impl Clock {
    /// A clock reading `at` now and advancing with tokio's (possibly paused) time.
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Clock::Monotonic {
            start_wall: at,
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Monotonic { start_wall, start } => {
                *start_wall + chrono::Duration::from_std(start.elapsed()).unwrap_or_default()
            }
        }
    }
}

/// What happened to one scheduled time, for the broker's metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingOutcome {
    Emitted {
        scheduled: DateTime<Utc>,
    },
    /// The sink kept failing until the next scheduled time; this tick was given up.
    SinkFailed {
        scheduled: DateTime<Utc>,
        reason: &'static str,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PingState {
    last_scheduled: Option<DateTime<Utc>>,
}

/// The state file of one PingSource under `state_dir`.
pub fn state_path(state_dir: &Path, config: &PingConfig) -> PathBuf {
    state_dir.join(state::file_name(&config.namespace, &config.name, "json"))
}

/// Emits one event per scheduled time of `config` to `sink` until `shutdown` resolves.
///
/// Progress lives in `{state_dir}/{namespace}_{name}.json`; start the new task of a reloaded
/// source with the same `state_dir` after stopping the old one.
pub async fn run(
    config: Arc<PingConfig>,
    sink: Arc<dyn Sink>,
    state_dir: PathBuf,
    clock: Clock,
    on_outcome: Arc<dyn Fn(PingOutcome) + Send + Sync>,
    shutdown: impl Future<Output = ()>,
) {
    let path = state_path(&state_dir, &config);
    tokio::pin!(shutdown);
    let mut last = tokio::select! {
        () = &mut shutdown => return,
        last = load_progress(&path, &config) => last,
    };

    let now = clock.now();
    let mut cursor = now;
    // The one catch-up tick: the latest scheduled time already past that was never emitted.
    let missed = last.and_then(|last_sent| {
        config
            .schedule
            .last_at_or_before(now)
            .filter(|t| *t > last_sent)
    });
    if let Some(missed) = missed {
        cursor = missed - chrono::Duration::milliseconds(1);
    }
    loop {
        let Some(next) = config.schedule.next_after(cursor) else {
            tracing::info!(source = %config.source(), "schedule has no further times");
            return;
        };
        cursor = next;
        if last.is_some_and(|l| next <= l) {
            continue;
        }
        // Sleep in bounded steps and re-read the clock: the wall clock can jump.
        loop {
            let wait = (next - clock.now()).to_std().unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                break;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait.min(Duration::from_secs(60))) => {}
            }
        }
        let deadline = config.schedule.next_after(next);
        let outcome = tokio::select! {
            () = &mut shutdown => return,
            outcome = send_until(&*sink, &config, next, deadline, clock) => outcome,
        };
        if let PingOutcome::Emitted { .. } = outcome {
            last = Some(next);
            let progress = PingState {
                last_scheduled: last,
            };
            // A failed write only risks re-sending this time after a restart (same id).
            if let Err(e) = state::store(&path, &progress).await {
                tracing::warn!(source = %config.source(), error = ?e.to_string(), "ping progress not persisted");
            }
        }
        on_outcome(outcome);
    }
}

/// The last emitted scheduled time, read on the blocking pool.
///
/// A corrupt file (a flipped bit, a copy cut short) is moved aside to `{name}.corrupt` and the
/// schedule starts as on a first start: it emits no past time, so nothing is emitted twice; at
/// most the one catch-up tick of a restart is not emitted. A file that cannot be read (I/O
/// error, permissions) may be intact: the read is retried with backoff rather than replaced.
async fn load_progress(path: &Path, config: &PingConfig) -> Option<DateTime<Utc>> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match state::load_or_quarantine::<PingState>(path).await {
            Ok(Loaded::Found(s)) => return s.last_scheduled,
            Ok(Loaded::Missing) => return None,
            Ok(Loaded::Quarantined { error, moved_to }) => {
                tracing::error!(
                    source = %config.source(),
                    path = %path.display(),
                    moved_to = %moved_to.display(),
                    error = ?error.to_string(),
                    "ping progress corrupt: moved aside; starting as a first start (no past time is emitted, a missed tick is lost)"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(source = %config.source(), error = ?e.to_string(), retry_in = ?backoff, "ping progress unreadable, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Sends the event for `scheduled`, retrying with backoff (1 s doubling to 30 s) until the
/// sink takes it or the following scheduled time arrives.
async fn send_until(
    sink: &dyn Sink,
    config: &PingConfig,
    scheduled: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
    clock: Clock,
) -> PingOutcome {
    let event = config.to_event(scheduled);
    let mut backoff = Duration::from_secs(1);
    loop {
        match sink.send(vec![event.clone()]).await {
            Ok(()) => return PingOutcome::Emitted { scheduled },
            Err(e) => {
                let reason = e.reason();
                let give_up =
                    !e.is_retryable() || deadline.is_some_and(|d| clock.now() + backoff >= d);
                tracing::warn!(source = %config.source(), error = ?e.to_string(), %scheduled, give_up, "ping event not accepted");
                if give_up {
                    return PingOutcome::SinkFailed { scheduled, reason };
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
