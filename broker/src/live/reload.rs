//! Hot reload of the `-f` files: polled every `--config-poll-interval`, and on `SIGHUP`.
//!
//! Polling reads the files on the blocking pool and compares their content with what runs
//! (a full comparison, stronger than a modification time, which coarse clocks or `cp -p`
//! leave unchanged); an unchanged set costs one read of each file. A change is validated
//! whole with the API's documents: an invalid one is refused as a whole (logged with file,
//! document and field, counted as `herald_config_reloads_total{result="invalid"}`) and the
//! running configuration stays.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::apply::{Live, ReloadError};
use crate::metrics::{Metrics, ReloadLabels};

/// How often the `-f` files are compared with what runs (`--config-poll-interval`).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Reloads on `SIGHUP` always, and every `interval` if there is one, until `stop`.
pub fn spawn(
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    interval: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed now: a SIGHUP right after start must reload, not kill Herald.
    let mut hangup = signal(SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "SIGHUP reload unavailable"))
        .ok();
    tokio::spawn(async move {
        // Visible in /readyz and herald_task_running{task="config reload"} if it ever ends
        // (or panics) before shutdown.
        let _watch = TaskWatch::new(metrics.clone(), stop.clone());
        let mut tick = interval.map(|every| {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        loop {
            let force = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = async {
                    match hangup.as_mut() {
                        Some(h) => { h.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => true,
                _ = async {
                    match tick.as_mut() {
                        Some(t) => { t.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => false,
            };
            if force {
                tracing::info!("SIGHUP: reloading the configuration files");
            }
            reload_once(&live, &metrics, force).await;
        }
    })
}

/// One reload, logged and counted.
pub async fn reload_once(live: &Live, metrics: &Metrics, force: bool) {
    let count = |result| {
        metrics
            .config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    };
    match live.reload_files(force).await {
        Ok(None) => {}
        Ok(Some(_)) => count("applied"),
        Err(ReloadError::Invalid(e)) => {
            count("invalid");
            tracing::error!(file = ?e.file, document = e.document, field = ?e.field,
                error = ?e.message, "configuration change refused; the running configuration stays");
        }
        Err(ReloadError::Apply(why)) => {
            count("failed");
            tracing::error!(error = ?why, "configuration change not applied; the running configuration stays");
        }
    }
}

/// The reloader's entry in `herald_task_running`; dropped before shutdown (the loop ended or
/// panicked), it marks Herald unready, since file changes would go unnoticed.
struct TaskWatch {
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
}

const TASK: &str = "config reload";

impl TaskWatch {
    fn new(metrics: Arc<Metrics>, stop: watch::Receiver<bool>) -> Self {
        metrics
            .task_running
            .get_or_create(&crate::metrics::TaskLabels { task: TASK.into() })
            .set(1);
        Self { metrics, stop }
    }
}

impl Drop for TaskWatch {
    fn drop(&mut self) {
        self.metrics
            .task_running
            .get_or_create(&crate::metrics::TaskLabels { task: TASK.into() })
            .set(0);
        if !*self.stop.borrow() {
            tracing::error!("the configuration reloader stopped before shutdown");
            self.metrics.set_unready(
                TASK,
                Some("stopped before shutdown: file changes are not applied".into()),
            );
        }
    }
}
