//! Remembers `X-GitHub-Delivery` ids for a window so a redelivery is answered `2xx` and not
//! emitted twice, across restarts.
//!
//! The log is one append-only file per source, `{dir}/{namespace}_{name}.deliveries`, a line
//! `"{unix_millis} {id}"` per emitted delivery, fsynced before the id counts as delivered.
//! It is bounded: entries older than the window are dropped when the file is opened and as new
//! ones arrive, at most `capacity` ids are kept (oldest dropped first), and the file is rewritten
//! (atomically) once it holds twice as many lines as live entries.
//!
//! The methods do small blocking file I/O (an append and an fsync per delivery).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
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
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    seen: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
    in_flight: HashSet<String>,
    file: File,
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

impl DeliveryLog {
    /// Opens (or creates) the log of one source and drops entries older than `window`.
    pub fn open(
        dir: &Path,
        namespace: &str,
        name: &str,
        window: Duration,
        capacity: usize,
        now: DateTime<Utc>,
    ) -> Result<Arc<Self>, StateError> {
        let path = dir.join(state::file_name(namespace, name, "deliveries"));
        let err = |e: std::io::Error| StateError {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.timestamp_millis().saturating_sub(window_ms);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(err(e)),
        };
        let mut entries: Vec<(i64, String)> = text
            .lines()
            // A torn last line (crash mid-append) fails to parse and is skipped.
            .filter_map(|l| {
                let (ms, id) = l.split_once(' ')?;
                Some((ms.parse().ok()?, id.to_owned()))
            })
            .filter(|(ms, id)| *ms > cutoff && !id.is_empty())
            .collect();
        entries.sort();
        if entries.len() > capacity {
            entries.drain(..entries.len() - capacity);
        }
        let body: String = entries
            .iter()
            .map(|(ms, id)| format!("{ms} {id}\n"))
            .collect();
        rewrite(&path, body.as_bytes()).map_err(err)?;
        let file = OpenOptions::new().append(true).open(&path).map_err(err)?;
        let seen = entries.iter().map(|(ms, id)| (id.clone(), *ms)).collect();
        let inner = Inner {
            seen,
            lines: entries.len(),
            order: entries.into(),
            in_flight: HashSet::new(),
            file,
        };
        Ok(Arc::new(Self {
            path,
            window_ms,
            capacity,
            inner: Mutex::new(inner),
        }))
    }

    /// Whether `id` was emitted within the window before `now`, or is being handled.
    pub fn claim(self: &Arc<Self>, id: &str, now: DateTime<Utc>) -> Seen {
        let mut inner = self.inner.lock().expect("delivery log lock poisoned");
        let cutoff = now.timestamp_millis().saturating_sub(self.window_ms);
        if inner.seen.get(id).is_some_and(|ms| *ms > cutoff) {
            return Seen::Delivered;
        }
        if !inner.in_flight.insert(id.to_owned()) {
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
        self.inner
            .lock()
            .expect("delivery log lock poisoned")
            .seen
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn record(&self, id: &str, now: DateTime<Utc>) -> Result<(), StateError> {
        let err = |e: std::io::Error| StateError {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let mut inner = self.inner.lock().expect("delivery log lock poisoned");
        let ms = now.timestamp_millis();
        inner
            .file
            .write_all(format!("{ms} {id}\n").as_bytes())
            .map_err(err)?;
        inner.file.sync_data().map_err(err)?;
        inner.lines += 1;
        inner.seen.insert(id.to_owned(), ms);
        inner.order.push_back((ms, id.to_owned()));
        let cutoff = ms.saturating_sub(self.window_ms);
        while let Some((old_ms, _)) = inner.order.front() {
            if *old_ms > cutoff && inner.order.len() <= self.capacity {
                break;
            }
            let (old_ms, old_id) = inner.order.pop_front().expect("front exists");
            // Only forget the id if this entry is its latest record.
            if inner.seen.get(&old_id) == Some(&old_ms) {
                inner.seen.remove(&old_id);
            }
        }
        if inner.lines > 2 * inner.order.len() + 1024 {
            let body: String = inner
                .order
                .iter()
                .map(|(ms, id)| format!("{ms} {id}\n"))
                .collect();
            rewrite(&self.path, body.as_bytes()).map_err(err)?;
            inner.file = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(err)?;
            inner.lines = inner.order.len();
        }
        Ok(())
    }
}

impl Claim {
    /// Records the id as delivered (durably) once the sink accepted the event.
    pub fn commit(mut self, now: DateTime<Utc>) -> Result<(), StateError> {
        self.done = true;
        let result = self.log.record(&self.id, now);
        self.release();
        result
    }

    fn release(&self) {
        self.log
            .inner
            .lock()
            .expect("delivery log lock poisoned")
            .in_flight
            .remove(&self.id);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.done {
            self.release();
        }
    }
}

fn rewrite(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("deliveries.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(body)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn open(dir: &Path, now: DateTime<Utc>) -> Arc<DeliveryLog> {
        DeliveryLog::open(dir, "ns", "gh", Duration::from_secs(3600), 1000, now).unwrap()
    }

    #[test]
    fn committed_delivery_is_recognised_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), t(0));
        let Seen::New(claim) = log.claim("a-1", t(0)) else {
            panic!("new id")
        };
        claim.commit(t(0)).unwrap();
        assert!(matches!(log.claim("a-1", t(10)), Seen::Delivered));
        drop(log);
        let log = open(dir.path(), t(20));
        assert!(matches!(log.claim("a-1", t(20)), Seen::Delivered));
    }

    #[test]
    fn dropped_claim_forgets_the_id_and_concurrent_claims_are_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), t(0));
        let first = log.claim("x", t(0));
        assert!(matches!(log.claim("x", t(0)), Seen::InFlight));
        drop(first);
        assert!(matches!(log.claim("x", t(0)), Seen::New(_)));
    }

    #[test]
    fn ids_older_than_the_window_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), t(0));
        let Seen::New(c) = log.claim("old", t(0)) else {
            panic!()
        };
        c.commit(t(0)).unwrap();
        assert!(matches!(log.claim("old", t(3601)), Seen::New(_)));
        drop(log);
        let log = open(dir.path(), t(4000));
        assert!(log.is_empty(), "pruned on open");
    }

    #[test]
    fn the_log_keeps_at_most_capacity_ids() {
        let dir = tempfile::tempdir().unwrap();
        let log =
            DeliveryLog::open(dir.path(), "ns", "gh", Duration::from_secs(3600), 3, t(0)).unwrap();
        for i in 0..5 {
            let Seen::New(c) = log.claim(&format!("id{i}"), t(i)) else {
                panic!()
            };
            c.commit(t(i)).unwrap();
        }
        assert_eq!(log.len(), 3);
        assert!(matches!(log.claim("id0", t(6)), Seen::New(_)));
        assert!(matches!(log.claim("id4", t(6)), Seen::Delivered));
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns_gh.deliveries");
        let ms = t(0).timestamp_millis();
        std::fs::write(&path, format!("{ms} good\n{ms}")).unwrap();
        let log = open(dir.path(), t(1));
        assert_eq!(log.len(), 1);
        assert!(matches!(log.claim("good", t(1)), Seen::Delivered));
    }
}
