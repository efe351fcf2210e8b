//! The watcher's state file, read and written on the blocking pool (see [`crate::state`]).

use std::time::Duration;

use super::ResourceWatch;
use crate::kubernetes::seen::SeenState;
use crate::state::{self, Loaded};

impl ResourceWatch {
    /// Writes the state with its journal, retrying until it is durable: sending a change that
    /// is not on disk could lose its delete after a crash, so a failing disk stops the watcher
    /// rather than that.
    pub(super) async fn persist_pending(&self, state: &SeenState) {
        let mut backoff = Duration::from_millis(200);
        while let Err(e) = state::store(&self.path, state).await {
            tracing::warn!(error = ?e.to_string(), "apiserver source state not persisted, retrying before sending");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Writes the state; a failure only leaves the last journal on disk, to be re-sent after a
    /// restart (duplicates, never losses).
    pub(super) async fn persist(&self, state: &SeenState) {
        if let Err(e) = state::store(&self.path, state).await {
            tracing::warn!(error = ?e.to_string(), "apiserver source state not persisted");
        }
    }

    /// The state as last written, read on the blocking pool; `None` is a first start.
    ///
    /// A corrupt file (a flipped bit, a copy cut short) is moved aside to `{name}.corrupt` and
    /// the watcher starts as on a first start: it records the current list and emits nothing
    /// for it. What cannot be known any more is lost, loudly: the changes made while Herald was
    /// down and the changes journalled as pending. A file that cannot be read (I/O error,
    /// permissions) may be intact: the read is retried with backoff rather than replaced.
    pub(super) async fn load(&self) -> Option<SeenState> {
        let mut backoff = Duration::from_millis(200);
        loop {
            match state::load_or_quarantine::<SeenState>(&self.path).await {
                Ok(Loaded::Found(s)) => return Some(s),
                Ok(Loaded::Missing) => return None,
                Ok(Loaded::Quarantined { error, moved_to }) => {
                    tracing::error!(
                        source = %format_args!("{}/{}", self.config.namespace, self.config.name),
                        kind = %self.resource.kind,
                        path = %self.path.display(),
                        moved_to = %moved_to.display(),
                        error = ?error.to_string(),
                        "apiserver source state corrupt: moved aside; starting as a first start (changes made while down and pending changes are not emitted)"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = ?e.to_string(), retry_in = ?backoff, "apiserver source state unreadable, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}
