//! Conversion of a topic written by earlier versions (frame format 1) to format 2.
//!
//! Format 1 frames were `len u32 | crc u32 | payload` with implicit positions: after a damaged
//! frame a reader could not know where the next one began nor which positions it held. A topic
//! directory without a `format` file is in format 1; [`convert`] rewrites each segment with
//! format-2 headers (same payloads) into a temporary file, syncs it and renames it over the
//! original. Converted segments start with the frame magic, so a conversion interrupted by a
//! crash resumes where it stopped; the caller writes the `format` file once every segment is
//! converted. A format-1 segment is read the way format 1 always was: frames up to the first
//! zero length or invalid frame (a torn tail, which format 1 never acknowledged).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use bytes::{BufMut, BytesMut};
use tracing::{info, warn};

use super::segment::{self, MAGIC};
use super::topic::{segment_bases, sync_dir};

const V1_HEADER: usize = 8;

/// Converts every format-1 segment of the topic in `dir` to format 2.
pub fn convert(dir: &Path, topic: &str) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "v2tmp") {
            fs::remove_file(&path)?; // a conversion a crash interrupted before its rename
        }
    }
    for base in segment_bases(dir)? {
        let path = dir.join(segment::file_name(base));
        let data = fs::read(&path)?;
        // Converted before a crash (a format-2 frame anywhere: its first one may be damaged),
        // or empty.
        if data.starts_with(&MAGIC)
            || segment::find_frame(&data, 0, 0).is_some()
            || data.iter().all(|&b| b == 0)
        {
            continue;
        }
        let (frames, events, rest) = convert_frames(&data, base);
        if rest > 0 {
            warn!(%topic, segment = %path.display(), bytes = rest, "format 1: invalid bytes after the last frame are dropped");
        }
        let tmp = path.with_extension("log.v2tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(&frames)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        info!(%topic, segment = %path.display(), events, "converted a segment to frame format 2");
    }
    Ok(())
}

/// The format-2 frames of format-1 `data` whose first event is at `base`; the number of events
/// and of non-zero bytes left after the last valid frame.
fn convert_frames(data: &[u8], base: u64) -> (BytesMut, u64, usize) {
    let mut out = BytesMut::with_capacity(data.len() + data.len() / 8);
    let (mut at, mut position) = (0usize, base);
    while let Some(header) = data.get(at..at + V1_HEADER) {
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().unwrap());
        let Some(payload) = data.get(at + V1_HEADER..at + V1_HEADER + len) else {
            break;
        };
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        let Some(events) = segment::payload_events(payload) else {
            break;
        };
        let start = out.len();
        // Re-framed from the payload's own events, so the payload is byte for byte the same.
        segment::put_frame(&mut out, events.len(), |i, out| out.put_slice(events[i]));
        segment::set_first(&mut out[start..], position);
        position += events.len() as u64;
        at += V1_HEADER + len;
    }
    let rest = data[at..].iter().filter(|&&b| b != 0).count();
    (out, position - base, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_frame(out: &mut Vec<u8>, events: &[&[u8]]) {
        let mut payload = (events.len() as u32).to_le_bytes().to_vec();
        for e in events {
            payload.extend_from_slice(&(e.len() as u32).to_le_bytes());
            payload.extend_from_slice(e);
        }
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
    }

    #[test]
    fn format_1_frames_become_format_2_frames_with_positions() {
        let mut v1 = vec![];
        v1_frame(&mut v1, &[b"a", b"bc"]);
        v1_frame(&mut v1, &[b"d"]);
        v1.extend_from_slice(&[0; 64]);
        let (v2, events, rest) = convert_frames(&v1, 40);
        assert_eq!((events, rest), (3, 0));
        let scan = segment::scan(&v2, 40);
        assert_eq!((scan.valid_len, scan.end), (v2.len() as u64, 43));
        let second = segment::HEADER + 4 + 4 + 1 + 4 + 2;
        assert_eq!(segment::frame_at(&v2, second, 42).map(|(_, n)| n), Some(1));
    }
}
