//! The embedded bus: Herald's default, durable bus — a segmented log per topic on local disk.
//!
//! # Layout
//! - [`config`]: [`EmbeddedConfig`] and [`Retention`].
//! - `segment`: segment files and the checked frames inside them (one frame per batch), and
//!   how a reader finds the next valid frame after a damaged one.
//! - `format1`: converting topics written by earlier versions.
//! - `preallocate`: segments are zero-filled and synced ahead of use, so a commit's
//!   `fdatasync` flushes data only (no journalled size change): why, and how.
//! - `topic`: a topic's directory, and recovery when it is opened (a torn tail is zeroed,
//!   damage followed by valid frames is kept and skipped by readers).
//! - `writer`: one thread per topic doing group commit (many publishes, one `fdatasync`).
//! - `reader`: subscriptions reading committed frames on the blocking pool.
//! - `cursor`: durable consumer-group cursors, rewritten in place (a full disk cannot stop them).
//! - `retention`: deleting whole sealed segments that are acknowledged, too old or too many.
//!
//! On disk: `<dir>/LOCK` (held while open), `<dir>/topics/<topic>/{topic, format, NNN.log,
//! groups/}`, and `next.tmp` while the next segment is being prepared.
//! A flusher thread persists moved cursors and applies retention every `flush_interval`.
//! Every file operation runs on these threads, the writers' threads or tokio's blocking pool,
//! never on an async worker (`open` is blocking: the broker calls it in `spawn_blocking`).

pub mod config;
mod cursor;
mod format1;
mod preallocate;
mod reader;
mod retention;
mod scrub;
mod segment;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod topic;
mod writer;

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::oneshot;
use tracing::{error, info};

pub use config::{EmbeddedConfig, Retention};

use crate::{Bus, BusError, Event, StartPosition, Subscription, codec};
use reader::EmbeddedSubscription;
use topic::{Active, Topic};
use writer::{Request, Writer};

/// The embedded bus. Cheap to share as `Arc<dyn Bus>`; dropping it (or [`EmbeddedBus::close`])
/// finishes queued writes, persists every cursor and releases the directory.
pub struct EmbeddedBus {
    inner: Arc<Inner>,
    /// Held for the bus's lifetime: a second process on the same directory would corrupt it.
    _lock: File,
}

struct Inner {
    config: EmbeddedConfig,
    topics_dir: PathBuf,
    topics: Mutex<HashMap<String, Arc<TopicHandle>>>,
    /// Held while a topic is created (see [`Inner::create_topic`]).
    creating: Mutex<()>,
    pending: Arc<AtomicU64>,
    closed: AtomicBool,
    /// Why the last flush could not persist every cursor, for readiness.
    cursor_error: Mutex<Option<String>>,
    /// Wakes the flusher early (to stop); its thread handle is joined on close.
    flusher: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

struct TopicHandle {
    topic: Arc<Topic>,
    /// `None` once closed; dropping the sender lets the writer drain and stop.
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl EmbeddedBus {
    /// Opens (or creates) the bus in `config.dir`, recovering every topic: a torn write at the
    /// end of a log is cut off, damaged frames followed by valid ones are kept (readers skip
    /// and count them), every acknowledged event and persisted cursor is kept. Fails if a
    /// group's cursor lies beyond the end of its log (acknowledged events were lost).
    /// Blocking: call it at startup, off the async workers.
    pub fn open(config: EmbeddedConfig) -> Result<EmbeddedBus, BusError> {
        let topics_dir = config.dir.join("topics");
        fs::create_dir_all(&topics_dir)?;
        let lock = File::create(config.dir.join("LOCK"))?;
        lock.try_lock().map_err(|_| {
            BusError::unavailable(format!(
                "data directory {} is in use by another process",
                config.dir.display()
            ))
        })?;
        topic::sync_dir(&config.dir)?;
        let inner = Arc::new(Inner {
            topics_dir: topics_dir.clone(),
            topics: Mutex::new(HashMap::new()),
            creating: Mutex::new(()),
            pending: Arc::new(AtomicU64::new(0)),
            closed: AtomicBool::new(false),
            cursor_error: Mutex::new(None),
            flusher: Mutex::new(None),
            config,
        });
        let mut recovered = vec![];
        for (topic, active) in topic::open_all(&topics_dir, inner.config.segment_bytes)? {
            info!(topic = %topic.name, end = active.end, "embedded topic recovered");
            recovered.push(topic.clone());
            let handle = inner.start_topic(topic, active)?;
            let name = handle.topic.name.clone();
            inner.topics.lock().unwrap().insert(name, handle);
        }
        scrub::spawn(recovered);
        let (wake, sleep) = mpsc::channel();
        let flusher = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("herald-bus-flush".into())
                .spawn(move || inner.run_flusher(sleep))?
        };
        *inner.flusher.lock().unwrap() = Some((wake, flusher));
        Ok(EmbeddedBus { inner, _lock: lock })
    }

    /// Stops accepting publishes, finishes queued writes, persists every cursor. Idempotent.
    pub async fn close(&self) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || inner.shutdown()).await;
    }

    /// Deletes every consumer group of `topic` not named in `keep` (at startup: the groups of
    /// triggers that no longer exist, which would otherwise hold back retention forever).
    /// Returns the names of the removed groups, sorted.
    pub async fn retain_groups(&self, topic: &str, keep: &[&str]) -> Result<Vec<String>, BusError> {
        let Some(handle) = self.inner.topics.lock().unwrap().get(topic).cloned() else {
            return Ok(vec![]);
        };
        let topic = handle.topic.clone();
        let keep: Vec<String> = keep.iter().map(|&k| k.to_owned()).collect();
        tokio::task::spawn_blocking(move || cursor::retain(&topic, &keep))
            .await
            .map_err(|e| BusError::unavailable(format!("removing groups failed: {e}")))?
    }

    async fn topic(&self, name: &str) -> Result<Arc<TopicHandle>, BusError> {
        if let Some(handle) = self.inner.topics.lock().unwrap().get(name) {
            return Ok(handle.clone());
        }
        if name.is_empty() {
            return Err(BusError::Rejected {
                reason: "empty topic name".into(),
            });
        }
        let (inner, name) = (self.inner.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || inner.create_topic(&name))
            .await
            .map_err(|e| BusError::unavailable(format!("topic creation failed: {e}")))?
    }
}

impl Inner {
    fn start_topic(&self, topic: Arc<Topic>, active: Active) -> Result<Arc<TopicHandle>, BusError> {
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            topic: topic.clone(),
            active,
            segment_bytes: self.config.segment_bytes,
            pending: self.pending.clone(),
            failed: None,
            next: None,
        };
        let thread = std::thread::Builder::new()
            .name("herald-bus-write".into())
            .spawn(move || writer.run(rx))?;
        let handle = Arc::new(TopicHandle {
            topic: topic.clone(),
            requests: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        });
        Ok(handle)
    }

    /// Creates a topic on first use (on the blocking pool). Creations are serialised by
    /// `creating`, so two first uses of a name cannot both create it; the map's lock is not held
    /// meanwhile, because zero-filling the first segment takes a while and publishers to other
    /// topics look the map up on their runtime threads.
    fn create_topic(&self, name: &str) -> Result<Arc<TopicHandle>, BusError> {
        let _creating = self.creating.lock().unwrap();
        if let Some(handle) = self.topics.lock().unwrap().get(name) {
            return Ok(handle.clone());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(BusError::unavailable("embedded bus closed"));
        }
        let (topic, active) = topic::create(&self.topics_dir, name, self.config.segment_bytes)?;
        let handle = self.start_topic(topic, active)?;
        self.topics
            .lock()
            .unwrap()
            .insert(name.to_owned(), handle.clone());
        Ok(handle)
    }

    fn run_flusher(&self, sleep: mpsc::Receiver<()>) {
        loop {
            let stop = match sleep.recv_timeout(self.config.flush_interval) {
                Err(RecvTimeoutError::Timeout) => false,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
            };
            self.flush_and_retain();
            if stop {
                return;
            }
        }
    }

    /// Persists every moved cursor, then applies retention, topic by topic.
    fn flush_and_retain(&self) {
        let topics: Vec<_> = self.topics.lock().unwrap().values().cloned().collect();
        let now = SystemTime::now();
        let mut cursor_error = None;
        for handle in topics {
            let topic = &handle.topic;
            let groups: Vec<_> = topic.groups.lock().unwrap().values().cloned().collect();
            for group in groups {
                if let Err(e) = group.flush() {
                    error!(topic = %topic.name, group = %group.name(), error = %e, "persisting a cursor failed");
                    cursor_error = Some(format!(
                        "persisting the cursor of group {:?} of topic {:?} failed: {e}",
                        group.name(),
                        topic.name
                    ));
                }
            }
            if let Err(e) = retention::apply(topic, &self.config.retention, now) {
                error!(topic = %topic.name, error = %e, "retention failed");
            }
        }
        *self.cursor_error.lock().unwrap() = cursor_error;
    }

    /// Why the bus cannot take or keep events now: a writer that cannot write, cursors that
    /// cannot be persisted.
    fn unready_reason(&self) -> Option<String> {
        let mut reasons: Vec<String> = self
            .topics
            .lock()
            .unwrap()
            .values()
            .filter_map(|h| {
                let error = h.topic.write_error()?;
                Some(format!(
                    "embedded bus writer of topic {:?} cannot write: {error}",
                    h.topic.name
                ))
            })
            .collect();
        reasons.sort();
        reasons.extend(self.cursor_error.lock().unwrap().clone());
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Idempotent: the first call does the work, later ones find nothing left to do.
    fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        // A creation under way finishes first; later ones see `closed`.
        drop(self.creating.lock().unwrap());
        let topics: Vec<_> = self.topics.lock().unwrap().values().cloned().collect();
        for handle in &topics {
            drop(handle.requests.lock().unwrap().take());
        }
        for handle in &topics {
            if let Some(thread) = handle.thread.lock().unwrap().take() {
                let _ = thread.join();
            }
        }
        // The flusher's last round persists the final cursors.
        if let Some((wake, thread)) = self.flusher.lock().unwrap().take() {
            let _ = wake.send(());
            let _ = thread.join();
        }
        for handle in &topics {
            handle.topic.closed.store(true, Ordering::Release);
            handle.topic.end.send_modify(|_| {}); // wake subscribers so they see `closed`
        }
    }
}

impl Drop for EmbeddedBus {
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}

impl std::fmt::Debug for EmbeddedBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBus")
            .field("dir", &self.inner.config.dir)
            .finish()
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        // Encode on the caller's task: the work spreads over the runtime's threads and the
        // writer thread only copies and syncs.
        let mut frame = bytes::BytesMut::with_capacity(64 + events.len() * 1100);
        let mut unencodable = None;
        segment::put_frame(&mut frame, events.len(), |i, out| {
            if let Err(error) = codec::encode(&events[i], out) {
                unencodable.get_or_insert(error);
            }
        });
        if let Some(error) = unencodable {
            return Err(error.into());
        }
        let size = frame.len() as u64;
        let max = self.inner.config.max_pending_bytes;
        if size > max || size > u32::MAX as u64 {
            return Err(BusError::TooLarge {
                size,
                limit: max.min(u32::MAX as u64),
            });
        }
        let handle = self.topic(topic).await?;
        let pending = self.inner.pending.fetch_add(size, Ordering::AcqRel);
        if pending + size > max {
            self.inner.pending.fetch_sub(size, Ordering::AcqRel);
            return Err(BusError::Overloaded {
                reason: format!("{pending} bytes are waiting to be written (limit {max})"),
            });
        }
        let (reply, answer) = oneshot::channel();
        let request = Request {
            frame,
            events: events.len() as u64,
            reply,
        };
        let sent = match &*handle.requests.lock().unwrap() {
            Some(tx) => tx.send(request).is_ok(),
            None => false,
        };
        if !sent {
            self.inner.pending.fetch_sub(size, Ordering::AcqRel);
            return Err(BusError::unavailable("embedded bus closed"));
        }
        answer
            .await
            .map_err(|_| BusError::unavailable("embedded bus writer stopped"))?
    }

    async fn subscribe_from(
        &self,
        topic: &str,
        group: &str,
        start: StartPosition,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let handle = self.topic(topic).await?;
        let topic = handle.topic.clone();
        let known = topic.groups.lock().unwrap().get(group).cloned();
        let group = match known {
            Some(group) => group,
            None => {
                let (topic, name) = (topic.clone(), group.to_owned());
                tokio::task::spawn_blocking(move || {
                    cursor::join_at(&topic, &name, |topic| match start {
                        StartPosition::Latest => Ok(*topic.end.borrow()),
                        StartPosition::Earliest => Ok(reader::oldest(topic)),
                        StartPosition::Time(since) => reader::first_arrived_since(topic, since),
                    })
                })
                .await
                .map_err(|e| BusError::unavailable(format!("joining group failed: {e}")))??
            }
        };
        Ok(Box::new(EmbeddedSubscription::new(topic, group)))
    }

    async fn backlog(&self, topic: &str, group: &str) -> Result<Option<u64>, BusError> {
        let Some(handle) = self.inner.topics.lock().unwrap().get(topic).cloned() else {
            return Ok(None);
        };
        let topic = &handle.topic;
        let end = *topic.end.borrow();
        let groups = topic.groups.lock().unwrap();
        Ok(groups
            .get(group)
            .map(|g| end.saturating_sub(g.tracker.committed())))
    }

    async fn forget_group(&self, topic: &str, group: &str) -> Result<(), BusError> {
        let Some(handle) = self.inner.topics.lock().unwrap().get(topic).cloned() else {
            return Ok(());
        };
        let (topic, group) = (handle.topic.clone(), group.to_owned());
        tokio::task::spawn_blocking(move || cursor::forget(&topic, &group))
            .await
            .map_err(|e| BusError::unavailable(format!("removing a group failed: {e}")))?
    }

    async fn forget_other_groups(
        &self,
        topic: &str,
        keep: &[&str],
    ) -> Result<Vec<String>, BusError> {
        self.retain_groups(topic, keep).await
    }

    fn unready_reason(&self) -> Option<String> {
        self.inner.unready_reason()
    }

    fn expired_events(&self) -> Vec<(String, u64)> {
        let mut counts: Vec<_> = self
            .inner
            .topics
            .lock()
            .unwrap()
            .values()
            .map(|h| {
                (
                    h.topic.name.clone(),
                    h.topic.expired.load(Ordering::Relaxed),
                )
            })
            .collect();
        counts.sort();
        counts
    }

    async fn close(self: Arc<Self>) {
        EmbeddedBus::close(&self).await;
    }
}
