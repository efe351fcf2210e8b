//! Segment files and the frames inside them.
//!
//! A topic is a sequence of segment files named by the position of their first event
//! (`00000000000000000042.log`). A segment is a sequence of frames, one per published batch so a
//! batch is all or nothing. A frame (format 2, little-endian):
//!
//! `magic [4] | len u32 | first u64 | payload crc32 u32 | header crc32 u32 | payload (len bytes)`
//!
//! with payload `count u32 | (size u32 | event)*`. `first` is the position of the frame's first
//! event (the writer sets it when it assigns positions). The header CRC covers the 20 bytes
//! before it, so a damaged length or position is detected before it is believed; the magic lets
//! a reader find the next frame after a damaged one: the first offset holding the magic, a
//! matching header CRC, a matching payload CRC and a `first` no lower than expected is the next
//! frame, and the positions between are the damaged frame's (see [`find_frame`]).
//!
//! A segment file is preallocated with zeros (see `preallocate`), so its size says nothing about
//! its content: a frame must start with the magic, and the zeros after the last frame do not.
//! Only the writer writes, and only after a frame is fsynced does it raise the segment's
//! committed length and end position (kept in memory), so readers never see a torn or unsynced
//! frame. A sealed segment is cut to its committed length before the next one becomes durable,
//! so on reopen the size of every segment file but the last is its content.
//!
//! Format 1 (earlier versions: `len u32 | crc u32 | payload`, positions implicit) could not be
//! resynchronised after a damaged frame; a topic in format 1 is converted when opened (see
//! `topic`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use bytes::{BufMut, BytesMut};

/// Bytes before a frame's payload.
pub const HEADER: usize = 24;
/// The first bytes of every frame. As a format-1 length it would be over 4 GB, which no format-1
/// frame reached, so the two formats cannot be confused.
pub const MAGIC: [u8; 4] = [0xF7, b'H', b'L', b'F'];
const SUFFIX: &str = ".log";

/// Appends one frame of `count` events to `out`; `put(i, out)` appends the encoding of event
/// `i`. Events are encoded straight into the frame: no intermediate copy. Its first position
/// is 0 until [`set_first`] sets it.
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
    let header = &mut out[start..start + HEADER];
    header[0..4].copy_from_slice(&MAGIC);
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    set_first(header, 0);
}

/// Sets the position of the first event of the frame starting at `frame[0]` (and its header
/// CRC).
pub fn set_first(frame: &mut [u8], first: u64) {
    frame[8..16].copy_from_slice(&first.to_le_bytes());
    let crc = crc32fast::hash(&frame[0..20]);
    frame[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// A frame header whose magic and header CRC checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload length.
    pub len: usize,
    /// Position of the frame's first event.
    pub first: u64,
    /// CRC of the payload.
    pub crc: u32,
}

impl Header {
    pub fn frame_len(&self) -> u64 {
        (HEADER + self.len) as u64
    }
}

/// The header at the start of `bytes`, if it is one (magic and header CRC match).
pub fn parse_header(bytes: &[u8]) -> Option<Header> {
    let header = bytes.get(..HEADER)?;
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
    if header[0..4] != MAGIC || crc32fast::hash(&header[0..20]) != word(20) {
        return None;
    }
    Some(Header {
        len: word(4) as usize,
        first: u64::from_le_bytes(header[8..16].try_into().unwrap()),
        crc: word(16),
    })
}

/// The encoded events of a payload, if its CRC matches `header` and its inner lengths add up.
pub fn checked_events<'a>(header: &Header, payload: &'a [u8]) -> Option<Vec<&'a [u8]>> {
    if crc32fast::hash(payload) != header.crc {
        return None;
    }
    payload_events(payload)
}

/// The encoded events of a payload; `None` if its inner lengths are wrong or it holds none.
pub fn payload_events(payload: &[u8]) -> Option<Vec<&[u8]>> {
    let count = u32::from_le_bytes(payload.get(0..4)?.try_into().unwrap()) as usize;
    let mut rest = &payload[4..];
    let mut events = Vec::with_capacity(count.min(rest.len() / 4));
    for _ in 0..count {
        let size = u32::from_le_bytes(rest.get(0..4)?.try_into().unwrap()) as usize;
        events.push(rest.get(4..4 + size)?);
        rest = &rest[4 + size..];
    }
    (rest.is_empty() && count > 0).then_some(events)
}

/// The whole, valid frame at `data[at..]` whose first position is `expected`: its header and
/// event count.
pub fn frame_at(data: &[u8], at: usize, expected: u64) -> Option<(Header, u64)> {
    let header = parse_header(data.get(at..)?)?;
    if header.first != expected {
        return None;
    }
    let payload = data.get(at + HEADER..at + HEADER + header.len)?;
    let events = checked_events(&header, payload)?;
    Some((header, events.len() as u64))
}

/// The first valid frame at or after `data[from..]` whose first position is at least
/// `min_first`: where to read on after a damaged frame. A stale or damaged candidate (wrong
/// header CRC, wrong payload CRC, a position behind) is passed over, so a damaged length field
/// cannot send the reader astray.
pub fn find_frame(data: &[u8], from: usize, min_first: u64) -> Option<(usize, Header)> {
    let mut at = from;
    while at + HEADER <= data.len() {
        let found = data[at..].windows(MAGIC.len()).position(|w| w == MAGIC)?;
        at += found;
        if let Some(header) = parse_header(&data[at..])
            && header.first >= min_first
            && let Some(payload) = data.get(at + HEADER..at + HEADER + header.len)
            && checked_events(&header, payload).is_some()
        {
            return Some((at, header));
        }
        at += 1;
    }
    None
}

pub fn file_name(base: u64) -> String {
    format!("{base:020}{SUFFIX}")
}

/// The base position of a segment file name, `None` for anything else in the directory.
pub fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_suffix(SUFFIX)?.parse().ok()
}

/// What a segment holds for readers: every frame below `len` is complete and fsynced, and its
/// events end at position `end`. Kept together, so a reader that finds damaged frames at the
/// end knows which positions they held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub len: u64,
    pub end: u64,
}

/// One segment file as readers and retention see it.
#[derive(Debug)]
pub struct Segment {
    /// Position of the first event in the segment.
    pub base: u64,
    pub path: PathBuf,
    committed: Mutex<Committed>,
    /// Set once the writer moved to the next segment; `committed` is then final.
    sealed: AtomicBool,
    /// When the segment was last written (sealed segments only; for age retention).
    last_write: Mutex<Option<SystemTime>>,
}

impl Segment {
    pub fn new(base: u64, path: PathBuf, committed: Committed) -> Self {
        Self {
            base,
            path,
            committed: Mutex::new(committed),
            sealed: AtomicBool::new(false),
            last_write: Mutex::new(None),
        }
    }

    pub fn committed(&self) -> Committed {
        *self.committed.lock().unwrap()
    }

    pub fn committed_len(&self) -> u64 {
        self.committed().len
    }

    pub fn set_committed(&self, committed: Committed) {
        *self.committed.lock().unwrap() = committed;
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

/// Damaged bytes followed by a valid frame: the positions `from..to` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset of the damage in its segment.
    pub offset: u64,
    pub from: u64,
    pub to: u64,
}

/// What recovery found in a segment file.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    /// End of the last valid frame: what follows is zeros (preallocated) or a torn write.
    pub valid_len: u64,
    /// Position after the last event of the last valid frame (the base if there is none).
    pub end: u64,
    /// Damaged frames with valid frames after them: kept (never zeroed), skipped by readers.
    pub damage: Vec<Damage>,
    /// Size of the file.
    pub file_len: u64,
}

/// Reads a segment whose first event is at `base`, checking every frame. A frame that does not
/// check is damage if a valid frame follows it (see [`find_frame`]); otherwise it and
/// everything after it are the tail: zeros or a torn write.
pub fn scan(data: &[u8], base: u64) -> Scan {
    let (mut at, mut end, mut valid_len) = (0usize, base, 0u64);
    let mut damage = vec![];
    loop {
        if let Some((header, count)) = frame_at(data, at, end) {
            at += HEADER + header.len;
            end += count;
            valid_len = at as u64;
            continue;
        }
        let Some((next, header)) = find_frame(data, at, end) else {
            break;
        };
        damage.push(Damage {
            offset: at as u64,
            from: end,
            to: header.first,
        });
        (at, end) = (next, header.first);
    }
    Scan {
        valid_len,
        end,
        damage,
        file_len: data.len() as u64,
    }
}

/// Finds where to start reading position `target` in a segment whose first event is at `base`,
/// reading headers only, within the first `limit` bytes: the byte offset and first position of
/// the last frame starting at or before `target`, as far as headers check. A reader starting
/// there meets any damage on the way and reads past it.
pub fn seek(file: &File, base: u64, limit: u64, target: u64) -> io::Result<(u64, u64)> {
    let (mut found, mut at) = ((0u64, base), 0u64);
    let mut bytes = [0u8; HEADER];
    while at + (HEADER as u64) <= limit {
        file.read_exact_at(&mut bytes, at)?;
        match parse_header(&bytes) {
            Some(header) if header.first <= target && header.first >= found.1 => {
                found = (at, header.first);
                at += header.frame_len();
            }
            _ => break,
        }
    }
    Ok(found)
}

/// Reads `from..to` of a file.
pub fn read_range(file: &File, from: u64, to: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; (to - from) as usize];
    file.read_exact_at(&mut buf, from)?;
    Ok(buf)
}

/// Reads a whole segment file.
pub fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends one frame of `events` starting at position `first`.
    pub fn frame_of(out: &mut BytesMut, first: u64, events: &[&[u8]]) {
        let start = out.len();
        put_frame(out, events.len(), |i, out| out.put_slice(events[i]));
        set_first(&mut out[start..], first);
    }

    #[test]
    fn a_frame_round_trips_its_events_and_position() {
        let mut out = BytesMut::new();
        frame_of(&mut out, 7, &[b"abc", b"", b"de"]);
        let header = parse_header(&out).unwrap();
        assert_eq!((header.len, header.first), (out.len() - HEADER, 7));
        assert_eq!(
            checked_events(&header, &out[HEADER..]).unwrap(),
            vec![&b"abc"[..], &b""[..], &b"de"[..]]
        );
        assert_eq!(frame_at(&out, 0, 7).map(|(_, n)| n), Some(3));
        assert_eq!(frame_at(&out, 0, 6), None, "not where it was expected");
    }

    #[test]
    fn a_damaged_length_fails_the_header_check() {
        let mut out = BytesMut::new();
        frame_of(&mut out, 0, &[b"abc"]);
        out[5] ^= 0x10;
        assert_eq!(parse_header(&out), None);
    }

    #[test]
    fn file_names_sort_by_base_position() {
        assert_eq!(file_name(42), "00000000000000000042.log");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("42.tmp"), None);
        assert!(file_name(9) < file_name(10));
    }

    #[test]
    fn scan_stops_at_a_torn_frame_and_the_zeros_after_it() {
        let mut data = BytesMut::new();
        frame_of(&mut data, 10, &[b"one"]);
        frame_of(&mut data, 11, &[b"two", b"three"]);
        let whole = data.len() as u64;
        frame_of(&mut data, 13, &[b"four"]);
        data.truncate(data.len() - 2);
        data.put_bytes(0, 4096);
        let scan = scan(&data, 10);
        assert_eq!((scan.valid_len, scan.end), (whole, 13));
        assert!(scan.damage.is_empty());
        assert_eq!(scan.file_len, data.len() as u64);
    }

    #[test]
    fn scan_reads_past_a_damaged_frame_followed_by_valid_ones() {
        let mut data = BytesMut::new();
        frame_of(&mut data, 0, &[b"one"]);
        let damaged_at = data.len();
        frame_of(&mut data, 1, &[b"two", b"three"]);
        frame_of(&mut data, 3, &[b"four"]);
        let whole = data.len() as u64;
        data.put_bytes(0, 100);
        for flip in [damaged_at + 5, damaged_at + 9, damaged_at + HEADER + 6] {
            let mut copy = data.clone();
            copy[flip] ^= 0x04; // the length, the position, the payload
            let scan = scan(&copy, 0);
            assert_eq!((scan.valid_len, scan.end), (whole, 4), "flip at {flip}");
            assert_eq!(
                scan.damage,
                [Damage {
                    offset: damaged_at as u64,
                    from: 1,
                    to: 3
                }]
            );
        }
    }

    #[test]
    fn find_frame_passes_over_stale_frames() {
        let mut data = BytesMut::new();
        frame_of(&mut data, 5, &[b"stale"]);
        let at = data.len();
        frame_of(&mut data, 9, &[b"fresh"]);
        assert_eq!(
            find_frame(&data, 0, 6).map(|(o, h)| (o, h.first)),
            Some((at, 9))
        );
        assert_eq!(find_frame(&data, at + 1, 0), None);
    }
}
