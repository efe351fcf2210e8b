//! When an HTTP/2 connection is idle. hyper's `header_read_timeout` bounds HTTP/1.1 only (it
//! is also HTTP/1.1's keep-alive idle timeout); an HTTP/2 connection with no open stream would
//! otherwise stay open as long as it answers pings. [`Activity`] counts a connection's requests
//! being answered; [`Activity::idle_for`] resolves once none was open for the given time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Requests of one connection being answered.
#[derive(Debug, Default)]
pub struct Activity {
    open: AtomicUsize,
    changed: Notify,
}

impl Activity {
    pub fn started(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    pub fn finished(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Resolves once no request was open for `timeout` in a row.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            // Created before the count is read: a change in between still wakes it.
            let changed = self.changed.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(timeout) => return,
                    _ = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// Marks a request finished when dropped (answered, or its future dropped).
#[derive(Debug)]
pub struct Open(pub std::sync::Arc<Activity>);

impl Open {
    pub fn new(activity: std::sync::Arc<Activity>) -> Self {
        activity.started();
        Self(activity)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.finished();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_the_timeout_with_no_open_request() {
        let activity = Arc::new(Activity::default());
        let open = Open::new(activity.clone());
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!idle.is_finished(), "idle while a request is open");
        drop(open);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!idle.is_finished(), "idle before the timeout");
        let again = Open::new(activity.clone());
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(again);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            !idle.is_finished(),
            "a request in between restarts the timer"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(idle.is_finished());
    }
}
