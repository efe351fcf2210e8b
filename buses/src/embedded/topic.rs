//! A topic on disk: its directory, segments and groups, and recovery when it is opened.
//!
//! Layout: `topics/<file-safe name>/` holds `topic` (the real name), `format` (the frame
//! format, `2`), the segment files and `groups/` (one cursor file per consumer group). A topic directory is built under a temporary
//! name and renamed into place, so a crash never leaves a half-created topic.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::warn;

use super::cursor::{self, Group};
use super::format1;
use super::preallocate::{self, NEXT};
use super::segment::{self, Committed, Segment};

const NAME_FILE: &str = "topic";
const GROUPS: &str = "groups";
/// Present (holding `2`) once a topic's segments are in frame format 2.
const FORMAT_FILE: &str = "format";

/// What readers, retention and the cursor flusher share about a topic.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub dir: PathBuf,
    /// Segments in position order; the last one is the writer's active segment.
    pub segments: Mutex<Vec<Arc<Segment>>>,
    /// Position after the last committed (fsynced) event; subscribers wait on it.
    pub end: watch::Sender<u64>,
    pub groups: Mutex<HashMap<String, Arc<Group>>>,
    /// Set when the bus closes, so waiting subscribers stop instead of waiting forever.
    pub closed: AtomicBool,
    /// Events retention deleted before every group acknowledged them
    /// (`herald_events_expired_total`).
    pub expired: AtomicU64,
    /// Why the writer cannot write now (a full disk, a failed fsync), for readiness.
    write_error: Mutex<Option<String>>,
}

/// The writer's end of a topic: the active segment, open for writing.
#[derive(Debug)]
pub struct Active {
    pub file: File,
    pub segment: Arc<Segment>,
    /// Bytes written and fsynced in the active segment (its logical length; the file is
    /// preallocated and longer).
    pub len: u64,
    /// Size of the file: zeros from `len` up to here.
    pub capacity: u64,
    /// Position of the next event to append.
    pub end: u64,
}

impl Topic {
    pub fn write_error(&self) -> Option<String> {
        self.write_error.lock().unwrap().clone()
    }

    pub fn set_write_error(&self, error: Option<String>) {
        *self.write_error.lock().unwrap() = error;
    }

    pub fn groups_dir(&self) -> PathBuf {
        self.dir.join(GROUPS)
    }
}

/// Creates the directory of a new topic under `topics` and opens it (which preallocates its
/// first segment of `segment_bytes`).
pub fn create(topics: &Path, name: &str, segment_bytes: u64) -> io::Result<(Arc<Topic>, Active)> {
    let dir = topics.join(file_safe(name));
    let tmp = topics.join(format!("{}.tmp", file_safe(name)));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.join(GROUPS))?;
    fs::write(tmp.join(NAME_FILE), name)?;
    fs::write(tmp.join(FORMAT_FILE), "2\n")?;
    File::create(tmp.join(segment::file_name(0)))?;
    for file in [NAME_FILE, FORMAT_FILE, GROUPS] {
        File::open(tmp.join(file))?.sync_all()?;
    }
    sync_dir(&tmp)?;
    fs::rename(&tmp, &dir)?;
    sync_dir(topics)?;
    open(&dir, segment_bytes)
}

/// Opens every topic directory under `topics`, recovering each.
pub fn open_all(topics: &Path, segment_bytes: u64) -> io::Result<Vec<(Arc<Topic>, Active)>> {
    let mut opened = vec![];
    for entry in fs::read_dir(topics)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            let _ = fs::remove_dir_all(&path); // a creation that crashed before its rename
            continue;
        }
        if path.is_dir() {
            opened.push(open(&path, segment_bytes)?);
        }
    }
    Ok(opened)
}

/// Opens an existing topic (converting it from format 1 first if needed). The last segment is
/// checked frame by frame: damaged frames with valid frames after them are kept and logged
/// (readers skip them), and a torn tail (a write that crashed before its fsync, so never
/// acknowledged) is zeroed. Older segments were sealed (cut to their content) after an fsync and
/// are checked as they are read. A group whose cursor lies beyond the end of the log is an
/// error: acknowledged events were lost, and the group would skip the next ones silently.
fn open(dir: &Path, segment_bytes: u64) -> io::Result<(Arc<Topic>, Active)> {
    let name = fs::read_to_string(dir.join(NAME_FILE))?;
    match fs::remove_file(dir.join(NEXT)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {} // a preparation the last run did not finish or use
    }
    if !dir.join(FORMAT_FILE).exists() {
        format1::convert(dir, &name)?;
        write_format(dir)?;
    }
    let groups = cursor::load_all(&dir.join(GROUPS))?;
    let bases = segment_bases(dir)?;
    let Some(&last) = bases.last() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("topic {} has no segment", dir.display()),
        ));
    };
    let mut segments = vec![];
    for pair in bases.windows(2) {
        let path = dir.join(segment::file_name(pair[0]));
        let meta = fs::metadata(&path)?;
        let committed = Committed {
            len: meta.len(),
            end: pair[1],
        };
        let sealed = Segment::new(pair[0], path, committed);
        sealed.seal(meta.modified()?);
        segments.push(Arc::new(sealed));
    }
    let path = dir.join(segment::file_name(last));
    let scan = segment::scan(&segment::read_all(&path)?, last);
    for damage in &scan.damage {
        warn!(
            topic = %name,
            segment = %path.display(),
            offset = damage.offset,
            from = damage.from,
            to = damage.to,
            "damaged frame in the active segment: kept, its positions will be skipped and counted"
        );
    }
    let end = scan.end;
    for group in groups.values() {
        let cursor = group.tracker.committed();
        if cursor > end {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "consumer group {:?} of topic {name:?} has cursor {cursor}, beyond the end of \
                     the log ({end}): events it acknowledged are no longer in {}; starting would \
                     skip the next {} events silently. Restore the data directory, or accept \
                     the loss by deleting {}",
                    group.name(),
                    dir.display(),
                    cursor - end,
                    group.path().display()
                ),
            ));
        }
    }
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let recovered = recover_tail(&file, &scan, segment_bytes)?;
    if recovered.torn > 0 {
        warn!(
            topic = %name,
            segment = %path.display(),
            bytes = recovered.torn,
            "zeroing a torn write at the end of the log"
        );
    }
    let committed = Committed {
        len: scan.valid_len,
        end,
    };
    let active = Arc::new(Segment::new(last, path, committed));
    segments.push(active.clone());
    let topic = Arc::new(Topic {
        name,
        dir: dir.to_owned(),
        segments: Mutex::new(segments),
        end: watch::Sender::new(end),
        groups: Mutex::new(groups),
        closed: AtomicBool::new(false),
        expired: AtomicU64::new(0),
        write_error: Mutex::new(None),
    });
    let active = Active {
        file,
        segment: active,
        len: scan.valid_len,
        capacity: recovered.len,
        end,
    };
    Ok((topic, active))
}

/// The base positions of the segment files in `dir`, sorted.
pub fn segment_bases(dir: &Path) -> io::Result<Vec<u64>> {
    let mut bases = vec![];
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(base) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Marks a topic directory as holding format-2 segments (durably).
fn write_format(dir: &Path) -> io::Result<()> {
    let tmp = dir.join(format!("{FORMAT_FILE}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(b"2\n")?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(FORMAT_FILE))?;
    sync_dir(dir)
}

struct Recovered {
    /// File size afterwards.
    len: u64,
    /// Bytes of a torn write that were zeroed or cut off.
    torn: u64,
}

/// Makes the last segment's file what the writer expects: zeros from the valid prefix to
/// `segment_bytes` (or to the prefix, if longer). Any non-zero byte after the prefix (a torn
/// write: a partial frame, a frame with a bad CRC, or whole frames behind one) is zeroed, so no
/// later, shorter write can leave stale frames readable behind it. A file shorter than
/// `segment_bytes` (a segment written before preallocation, or one cut at a roll that crashed)
/// is extended with zeros. Synced before the writer starts.
fn recover_tail(file: &File, scan: &segment::Scan, segment_bytes: u64) -> io::Result<Recovered> {
    let target = segment_bytes.max(scan.valid_len);
    let dirty = preallocate::dirty_end(file, scan.valid_len, scan.file_len)?;
    let mut len = scan.file_len;
    if len > target {
        file.set_len(target)?;
        len = target;
    }
    if dirty > scan.valid_len {
        preallocate::zero_fill(file, scan.valid_len, dirty.min(len))?;
    }
    if len < target {
        preallocate::zero_fill(file, len, target)?;
        len = target;
    }
    if len != scan.file_len || dirty > scan.valid_len {
        file.sync_all()?;
    }
    Ok(Recovered {
        len,
        torn: dirty - scan.valid_len,
    })
}

/// fsyncs a directory, making the creation, rename or deletion of its entries durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A file name for any topic or group name: bytes outside `[A-Za-z0-9_-]` become `%XX`, and a
/// long name is shortened and made unique with a hash (the real name is stored in the file).
pub fn file_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > 120 {
        out.truncate(100);
        while out.ends_with('%') || out[out.len().saturating_sub(2)..].starts_with('%') {
            out.pop(); // never cut an escape in half
        }
        out.push_str(&format!("~{:016x}", fnv1a(name.as_bytes())));
    }
    out
}

/// FNV-1a: a hash that stays the same across Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_distinct_file_names() {
        assert_eq!(
            file_safe("knative-broker-default-default"),
            "knative-broker-default-default"
        );
        assert_eq!(file_safe("../a b"), "%2E%2E%2Fa%20b");
        let long_a = "a".repeat(300);
        let long_b = format!("{}b", "a".repeat(299));
        assert!(file_safe(&long_a).len() <= 120);
        assert_ne!(file_safe(&long_a), file_safe(&long_b));
        assert!(file_safe(&"é".repeat(100)).len() <= 120);
    }

    #[test]
    fn a_created_topic_reopens_empty_at_position_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (topic, active) = create(dir.path(), "t/1", 4096).unwrap();
        assert_eq!((active.end, active.len, active.capacity), (0, 0, 4096));
        drop((topic, active));
        let opened = open_all(dir.path(), 4096).unwrap();
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].0.name, "t/1");
    }
}
