//! Segment files and the frames inside them.
//!
//! A topic is a sequence of segment files named by the position of their first event
//! (`00000000000000000042.log`). A segment is a sequence of frames, one per published batch so a
//! batch is all or nothing:
//!
//! `len u32 | crc32 u32 | payload (len bytes)` with payload `count u32 | (size u32 | event)*`,
//! little-endian, the CRC over the payload. Positions are implicit: the first event of a frame
//! follows the last event of the frame before it.
//!
//! A segment file is preallocated with zeros (see `preallocate`), so its size says nothing about
//! its content: a zero length field ends the frames. Only the writer writes, and only after a
//! frame is fsynced does it raise the segment's committed length (kept in memory), so readers
//! never see a torn or unsynced frame. A sealed segment is cut to its committed length before
//! the next one becomes durable, so on reopen the size of every segment file but the last is
//! its content. Segments written before preallocation (appended, no zeros) read the same way.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::{BufMut, BytesMut};

pub const HEADER: usize = 8;
const SUFFIX: &str = ".log";

/// Appends one frame of `count` events to `out`; `put(i, out)` appends the encoding of event
/// `i`. Events are encoded straight into the frame: no intermediate copy.
pub fn put_frame(out: &mut BytesMut, count: usize, mut put: impl FnMut(usize, &mut BytesMut)) {
    let start = out.len();
    out.put_bytes(0, HEADER);
    out.put_u32_le(count as u32);
    for i in 0..count {
        let size_at = out.len();
        out.put_u32_le(0);
        put(i, out);
        let size = (out.len() - size_at - 4) as u32;
        out[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
    }
    let payload = &out[start + HEADER..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A frame header: payload length and CRC.
pub fn parse_header(header: &[u8]) -> (usize, u32) {
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().unwrap());
    (len, crc)
}

/// Number of events in a payload whose CRC matched.
pub fn payload_count(payload: &[u8]) -> Option<u64> {
    payload
        .get(0..4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as u64)
}

/// The encoded events of a payload whose CRC matched; `None` if its inner lengths are wrong.
pub fn payload_events(payload: &[u8]) -> Option<Vec<&[u8]>> {
    let count = payload_count(payload)? as usize;
    let mut rest = &payload[4..];
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        let size = u32::from_le_bytes(rest.get(0..4)?.try_into().unwrap()) as usize;
        events.push(rest.get(4..4 + size)?);
        rest = &rest[4 + size..];
    }
    rest.is_empty().then_some(events)
}

pub fn file_name(base: u64) -> String {
    format!("{base:020}{SUFFIX}")
}

/// The base position of a segment file name, `None` for anything else in the directory.
pub fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_suffix(SUFFIX)?.parse().ok()
}

/// One segment file as readers and retention see it.
#[derive(Debug)]
pub struct Segment {
    /// Position of the first event in the segment.
    pub base: u64,
    pub path: PathBuf,
    /// Bytes readers may read: every frame below this length is complete and fsynced.
    committed_len: AtomicU64,
    /// Set once the writer moved to the next segment; `committed_len` is then final.
    sealed: AtomicBool,
    /// When the segment was last written (sealed segments only; for age retention).
    last_write: Mutex<Option<SystemTime>>,
}

impl Segment {
    pub fn new(base: u64, path: PathBuf, committed_len: u64) -> Self {
        Self {
            base,
            path,
            committed_len: AtomicU64::new(committed_len),
            sealed: AtomicBool::new(false),
            last_write: Mutex::new(None),
        }
    }

    pub fn committed_len(&self) -> u64 {
        self.committed_len.load(Ordering::Acquire)
    }

    pub fn set_committed_len(&self, len: u64) {
        self.committed_len.store(len, Ordering::Release);
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub fn seal(&self, last_write: SystemTime) {
        *self.last_write.lock().unwrap() = Some(last_write);
        self.sealed.store(true, Ordering::Release);
    }

    pub fn last_write(&self) -> Option<SystemTime> {
        *self.last_write.lock().unwrap()
    }
}

/// What recovery found in a segment file.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    /// Length of the prefix made of whole frames with matching CRCs.
    pub valid_len: u64,
    /// Events in that prefix.
    pub events: u64,
    /// Size of the file: zeros (preallocated) or a torn write may follow the valid prefix.
    pub file_len: u64,
}

/// Reads a segment frame by frame, checking every CRC, and stops at a zero length (the
/// preallocated rest) or at the first frame that is incomplete or does not match: everything
/// from there on is zeros or a torn write.
pub fn scan(path: &Path) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut valid_len = 0u64;
    let mut events = 0u64;
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    loop {
        if valid_len + HEADER as u64 > file_len {
            break;
        }
        reader.read_exact(&mut header)?;
        let (len, crc) = parse_header(&header);
        if len == 0 || valid_len + (HEADER + len) as u64 > file_len {
            break;
        }
        payload.resize(len, 0);
        reader.read_exact(&mut payload)?;
        if crc32fast::hash(&payload) != crc || payload_events(&payload).is_none() {
            break;
        }
        events += payload_count(&payload).unwrap_or(0);
        valid_len += (HEADER + len) as u64;
    }
    Ok(Scan {
        valid_len,
        events,
        file_len,
    })
}

/// Finds the frame holding position `target` in a segment, reading headers only, within the
/// first `limit` bytes. Returns the byte offset and first position of that frame, or of the end
/// of the committed data when `target` lies beyond it.
pub fn seek(file: &File, base: u64, limit: u64, target: u64) -> io::Result<(u64, u64)> {
    let mut pos = 0u64;
    let mut first = base;
    let mut header = [0u8; HEADER + 4];
    while pos + (HEADER as u64) < limit {
        file.read_exact_at(&mut header, pos)?;
        let (len, _) = parse_header(&header);
        let count = payload_count(&header[HEADER..]).unwrap_or(0);
        if first + count > target {
            break;
        }
        first += count;
        pos += (HEADER + len) as u64;
    }
    Ok((pos.min(limit), first))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn frame_of(out: &mut BytesMut, events: &[&[u8]]) {
        put_frame(out, events.len(), |i, out| out.put_slice(events[i]));
    }

    #[test]
    fn a_frame_round_trips_its_events() {
        let mut out = BytesMut::new();
        frame_of(&mut out, &[b"abc", b"", b"de"]);
        let (len, crc) = parse_header(&out);
        let payload = &out[HEADER..];
        assert_eq!(len, payload.len());
        assert_eq!(crc, crc32fast::hash(payload));
        assert_eq!(
            payload_events(payload).unwrap(),
            vec![&b"abc"[..], &b""[..], &b"de"[..]]
        );
    }

    #[test]
    fn file_names_sort_by_base_position() {
        assert_eq!(file_name(42), "00000000000000000042.log");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("42.tmp"), None);
        assert!(file_name(9) < file_name(10));
    }

    #[test]
    fn scan_stops_at_a_torn_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(0));
        let mut data = BytesMut::new();
        frame_of(&mut data, &[b"one"]);
        frame_of(&mut data, &[b"two", b"three"]);
        let whole = data.len() as u64;
        frame_of(&mut data, &[b"four"]);
        data.truncate(data.len() - 2);
        std::fs::write(&path, &data).unwrap();
        let scan = scan(&path).unwrap();
        assert_eq!(scan.valid_len, whole);
        assert_eq!(scan.events, 3);
        assert_eq!(scan.file_len, data.len() as u64);
    }

    #[test]
    fn scan_stops_at_the_zeros_after_the_last_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(0));
        let mut data = BytesMut::new();
        frame_of(&mut data, &[b"one"]);
        frame_of(&mut data, &[b"two", b"three"]);
        let whole = data.len() as u64;
        data.put_bytes(0, 4096);
        std::fs::write(&path, &data).unwrap();
        let scan = scan(&path).unwrap();
        assert_eq!((scan.valid_len, scan.events), (whole, 3));
    }
}
