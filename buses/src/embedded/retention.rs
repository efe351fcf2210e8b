//! Retention: giving disk space back by deleting whole sealed segments, oldest first.
//!
//! A sealed segment is deleted when every known group (every cursor file) has durably
//! acknowledged all of it, or when the optional age or size limits of [`Retention`] say so —
//! those delete unconsumed data, like Kafka's retention, and a group positioned there skips
//! forward. Only a prefix of the log is ever deleted, so what remains stays contiguous, and the
//! active segment is never deleted, so the topic's end position survives a restart.
//!
//! Events deleted before every group acknowledged them are counted in `Topic::expired`
//! (`herald_events_expired_total{topic}`): per segment, those at or above the slowest group's
//! cursor (in memory: what it acknowledged but had not persisted yet was not lost to it).

use std::fs;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use tracing::{debug, warn};

use super::config::Retention;
use super::segment::Segment;
use super::topic::{Topic, sync_dir};

/// Why a segment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Acknowledged,
    MaxAge,
    MaxBytes,
}

/// Deletes what `retention` and the groups' persisted cursors allow. Returns how many segments
/// were deleted.
pub fn apply(topic: &Topic, retention: &Retention, now: SystemTime) -> io::Result<usize> {
    // Persisted cursors only: an acknowledgement not yet on disk may be forgotten by a crash,
    // and the group would then resume inside the deleted segment.
    let floor = topic
        .groups
        .lock()
        .unwrap()
        .values()
        .map(|g| g.persisted())
        .min()
        .unwrap_or(u64::MAX); // no group: nobody can ever read it (new groups start at the end)
    let slowest = topic
        .groups
        .lock()
        .unwrap()
        .values()
        .map(|g| g.tracker.committed())
        .min();
    let mut doomed: Vec<(Arc<Segment>, Reason)> = vec![];
    {
        let mut segments = topic.segments.lock().unwrap();
        let mut total: u64 = segments.iter().map(|s| s.committed_len()).sum();
        while segments.len() > 1 && segments[0].is_sealed() {
            let oldest = &segments[0];
            let end = segments[1].base;
            let reason =
                if end <= floor {
                    Reason::Acknowledged
                } else if retention.max_age.zip(oldest.last_write()).is_some_and(
                    |(age, written)| now.duration_since(written).unwrap_or_default() > age,
                ) {
                    Reason::MaxAge
                } else if retention.max_bytes.is_some_and(|max| total > max) {
                    Reason::MaxBytes
                } else {
                    break;
                };
            total -= oldest.committed_len();
            if reason != Reason::Acknowledged
                && let Some(slowest) = slowest
            {
                let unacknowledged = end.saturating_sub(slowest.max(oldest.base));
                topic.expired.fetch_add(unacknowledged, Ordering::Relaxed);
            }
            doomed.push((segments.remove(0), reason));
        }
    }
    if doomed.is_empty() {
        return Ok(0);
    }
    for (segment, reason) in &doomed {
        if *reason == Reason::Acknowledged {
            debug!(topic = %topic.name, base = segment.base, "deleting acknowledged segment");
        } else {
            warn!(
                topic = %topic.name,
                base = segment.base,
                ?reason,
                slowest_group_cursor = floor,
                "retention deletes a segment not every group consumed"
            );
        }
        match fs::remove_file(&segment.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    sync_dir(&topic.dir)?;
    Ok(doomed.len())
}
