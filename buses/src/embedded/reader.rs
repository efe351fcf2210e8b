//! A consumer group's subscription: reads committed frames off the segment files.
//!
//! Reads run on tokio's blocking pool, a chunk of frames at a time (mostly page-cache hits), and
//! the decoded events are handed out one by one from a buffer, so the per-delivery cost is a
//! queue pop. A subscription that caught up waits on the topic's committed-end watch, which the
//! writer raises after each fsync; nothing uncommitted is ever read.
//!
//! Damage never stalls a group: a frame that does not check is passed over to the next valid
//! frame (see `segment::find_frame`), whose first position says which positions the damaged
//! bytes held (at the end of a segment, its committed end says it); an event that does not
//! decode is one damaged position. The subscription acknowledges those positions and returns
//! [`BusError::Corrupt`] once for them, then reads on.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{error, warn};

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
    buffered: VecDeque<Item>,
    /// `None` until the first read, and again if a read was cancelled mid-way (it is rebuilt
    /// from `next`).
    reader: Option<Reader>,
}

/// What a read yields, in position order.
// Nearly every item is an event: boxing it to shrink the rare `Damaged` would add an
// allocation per delivery.
#[allow(clippy::large_enum_variant)]
enum Item {
    Event(u64, Event),
    /// Positions `from..to` are unreadable.
    Damaged {
        from: u64,
        to: u64,
        reason: String,
    },
}

impl Item {
    fn end(&self) -> u64 {
        match self {
            Item::Event(position, _) => position + 1,
            Item::Damaged { to, .. } => *to,
        }
    }
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
            match self.buffered.pop_front() {
                Some(Item::Event(position, event)) => {
                    return Ok(Delivery::new(event, position, self.group.tracker.clone()));
                }
                Some(Item::Damaged { from, to, reason }) => {
                    error!(
                        topic = %self.topic.name,
                        group = %self.group.name(),
                        from,
                        to,
                        %reason,
                        "skipping damaged records"
                    );
                    for position in from..to {
                        self.group.tracker.ack(position);
                    }
                    return Err(BusError::Corrupt {
                        position: from,
                        reason: format!("{reason} (positions {from}..{to} skipped)"),
                    });
                }
                None => {}
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
            match batch? {
                Batch::Items(items) => {
                    self.next = items.last().map_or(self.next, Item::end);
                    self.buffered.extend(items);
                }
                Batch::Deleted { oldest } => {
                    warn!(
                        topic = %self.topic.name,
                        from = self.next,
                        to = oldest,
                        "retention deleted unconsumed events; the group skips forward"
                    );
                    self.group.tracker.skip_to(oldest);
                    self.next = oldest;
                }
            }
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

enum Batch {
    /// Events and damage from the position asked for on, contiguous; empty when caught up.
    Items(Vec<Item>),
    /// Retention deleted the position asked for; `oldest` is the first one kept.
    Deleted { oldest: u64 },
}

/// The oldest position the topic still keeps (its end when it keeps nothing).
pub(super) fn oldest(topic: &Topic) -> u64 {
    let end = *topic.end.borrow();
    topic
        .segments
        .lock()
        .unwrap()
        .first()
        .map_or(end, |s| s.base.min(end))
}

/// The position of the first committed event that arrived at or after `since`
/// (`knativearrivaltime`), or the end if none did. Reads the topic from its oldest event:
/// done once, when a group that starts at a time is created. Blocking.
pub(super) fn first_arrived_since(
    topic: &Topic,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64, BusError> {
    let end = *topic.end.borrow();
    let mut next = oldest(topic);
    let mut reader = None;
    while next < end {
        match read(topic, &mut reader, next)? {
            Batch::Deleted { oldest } => next = oldest,
            Batch::Items(items) if items.is_empty() => break,
            Batch::Items(items) => {
                for item in items {
                    if let Item::Event(position, event) = &item
                        && crate::arrival_time(event).is_some_and(|t| t >= since)
                    {
                        return Ok(*position);
                    }
                    next = item.end();
                }
            }
        }
    }
    Ok(end)
}

/// Reads the committed events from `next` on, at most one chunk.
fn read(topic: &Topic, reader: &mut Option<Reader>, next: u64) -> Result<Batch, BusError> {
    loop {
        let r = match reader {
            Some(r) if r.first <= next => r,
            _ => match locate(topic, next)? {
                Ok(r) => reader.insert(r),
                Err(oldest) => return Ok(Batch::Deleted { oldest }),
            },
        };
        // Sealed first: once sealed, the committed length and end read after it are final.
        let sealed = r.segment.is_sealed();
        let committed = r.segment.committed();
        if r.pos >= committed.len && r.first >= committed.end {
            if !sealed {
                return Ok(Batch::Items(vec![]));
            }
            *reader = None; // on to the next segment, which starts at `next`
            continue;
        }
        let items = r.read_chunk(committed, next)?;
        if !items.is_empty() {
            return Ok(Batch::Items(items));
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
    /// Decodes the whole frames in the next chunk below `committed.len`, keeping what lies from
    /// `next` on. Damage at the start of the chunk is passed over (see [`Reader::pass_damage`]).
    fn read_chunk(
        &mut self,
        committed: segment::Committed,
        next: u64,
    ) -> Result<Vec<Item>, BusError> {
        let limit = committed.len;
        if self.pos >= limit {
            return self.pass_damage(committed, next); // positions left but no bytes
        }
        let want = ((limit - self.pos) as usize).min(READ_BYTES);
        self.buf.resize(want, 0);
        self.file.read_exact_at(&mut self.buf, self.pos)?;
        if let Some(header) = segment::parse_header(&self.buf)
            && HEADER + header.len > want
            && self.pos + header.frame_len() <= limit
        {
            // One frame larger than a chunk: read exactly it.
            self.buf.resize(HEADER + header.len, 0);
            self.file.read_exact_at(&mut self.buf, self.pos)?;
        }
        let mut items = vec![];
        let mut off = 0;
        while off < self.buf.len() {
            let Some((header, _)) = segment::frame_at(&self.buf, off, self.first) else {
                let header = segment::parse_header(&self.buf[off..]);
                let continues = header.is_some_and(|h| {
                    h.first == self.first
                        && off + HEADER + h.len > self.buf.len()
                        && self.pos + h.frame_len() <= limit
                });
                if continues || !items.is_empty() {
                    break; // the frame continues in the next chunk, or damage: next call
                }
                return self.pass_damage(committed, next);
            };
            let payload = &self.buf[off + HEADER..off + HEADER + header.len];
            let encoded = segment::payload_events(payload).unwrap_or_default();
            for (i, bytes) in encoded.iter().enumerate() {
                let position = self.first + i as u64;
                if position >= next {
                    items.push(match codec::decode(bytes) {
                        Ok(event) => Item::Event(position, event),
                        Err(e) => Item::Damaged {
                            from: position,
                            to: position + 1,
                            reason: format!("event does not decode: {e}"),
                        },
                    });
                }
            }
            self.first += encoded.len() as u64;
            self.pos += header.frame_len();
            off += HEADER + header.len;
        }
        Ok(items)
    }

    /// At a frame that does not check: finds the next valid frame below `committed.len` and
    /// moves there. The positions in between (up to the segment's committed end if no valid
    /// frame follows) are damaged; those from `next` on are returned as one item.
    fn pass_damage(
        &mut self,
        committed: segment::Committed,
        next: u64,
    ) -> Result<Vec<Item>, BusError> {
        let rest = segment::read_range(&self.file, self.pos, committed.len)?;
        let damaged_at = self.pos;
        let to = match segment::find_frame(&rest, 0, self.first) {
            Some((off, header)) => {
                self.pos += off as u64;
                header.first
            }
            None => {
                self.pos = committed.len;
                committed.end
            }
        };
        let from = self.first.max(next);
        self.first = to;
        if from >= to {
            warn!(
                segment = %self.segment.path.display(),
                offset = damaged_at,
                "damaged bytes without lost positions passed over"
            );
            return Ok(vec![]);
        }
        Ok(vec![Item::Damaged {
            from,
            to,
            reason: format!(
                "damaged frame at byte {damaged_at} of {}",
                self.segment.path.display()
            ),
        }])
    }
}
