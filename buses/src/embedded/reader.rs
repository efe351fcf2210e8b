//! A consumer group's subscription: reads committed frames off the segment files.
//!
//! Reads run on tokio's blocking pool, a chunk of frames at a time (mostly page-cache hits), and
//! the decoded events are handed out one by one from a buffer, so the per-delivery cost is a
//! queue pop. A subscription that caught up waits on the topic's committed-end watch, which the
//! writer raises after each fsync; nothing uncommitted is ever read.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::warn;

use super::cursor::Group;
use super::segment::{self, HEADER, Segment};
use super::topic::Topic;
use crate::{BusError, Delivery, Event, Subscription, codec};

/// Bytes read per blocking call: enough to amortise the hand-off, small enough that many
/// backlogged subscriptions stay within a modest memory budget.
const READ_BYTES: usize = 256 * 1024;

pub struct EmbeddedSubscription {
    topic: Arc<Topic>,
    group: Arc<Group>,
    end: watch::Receiver<u64>,
    /// Next position to read from disk (after everything in `buffered`).
    next: u64,
    buffered: VecDeque<(u64, Event)>,
    /// `None` until the first read, and again if a read was cancelled mid-way (it is rebuilt
    /// from `next`).
    reader: Option<Reader>,
}

impl EmbeddedSubscription {
    pub fn new(topic: Arc<Topic>, group: Arc<Group>) -> Self {
        Self {
            end: topic.end.subscribe(),
            next: group.tracker.committed(),
            topic,
            group,
            buffered: VecDeque::new(),
            reader: None,
        }
    }
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            if let Some((position, event)) = self.buffered.pop_front() {
                return Ok(Delivery::new(event, position, self.group.tracker.clone()));
            }
            if self.topic.closed.load(Ordering::Acquire) {
                return Err(BusError::unavailable("embedded bus closed"));
            }
            if self.next >= *self.end.borrow_and_update() {
                self.end
                    .changed()
                    .await
                    .map_err(|_| BusError::unavailable("embedded bus closed"))?;
                continue;
            }
            let (topic, mut reader, next) = (self.topic.clone(), self.reader.take(), self.next);
            let (reader, batch) = tokio::task::spawn_blocking(move || {
                let batch = read(&topic, &mut reader, next);
                (reader, batch)
            })
            .await
            .map_err(|e| BusError::unavailable(format!("reader task failed: {e}")))?;
            self.reader = reader;
            let batch = batch?;
            if batch.next > self.next && batch.events.is_empty() {
                warn!(
                    topic = %self.topic.name,
                    from = self.next,
                    to = batch.next,
                    "retention deleted unconsumed events; the group skips forward"
                );
                self.group.tracker.skip_to(batch.next);
            }
            self.next = batch.next;
            self.buffered.extend(batch.events);
        }
    }
}

/// An open segment and the frame boundary the next read starts at.
struct Reader {
    segment: Arc<Segment>,
    file: File,
    /// Byte offset of the next frame.
    pos: u64,
    /// Position of the first event of that frame.
    first: u64,
    buf: Vec<u8>,
}

struct Batch {
    events: Vec<(u64, Event)>,
    /// Position after the last event read (moved forward without events: a retention skip).
    next: u64,
}

/// Reads the committed events from `next` on, at most one chunk.
fn read(topic: &Topic, reader: &mut Option<Reader>, next: u64) -> Result<Batch, BusError> {
    loop {
        let r = match reader {
            Some(r) if r.first <= next => r,
            _ => match locate(topic, next)? {
                Ok(r) => reader.insert(r),
                Err(oldest) => {
                    return Ok(Batch {
                        events: vec![],
                        next: oldest,
                    });
                }
            },
        };
        // Sealed first: once sealed, the committed length read after it is final.
        let sealed = r.segment.is_sealed();
        let limit = r.segment.committed_len();
        if r.pos >= limit {
            if !sealed {
                return Ok(Batch {
                    events: vec![],
                    next,
                });
            }
            *reader = None; // on to the next segment, which starts at `next`
            continue;
        }
        let events = r.read_chunk(limit, next)?;
        if !events.is_empty() {
            let next = next + events.len() as u64;
            return Ok(Batch { events, next });
        }
    }
}

/// Opens the segment holding `next`, at the frame holding it. `Err(oldest)` when retention
/// already deleted `next`.
fn locate(topic: &Topic, next: u64) -> Result<Result<Reader, u64>, BusError> {
    loop {
        let segment = {
            let segments = topic.segments.lock().unwrap();
            match segments.first() {
                Some(first) if first.base > next => return Ok(Err(first.base)),
                _ => segments.iter().rev().find(|s| s.base <= next).cloned(),
            }
        };
        let Some(segment) = segment else {
            return Err(BusError::unavailable("topic has no segment"));
        };
        let file = match File::open(&segment.path) {
            Ok(file) => file,
            // Deleted by retention between the lookup and the open: look again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let (pos, first) = segment::seek(&file, segment.base, segment.committed_len(), next)?;
        return Ok(Ok(Reader {
            segment,
            file,
            pos,
            first,
            buf: Vec::new(),
        }));
    }
}

impl Reader {
    /// Decodes the whole frames in the next chunk below `limit`, keeping events from `next` on.
    fn read_chunk(&mut self, limit: u64, next: u64) -> Result<Vec<(u64, Event)>, BusError> {
        let want = ((limit - self.pos) as usize).min(READ_BYTES);
        self.buf.resize(want, 0);
        self.file.read_exact_at(&mut self.buf, self.pos)?;
        let (first_len, _) = segment::parse_header(&self.buf);
        if HEADER + first_len > want {
            // One frame larger than a chunk: read exactly it.
            self.buf.resize(HEADER + first_len, 0);
            self.file.read_exact_at(&mut self.buf, self.pos)?;
        }
        let mut events = vec![];
        let mut off = 0;
        while off + HEADER <= self.buf.len() {
            let (len, crc) = segment::parse_header(&self.buf[off..]);
            let Some(payload) = self.buf.get(off + HEADER..off + HEADER + len) else {
                break; // continues in the next chunk
            };
            let corrupt = |reason: &str| BusError::Corrupt {
                position: self.first,
                reason: format!("{reason} in {}", self.segment.path.display()),
            };
            if crc32fast::hash(payload) != crc {
                return Err(corrupt("frame checksum mismatch"));
            }
            let encoded = segment::payload_events(payload).ok_or_else(|| corrupt("bad frame"))?;
            for (i, bytes) in encoded.iter().enumerate() {
                let position = self.first + i as u64;
                if position >= next {
                    let event = codec::decode(bytes).map_err(|e| BusError::Corrupt {
                        position,
                        reason: e.to_string(),
                    })?;
                    events.push((position, event));
                }
            }
            self.first += encoded.len() as u64;
            self.pos += (HEADER + len) as u64;
            off += HEADER + len;
        }
        Ok(events)
    }
}
