//! Remembers `X-GitHub-Delivery` ids for a window so a redelivery is answered `2xx` and not
//! emitted twice, across restarts.
//!
//! The log is one append-only file per source, `{dir}/{namespace}_{name}.deliveries`, a line
//! `"{unix_millis} {id} {crc32}"` per emitted delivery, fsynced before the id counts as
//! delivered. It is bounded: entries older than the window are dropped when the file is opened
//! and as new ones arrive, at most `capacity` ids are kept (oldest dropped first), and the file
//! is rewritten (atomically) once it holds twice as many lines as live entries.
//!
//! Damage: a last line without its newline is an append cut short by a crash (the id was never
//! confirmed, so GitHub's redelivery is emitted: nothing lost) and is dropped quietly. Any other
//! line that does not parse or fails its checksum is corrupt: it is dropped (that id, if it was
//! one, may be emitted once more on a redelivery: a duplicate, never a loss), the damaged file is
//! kept as `{name}.corrupt`, and the open logs the path and line numbers.
//!
//! Threads: [`DeliveryLog::open`] and [`Claim::commit`] are async and do their file I/O on the
//! blocking pool; [`DeliveryLog::claim`] touches memory only. The file has its own lock, so an
//! fsync in progress never holds up a `claim` on an async worker.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::state::{self, StateError};

/// Default bound on remembered ids per source (about 100 bytes each in memory).
pub const DEFAULT_CAPACITY: usize = 200_000;

#[derive(Debug)]
pub struct DeliveryLog {
    path: PathBuf,
    window_ms: i64,
    capacity: usize,
    /// Locked briefly, on async workers too.
    memory: Mutex<Memory>,
    /// Locked on the blocking pool only, before `memory` when both are needed.
    file: Mutex<Appender>,
}

#[derive(Debug)]
struct Memory {
    seen: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
    in_flight: HashSet<String>,
}

#[derive(Debug)]
struct Appender {
    #[allow(clippy::disallowed_types, reason = "only used on the blocking pool")]
    file: std::fs::File,
    lines: usize,
}

/// The answer of [`DeliveryLog::claim`].
#[derive(Debug)]
pub enum Seen {
    /// Not seen: emit it, then [`Claim::commit`]. Dropping the claim forgets it.
    New(Claim),
    /// Emitted within the window: answer `2xx`, emit nothing.
    Delivered,
    /// Another request with this id is being handled now: answer `503` so GitHub's redelivery
    /// (or the operator) tries again rather than losing it if that request fails.
    InFlight,
}

/// A delivery id reserved by one request until it is committed or dropped.
#[derive(Debug)]
pub struct Claim {
    log: Arc<DeliveryLog>,
    id: String,
    done: bool,
}

/// What reading the file found.
struct Read {
    entries: Vec<(i64, String)>,
    /// 1-based numbers of corrupt lines (not counting a torn last one).
    corrupt: Vec<usize>,
    torn: bool,
}

fn line(ms: i64, id: &str) -> String {
    let entry = format!("{ms} {id}");
    format!("{entry} {:08x}\n", crc32fast::hash(entry.as_bytes()))
}

/// An id the line format can hold: no whitespace, no control characters, not empty.
fn storable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic())
}

fn parse_line(text: &str) -> Option<(i64, String)> {
    let mut parts = text.split(' ');
    let (ms, id) = (parts.next()?, parts.next()?);
    match parts.next() {
        // Written before lines carried a checksum.
        None => {}
        Some(crc) => {
            let crc = u32::from_str_radix(crc, 16).ok()?;
            if parts.next().is_some() || crc32fast::hash(format!("{ms} {id}").as_bytes()) != crc {
                return None;
            }
        }
    }
    storable(id).then_some((ms.parse().ok()?, id.to_owned()))
}

fn parse(text: &str) -> Read {
    let mut read = Read {
        entries: Vec::new(),
        corrupt: Vec::new(),
        torn: false,
    };
    for (n, raw) in text.split_inclusive('\n').enumerate() {
        let Some(body) = raw.strip_suffix('\n') else {
            // Only the last piece can lack its newline: an append cut short.
            read.torn = true;
            continue;
        };
        match parse_line(body) {
            Some(entry) => read.entries.push(entry),
            None => read.corrupt.push(n + 1),
        }
    }
    read
}

impl DeliveryLog {
    /// Opens (or creates) the log of one source and drops entries older than `window`; the
    /// file work runs on the blocking pool.
    pub async fn open(
        dir: &Path,
        namespace: &str,
        name: &str,
        window: Duration,
        capacity: usize,
        now: DateTime<Utc>,
    ) -> Result<Arc<Self>, StateError> {
        let path = dir.join(state::file_name(namespace, name, "deliveries"));
        let (dir, owned) = (dir.to_owned(), path.clone());
        state::blocking(&path, move || {
            Self::open_blocking(&dir, owned, window, capacity, now)
        })
        .await
    }

    #[allow(
        clippy::disallowed_methods,
        clippy::disallowed_types,
        reason = "runs on the blocking pool, called through `state::blocking`"
    )]
    fn open_blocking(
        dir: &Path,
        path: PathBuf,
        window: Duration,
        capacity: usize,
        now: DateTime<Utc>,
    ) -> Result<Arc<Self>, StateError> {
        let err = |e: std::io::Error| StateError::Io {
            path: path.clone(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.timestamp_millis().saturating_sub(window_ms);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(err(e)),
        };
        // Invalid UTF-8 can only be damage; it fails the lines it is in.
        let read = parse(&String::from_utf8_lossy(&bytes));
        if read.torn {
            tracing::info!(path = %path.display(), "delivery log ended in a line cut short (a crash mid-append): dropped");
        }
        if !read.corrupt.is_empty() {
            let moved_to = state::quarantine_path(&path);
            state::write_atomically(&moved_to, &bytes).map_err(err)?;
            tracing::error!(
                path = %path.display(),
                moved_to = %moved_to.display(),
                lines = ?read.corrupt,
                "delivery log has corrupt lines: dropped (those ids may be emitted once more on a redelivery); the damaged file is kept"
            );
        }
        let mut entries: Vec<(i64, String)> = read
            .entries
            .into_iter()
            .filter(|(ms, _)| *ms > cutoff)
            .collect();
        entries.sort();
        if entries.len() > capacity {
            entries.drain(..entries.len() - capacity);
        }
        let body: String = entries.iter().map(|(ms, id)| line(*ms, id)).collect();
        state::write_atomically(&path, body.as_bytes()).map_err(err)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(err)?;
        let seen = entries.iter().map(|(ms, id)| (id.clone(), *ms)).collect();
        let lines = entries.len();
        Ok(Arc::new(Self {
            path,
            window_ms,
            capacity,
            memory: Mutex::new(Memory {
                seen,
                order: entries.into(),
                in_flight: HashSet::new(),
            }),
            file: Mutex::new(Appender { file, lines }),
        }))
    }

    /// Whether `id` was emitted within the window before `now`, or is being handled. Memory
    /// only: safe on an async worker.
    pub fn claim(self: &Arc<Self>, id: &str, now: DateTime<Utc>) -> Seen {
        let mut memory = self.memory();
        let cutoff = now.timestamp_millis().saturating_sub(self.window_ms);
        if memory.seen.get(id).is_some_and(|ms| *ms > cutoff) {
            return Seen::Delivered;
        }
        if !memory.in_flight.insert(id.to_owned()) {
            return Seen::InFlight;
        }
        Seen::New(Claim {
            log: Arc::clone(self),
            id: id.to_owned(),
            done: false,
        })
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.memory().seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().expect("delivery log lock poisoned")
    }

    /// Appends and fsyncs the id, then remembers it. Blocking: runs on the blocking pool.
    #[allow(
        clippy::disallowed_methods,
        clippy::disallowed_types,
        reason = "runs on the blocking pool, from `Claim::commit`"
    )]
    fn record(&self, id: &str, now: DateTime<Utc>) -> Result<(), StateError> {
        let err = |e: std::io::Error| StateError::Io {
            path: self.path.clone(),
            source: e,
        };
        if !storable(id) {
            return Err(err(std::io::Error::other(format!(
                "delivery id {id:?} cannot be stored"
            ))));
        }
        let mut appender = self.file.lock().expect("delivery log file lock poisoned");
        let ms = now.timestamp_millis();
        appender
            .file
            .write_all(line(ms, id).as_bytes())
            .map_err(err)?;
        appender.file.sync_data().map_err(err)?;
        appender.lines += 1;
        let rewrite = {
            let mut memory = self.memory();
            memory.seen.insert(id.to_owned(), ms);
            memory.order.push_back((ms, id.to_owned()));
            let cutoff = ms.saturating_sub(self.window_ms);
            while let Some((old_ms, _)) = memory.order.front() {
                if *old_ms > cutoff && memory.order.len() <= self.capacity {
                    break;
                }
                let (old_ms, old_id) = memory.order.pop_front().expect("front exists");
                // Only forget the id if this entry is its latest record.
                if memory.seen.get(&old_id) == Some(&old_ms) {
                    memory.seen.remove(&old_id);
                }
            }
            (appender.lines > 2 * memory.order.len() + 1024).then(|| {
                let body: String = memory.order.iter().map(|(ms, id)| line(*ms, id)).collect();
                (body, memory.order.len())
            })
        };
        // Appends wait for the file lock, so the snapshot cannot miss one.
        if let Some((body, lines)) = rewrite {
            state::write_atomically(&self.path, body.as_bytes()).map_err(err)?;
            appender.file = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(err)?;
            appender.lines = lines;
        }
        Ok(())
    }
}

impl Claim {
    /// Records the id as delivered (durably, on the blocking pool) once the sink accepted the
    /// event. The claim is released however the call ends, even if this future is dropped.
    pub async fn commit(self, now: DateTime<Utc>) -> Result<(), StateError> {
        let path = self.log.path.clone();
        state::blocking(&path, move || self.commit_blocking(now)).await
    }

    fn commit_blocking(mut self, now: DateTime<Utc>) -> Result<(), StateError> {
        let result = self.log.record(&self.id, now);
        // Set only now: if `record` panics, `drop` still releases the claim.
        self.done = true;
        self.release();
        result
    }

    fn release(&self) {
        self.log.memory().in_flight.remove(&self.id);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.done {
            self.release();
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests damage files directly to simulate crashes and bit flips"
)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    async fn open(dir: &Path, now: DateTime<Utc>) -> Arc<DeliveryLog> {
        DeliveryLog::open(dir, "ns", "gh", Duration::from_secs(3600), 1000, now)
            .await
            .unwrap()
    }

    async fn deliver(log: &Arc<DeliveryLog>, id: &str, now: DateTime<Utc>) {
        let Seen::New(claim) = log.claim(id, now) else {
            panic!("{id} is new")
        };
        claim.commit(now).await.unwrap();
    }

    #[tokio::test]
    async fn committed_delivery_is_recognised_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), t(0)).await;
        deliver(&log, "a-1", t(0)).await;
        assert!(matches!(log.claim("a-1", t(10)), Seen::Delivered));
        drop(log);
        let log = open(dir.path(), t(20)).await;
        assert!(matches!(log.claim("a-1", t(20)), Seen::Delivered));
    }

    #[tokio::test]
    async fn dropped_claim_forgets_the_id_and_concurrent_claims_are_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), t(0)).await;
        let first = log.claim("x", t(0));
        assert!(matches!(log.claim("x", t(0)), Seen::InFlight));
        drop(first);
        assert!(matches!(log.claim("x", t(0)), Seen::New(_)));
    }

    #[tokio::test]
    async fn ids_older_than_the_window_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), t(0)).await;
        deliver(&log, "old", t(0)).await;
        assert!(matches!(log.claim("old", t(3601)), Seen::New(_)));
        drop(log);
        let log = open(dir.path(), t(4000)).await;
        assert!(log.is_empty(), "pruned on open");
    }

    #[tokio::test]
    async fn the_log_keeps_at_most_capacity_ids() {
        let dir = tempfile::tempdir().unwrap();
        let log = DeliveryLog::open(dir.path(), "ns", "gh", Duration::from_secs(3600), 3, t(0))
            .await
            .unwrap();
        for i in 0..5 {
            deliver(&log, &format!("id{i}"), t(i)).await;
        }
        assert_eq!(log.len(), 3);
        assert!(matches!(log.claim("id0", t(6)), Seen::New(_)));
        assert!(matches!(log.claim("id4", t(6)), Seen::Delivered));
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored_and_lines_without_a_checksum_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns_gh.deliveries");
        let ms = t(0).timestamp_millis();
        // A line from before checksums, then an append cut short.
        std::fs::write(&path, format!("{ms} good\n{ms} goo")).unwrap();
        let log = open(dir.path(), t(1)).await;
        assert_eq!(log.len(), 1);
        assert!(matches!(log.claim("good", t(1)), Seen::Delivered));
        assert!(matches!(log.claim("goo", t(1)), Seen::New(_)));
        assert!(
            !state::quarantine_path(&path).exists(),
            "a torn tail is not damage"
        );
    }

    #[tokio::test]
    async fn a_flipped_bit_drops_only_its_line_and_keeps_the_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), t(0)).await;
        for id in ["first", "second", "third"] {
            deliver(&log, id, t(0)).await;
        }
        drop(log);
        let path = dir.path().join("ns_gh.deliveries");
        let mut bytes = std::fs::read(&path).unwrap();
        // "second" -> "sebond": the line still parses, only its checksum tells.
        let at = bytes.windows(6).position(|w| w == b"second").unwrap() + 2;
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();

        let log = open(dir.path(), t(1)).await;
        assert!(matches!(log.claim("first", t(1)), Seen::Delivered));
        assert!(matches!(log.claim("third", t(1)), Seen::Delivered));
        // Forgotten, so a redelivery is emitted again (a duplicate, never a loss), and the
        // damaged value is not taken for an id.
        assert!(matches!(log.claim("second", t(1)), Seen::New(_)));
        assert!(matches!(log.claim("sebond", t(1)), Seen::New(_)));
        assert_eq!(
            std::fs::read(state::quarantine_path(&path)).unwrap(),
            bytes,
            "the damaged file is kept"
        );
        // The rewritten log is clean: a second open finds nothing to complain about.
        drop(log);
        std::fs::remove_file(state::quarantine_path(&path)).unwrap();
        let log = open(dir.path(), t(2)).await;
        assert_eq!(log.len(), 2);
        assert!(!state::quarantine_path(&path).exists());
    }

    #[tokio::test]
    async fn garbage_in_the_file_does_not_stop_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns_gh.deliveries");
        std::fs::write(&path, b"\xff\xfe\0\0 \n\n12 a b c d\nnot-a-number id\n").unwrap();
        let log = open(dir.path(), t(0)).await;
        assert!(log.is_empty());
        deliver(&log, "after", t(0)).await;
        drop(log);
        let log = open(dir.path(), t(1)).await;
        assert!(matches!(log.claim("after", t(1)), Seen::Delivered));
    }

    #[tokio::test]
    async fn an_id_the_line_format_cannot_hold_is_refused_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), t(0)).await;
        let Seen::New(claim) = log.claim("a b\n1 forged", t(0)) else {
            panic!()
        };
        assert!(claim.commit(t(0)).await.is_err());
        drop(log);
        let log = open(dir.path(), t(1)).await;
        assert!(log.is_empty());
    }
}
