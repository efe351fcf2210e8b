//! The writer of one topic: group commit on a dedicated thread.
//!
//! Publishers encode their batch into a frame on their own task and queue it here. The thread
//! takes everything queued, writes it with one positional write into the preallocated segment,
//! calls one `fdatasync`, and only then raises the committed length, wakes subscribers and
//! answers every publisher. While one fsync runs the next requests queue up, so concurrent
//! publishers share fsyncs.
//!
//! Frames that do not fit in the rest of the segment go to the next one (a write and an fsync
//! each side of the roll); a frame larger than a whole segment gets a segment of its own, which
//! grows past its preallocated size. From the first write into the active segment on, the next
//! one is prepared (zeroed and synced) in the background, so a roll only cuts the old segment
//! to its content and renames the prepared file.
//!
//! Failure handling never lies: a failed write is zeroed again and answered with the error
//! (retryable: a full disk may drain). A failed fsync leaves the kernel's page state unknown (a
//! retried fsync can report success for pages it dropped), so the writer stops accepting writes
//! until the bus is reopened and recovery re-reads the file.
//!
//! A full disk: a preparation that fails removes its half-written file, and the writer reports
//! itself unable to write (`Topic::write_error`, which readiness shows) until a preparation of a
//! whole next segment succeeds again; while idle in that state it tries every
//! [`PROBE_INTERVAL`], so it recovers by itself once space comes back, without waiting for a
//! publish.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::preallocate::{self, NEXT, Preparing};
use super::segment::{self, Committed, Segment};
use super::topic::{Active, Topic, sync_dir};
use crate::BusError;

/// Stop draining the queue once a write holds this much, to bound one write's latency.
const MAX_WRITE_BYTES: usize = 8 * 1024 * 1024;

/// How often an idle writer that could not write tries to prepare its next segment again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// One `publish` call: a whole frame and whom to answer.
#[derive(Debug)]
pub struct Request {
    pub frame: bytes::BytesMut,
    pub events: u64,
    pub reply: oneshot::Sender<Result<(), BusError>>,
}

pub struct Writer {
    pub topic: Arc<Topic>,
    pub active: Active,
    pub segment_bytes: u64,
    /// Bytes queued but not yet answered, across the bus (the `publish` bound).
    pub pending: Arc<AtomicU64>,
    /// Set after a failed fsync: every later request is refused.
    pub failed: Option<String>,
    /// The next segment, being prepared.
    pub next: Option<Preparing>,
}

impl Writer {
    /// Runs until every sender is dropped, answering what is queued before returning.
    pub fn run(mut self, requests: Receiver<Request>) {
        let mut batch: Vec<Request> = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut linger = Linger::default();
        loop {
            let first = if self.failed.is_none() && self.topic.write_error().is_some() {
                match requests.recv_timeout(PROBE_INTERVAL) {
                    Ok(first) => first,
                    Err(RecvTimeoutError::Timeout) => {
                        self.probe();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match requests.recv() {
                    Ok(first) => first,
                    Err(_) => break,
                }
            };
            let mut bytes = first.frame.len();
            batch.push(first);
            let deadline = linger.deadline();
            while bytes < MAX_WRITE_BYTES {
                let next = match requests.try_recv() {
                    Ok(next) => next,
                    Err(TryRecvError::Disconnected) => break,
                    Err(TryRecvError::Empty) => {
                        let Some(wait) = linger.wait(deadline, batch.len()) else {
                            break;
                        };
                        match requests.recv_timeout(wait) {
                            Ok(next) => next,
                            Err(_) => break,
                        }
                    }
                };
                bytes += next.frame.len();
                batch.push(next);
            }
            let synced_at = linger.now();
            let answered = batch.len();
            while !batch.is_empty() {
                let (n, result) = self.commit(&batch, &mut buf);
                for request in batch.drain(..n) {
                    let answer = match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(e.to_bus_error()),
                    };
                    let _ = request.reply.send(answer); // the publisher may have given up
                }
            }
            linger.committed(answered, synced_at);
            self.pending.fetch_sub(bytes as u64, Ordering::AcqRel);
            self.collect_next();
        }
        // Never leave a preparation running behind a closed bus: a reopen in this process
        // would prepare the same file.
        if let Some(next) = self.next.take() {
            let _ = next.wait();
        }
    }

    /// Commits the longest prefix of `batch` that fits in one segment (rolling first if not even
    /// its first frame fits in the active one). Returns how many requests it answers and how.
    fn commit(&mut self, batch: &[Request], buf: &mut Vec<u8>) -> (usize, Result<(), Failure>) {
        if let Some(reason) = &self.failed {
            return (batch.len(), Err(Failure::Stopped(reason.clone())));
        }
        let segment_bytes = self.segment_bytes;
        let fits = |len: u64, frame: &Request| len + frame.frame.len() as u64 <= segment_bytes;
        if self.active.len > 0
            && !fits(self.active.len, &batch[0])
            && let Err(e) = self.roll()
        {
            return (batch.len(), Err(e));
        }
        // The first frame always goes: an empty segment takes a frame of any size.
        let mut len = self.active.len + batch[0].frame.len() as u64;
        let mut n = 1;
        while n < batch.len() && fits(len, &batch[n]) {
            len += batch[n].frame.len() as u64;
            n += 1;
        }
        buf.clear();
        let mut end = self.active.end;
        for request in &batch[..n] {
            let at = buf.len();
            buf.extend_from_slice(&request.frame);
            segment::set_first(&mut buf[at..], end);
            end += request.events;
        }
        if let Err(e) = self.active.file.write_all_at(buf, self.active.len) {
            self.cannot_write(format!("writing failed: {e}"));
            self.undo_write(buf.len() as u64, &e);
            return (n, Err(Failure::Io(e)));
        }
        if let Err(e) = self.active.file.sync_data() {
            self.stop(format!("fdatasync failed: {e}"));
            return (n, Err(Failure::Io(e)));
        }
        self.active.len += buf.len() as u64;
        self.active.capacity = self.active.capacity.max(self.active.len);
        self.active.end = end;
        self.active.segment.set_committed(Committed {
            len: self.active.len,
            end,
        });
        self.topic.end.send_replace(self.active.end);
        if self.next.is_none() {
            // From the first write on: zero-filling competes with commits for the disk, and at
            // high ingest rates it needs most of a segment's lifetime to be ready at the roll.
            self.next = Some(preallocate::prepare(&self.topic.dir, self.segment_bytes));
        }
        (n, Ok(()))
    }

    /// Restores zeros over a failed write past the committed end: the next write lands at
    /// `len` again, and if it is shorter, whole frames of the failed one must not survive
    /// behind it. If that fails too, recovery on reopen does it: stop writing until then.
    fn undo_write(&mut self, written: u64, e: &io::Error) {
        let (len, capacity) = (self.active.len, self.active.capacity);
        let file = &self.active.file;
        let undone = if len + written > capacity {
            file.set_len(capacity.max(len))
        } else {
            Ok(())
        }
        .and_then(|()| preallocate::zero_fill(file, len, (len + written).min(capacity)));
        if let Err(undo) = undone {
            self.stop(format!(
                "write failed ({e}) and zeroing it again failed ({undo})"
            ));
        }
    }

    /// Seals the active segment and makes the prepared one the next, named by the next
    /// position.
    ///
    /// Order matters for recovery, which takes the size of every segment file but the last as
    /// its content: the old segment is cut to its content and synced *before* the rename makes
    /// the new one the last. If the preparation failed (a full disk), nothing changed: the
    /// error is answered and the next commit tries again. A failure after that stops writes.
    fn roll(&mut self) -> Result<(), Failure> {
        let next = self
            .next
            .take()
            .unwrap_or_else(|| preallocate::prepare(&self.topic.dir, self.segment_bytes));
        let file = next.wait().map_err(|e| {
            self.cannot_write(format!("preparing the next segment failed: {e}"));
            Failure::Io(e)
        })?;
        let path = self.topic.dir.join(segment::file_name(self.active.end));
        let sealed = (|| {
            if self.active.capacity != self.active.len {
                self.active.file.set_len(self.active.len)?;
                self.active.file.sync_all()?;
            }
            fs::rename(self.topic.dir.join(NEXT), &path)?;
            sync_dir(&self.topic.dir)
        })();
        if let Err(e) = sealed {
            self.stop(format!("starting a new segment failed: {e}"));
            return Err(Failure::Io(e));
        }
        let empty = Committed {
            len: 0,
            end: self.active.end,
        };
        let next = Arc::new(Segment::new(self.active.end, path, empty));
        {
            // Seal and publish the next segment under the list's lock: a reader that sees the
            // old segment sealed finds the next one as soon as it takes the lock.
            let mut segments = self.topic.segments.lock().unwrap();
            self.active.segment.seal(SystemTime::now());
            segments.push(next.clone());
        }
        self.active.file = file;
        self.active.segment = next;
        self.active.len = 0;
        self.active.capacity = self.segment_bytes;
        self.topic.set_write_error(None);
        Ok(())
    }

    /// Collects a finished background preparation of the next segment: a success shows there
    /// is room for a whole segment again (a reported failure is cleared); a failure (its file
    /// already removed) is reported, and the next commit or probe starts another.
    fn collect_next(&mut self) {
        let Some(next) = self.next.take() else {
            return;
        };
        if !next.is_finished() {
            self.next = Some(next);
            return;
        }
        let (path, size) = (next.path().to_owned(), self.segment_bytes);
        match next.wait() {
            Ok(file) => {
                self.next = Some(Preparing::ready(path, size, file));
                if self.topic.write_error().is_some() {
                    info!(topic = %self.topic.name, "embedded bus writes again: the next segment is prepared");
                    self.topic.set_write_error(None);
                }
            }
            Err(e) => self.cannot_write(format!("preparing the next segment failed: {e}")),
        }
    }

    /// While idle after a failure: tries to prepare the next segment (on this thread; the
    /// queue waits meanwhile).
    fn probe(&mut self) {
        if self.next.is_none() {
            self.next = Some(preallocate::prepare(&self.topic.dir, self.segment_bytes));
        }
        if let Some(next) = self.next.take() {
            let (path, size) = (next.path().to_owned(), self.segment_bytes);
            self.next = Some(match next.wait() {
                Ok(file) => Preparing::ready(path, size, file),
                Err(e) => {
                    self.cannot_write(format!("preparing the next segment failed: {e}"));
                    return;
                }
            });
        }
        self.collect_next();
    }

    /// Reports a failure that may pass (a full disk) to readiness.
    fn cannot_write(&mut self, reason: String) {
        warn!(topic = %self.topic.name, %reason, "embedded bus cannot write");
        self.topic.set_write_error(Some(reason));
    }

    fn stop(&mut self, reason: String) {
        error!(topic = %self.topic.name, %reason, "embedded bus stops writing this topic until reopened");
        self.topic
            .set_write_error(Some(format!("{reason}; stopped until Herald restarts")));
        self.failed = Some(reason);
    }
}

enum Failure {
    Io(io::Error),
    Stopped(String),
}

impl Failure {
    fn to_bus_error(&self) -> BusError {
        match self {
            Failure::Io(e) => BusError::Io(io::Error::new(e.kind(), e.to_string())),
            Failure::Stopped(reason) => BusError::unavailable(reason.clone()),
        }
    }
}

/// How long the writer waits for more requests before it syncs (PostgreSQL's `commit_delay`,
/// made adaptive).
///
/// Without it, the publishers answered by one fsync come back one by one: the first to return
/// starts the next fsync alone and the rest wait a whole fsync for the one after, so 64
/// publishers share an fsync only about half as well as they could. The writer therefore waits
/// until as many requests as the last commit answered have arrived, but never longer than a
/// quarter of the last fsync's duration (capped): a lone publisher (expecting one) never
/// waits, and a waiting publisher's latency grows by a fraction of an fsync at most.
#[derive(Debug)]
struct Linger {
    /// Requests the previous commit answered.
    expected: usize,
    last_sync: Duration,
}

/// Bound on the wait, whatever the disk's fsync latency.
const MAX_LINGER: Duration = Duration::from_millis(1);

// The writer is a plain thread that tokio's paused test clock does not drive, so it measures
// real time.
#[allow(clippy::disallowed_types)]
type Clock = std::time::Instant;

impl Default for Linger {
    fn default() -> Self {
        Self {
            expected: 1,
            last_sync: Duration::ZERO,
        }
    }
}

impl Linger {
    fn now(&self) -> Clock {
        Clock::now()
    }

    fn deadline(&self) -> Clock {
        Clock::now() + (self.last_sync / 4).min(MAX_LINGER)
    }

    /// How long to wait for another request when `have` are in hand; `None`: sync now.
    fn wait(&self, deadline: Clock, have: usize) -> Option<Duration> {
        if have >= self.expected {
            return None;
        }
        let left = deadline.saturating_duration_since(Clock::now());
        (!left.is_zero()).then_some(left)
    }

    fn committed(&mut self, answered: usize, started: Clock) {
        self.expected = answered;
        self.last_sync = started.elapsed();
    }
}
