//! The CRC scan of sealed segments at open: a thread of its own reads every sealed segment
//! once, checking every frame, and logs the damage it finds (topic, segment, byte offset and
//! the positions that will be skipped), so an operator learns of a flipped bit at start rather
//! than when a trigger reaches it. It changes nothing: readers skip and count damaged frames
//! whenever they meet them, scan or not, and the scan never delays readiness (it would read
//! every retained byte first). Retention may delete a segment under it; that is no damage.

use std::io;
use std::sync::Arc;

use tracing::{info, warn};

use super::segment::{self, Segment};
use super::topic::Topic;

/// Starts the scan of every segment of `topics` that is sealed now.
pub fn spawn(topics: Vec<Arc<Topic>>) {
    let sealed: Vec<(String, Arc<Segment>, u64)> = topics
        .iter()
        .flat_map(|topic| {
            let segments = topic.segments.lock().unwrap();
            segments
                .windows(2)
                .filter(|pair| pair[0].is_sealed())
                .map(|pair| (topic.name.clone(), pair[0].clone(), pair[1].base))
                .collect::<Vec<_>>()
        })
        .collect();
    if sealed.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("herald-bus-scrub".into())
        .spawn(move || scan_all(&sealed));
    if let Err(e) = spawned {
        warn!(error = %e, "no thread for the scan of sealed segments; damage is found when read");
    }
}

fn scan_all(sealed: &[(String, Arc<Segment>, u64)]) {
    let mut damaged = 0usize;
    for (topic, segment, next_base) in sealed {
        match scan_one(topic, segment, *next_base) {
            Ok(found) => damaged += found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // deleted by retention meanwhile
            Err(e) => warn!(%topic, segment = %segment.path.display(), error = %e,
                "sealed segment not scanned"),
        }
    }
    info!(
        segments = sealed.len(),
        damaged, "sealed segments scanned at open"
    );
}

/// Logs each damaged stretch of one sealed segment; returns how many it found.
fn scan_one(topic: &str, segment: &Segment, next_base: u64) -> io::Result<usize> {
    let data = segment::read_all(&segment.path)?;
    let scan = segment::scan(&data, segment.base);
    for damage in &scan.damage {
        warn!(%topic, segment = %segment.path.display(), offset = damage.offset,
            from = damage.from, to = damage.to,
            "damaged frame in a sealed segment: its positions will be skipped and counted");
    }
    // The segment's last frames may be damaged too: what ends before the next segment begins.
    let tail = scan.end < next_base;
    if tail {
        warn!(%topic, segment = %segment.path.display(), offset = scan.valid_len,
            from = scan.end, to = next_base,
            "damaged end of a sealed segment: its positions will be skipped and counted");
    }
    Ok(scan.damage.len() + usize::from(tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::segment::Committed;
    use bytes::BufMut;

    fn frame_of(out: &mut bytes::BytesMut, first: u64, events: &[&[u8]]) {
        let start = out.len();
        segment::put_frame(out, events.len(), |i, out| out.put_slice(events[i]));
        segment::set_first(&mut out[start..], first);
    }

    #[test]
    fn damage_in_a_sealed_segment_is_found_and_its_tail_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = bytes::BytesMut::new();
        for first in [10u64, 11, 12] {
            frame_of(&mut data, first, &[b"event"]);
        }
        let one_frame = data.len() / 3;
        // A flipped bit in the middle frame: damage with a valid frame after it.
        data[one_frame + segment::HEADER + 1] ^= 0x10;
        let path = dir.path().join(segment::file_name(10));
        std::fs::write(&path, &data).unwrap();
        let sealed = Segment::new(
            10,
            path,
            Committed {
                len: data.len() as u64,
                end: 13,
            },
        );
        assert_eq!(scan_one("t", &sealed, 13).unwrap(), 1);
        // The next segment starting later than this one's last frame: a damaged end.
        assert_eq!(scan_one("t", &sealed, 14).unwrap(), 2);
    }
}
