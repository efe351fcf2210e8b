//! Configuration of the embedded bus.

use std::path::PathBuf;
use std::time::Duration;

/// Default size at which a segment is sealed and a new one started. 32 MiB: segments are zero-filled ahead of use, so their size is also what a topic reserves
/// and what recovery re-reads; 64 MiB measured no better.
pub const DEFAULT_SEGMENT_BYTES: u64 = 32 * 1024 * 1024;
/// Default bound on bytes accepted by `publish` but not yet written (all topics together).
pub const DEFAULT_MAX_PENDING_BYTES: u64 = 64 * 1024 * 1024;
/// Default interval at which acknowledged cursors are persisted and retention runs.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// How the embedded bus is opened: where, how big its files grow, what it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// The data directory; created if missing and locked against a second process.
    pub dir: PathBuf,
    /// A segment that reaches this size is sealed; retention deletes whole sealed segments, so
    /// smaller segments give back space sooner at the cost of more files. Segment files are
    /// preallocated at this size (written with zeros ahead of use, so commits need not journal
    /// a growing file): a topic that was written to takes up to two segments of disk beyond its
    /// content (the active one and the next, prepared from the first write into the active one). A batch larger than a
    /// segment gets a segment of its own.
    pub segment_bytes: u64,
    pub retention: Retention,
    /// Bound on encoded bytes waiting for the writers. A `publish` that would exceed it answers
    /// [`BusError::Overloaded`](crate::BusError::Overloaded) at once instead of queueing.
    pub max_pending_bytes: u64,
    /// How often acknowledged cursors are persisted (and retention runs). A crash loses at most
    /// this much acknowledgement progress, which turns into duplicate deliveries, never loss.
    pub flush_interval: Duration,
}

/// What the bus keeps beyond what every consumer group acknowledged.
///
/// Segments every known group (a group with a cursor file) acknowledged are always deleted.
/// `max_age` and `max_bytes` work like Kafka's `retention.ms` / `retention.bytes`: they delete
/// sealed segments **even if a group has not consumed them**; a group positioned in deleted data
/// skips forward to the oldest kept event (logged as a warning). Both apply per topic, to sealed
/// segments only: the active segment is never deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete a sealed segment once its last write is older than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest sealed segments while a topic holds more than this many bytes.
    pub max_bytes: Option<u64>,
}

impl EmbeddedConfig {
    /// Defaults for everything but the directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retention: Retention::default(),
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
        }
    }
}
