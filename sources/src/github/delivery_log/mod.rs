//! Remembers `X-GitHub-Delivery` ids for a window so a redelivery is answered `2xx` and not
//! emitted twice, across restarts. A delivery may be claimed under several keys at once
//! ([`DeliveryLog::claim_all`]: its id and its signature), each recorded as its own line.
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

/// The keys of one delivery reserved by one request until they are committed or dropped.
#[derive(Debug)]
pub struct Claim {
    log: Arc<DeliveryLog>,
    ids: Vec<String>,
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
        self.claim_all(&[id], now)
    }

    /// Like [`DeliveryLog::claim`] for a delivery known by several keys (its id and its
    /// signature): delivered if any key was, in flight if any key is, else all are reserved.
    pub fn claim_all(self: &Arc<Self>, ids: &[&str], now: DateTime<Utc>) -> Seen {
        let mut memory = self.memory();
        let cutoff = now.timestamp_millis().saturating_sub(self.window_ms);
        if ids
            .iter()
            .any(|id| memory.seen.get(*id).is_some_and(|ms| *ms > cutoff))
        {
            return Seen::Delivered;
        }
        if ids.iter().any(|id| memory.in_flight.contains(*id)) {
            return Seen::InFlight;
        }
        let mut owned: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        owned.dedup();
        memory.in_flight.extend(owned.iter().cloned());
        Seen::New(Claim {
            log: Arc::clone(self),
            ids: owned,
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

    /// Appends the ids, fsyncs once, then remembers them. Blocking: runs on the blocking pool.
    #[allow(
        clippy::disallowed_methods,
        clippy::disallowed_types,
        reason = "runs on the blocking pool, from `Claim::commit`"
    )]
    fn record(&self, ids: &[String], now: DateTime<Utc>) -> Result<(), StateError> {
        let err = |e: std::io::Error| StateError::Io {
            path: self.path.clone(),
            source: e,
        };
        if let Some(id) = ids.iter().find(|id| !storable(id)) {
            return Err(err(std::io::Error::other(format!(
                "delivery id {id:?} cannot be stored"
            ))));
        }
        let mut appender = self.file.lock().expect("delivery log file lock poisoned");
        let ms = now.timestamp_millis();
        let lines: String = ids.iter().map(|id| line(ms, id)).collect();
        appender.file.write_all(lines.as_bytes()).map_err(err)?;
        appender.file.sync_data().map_err(err)?;
        appender.lines += ids.len();
        let rewrite = {
            let mut memory = self.memory();
            for id in ids {
                memory.seen.insert(id.clone(), ms);
                memory.order.push_back((ms, id.clone()));
            }
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
        let result = self.log.record(&self.ids, now);
        // Set only now: if `record` panics, `drop` still releases the claim.
        self.done = true;
        self.release();
        result
    }

    fn release(&self) {
        let mut memory = self.log.memory();
        for id in &self.ids {
            memory.in_flight.remove(id);
        }
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
mod tests;
