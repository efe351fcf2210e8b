//! Durable consumer-group cursors, persisted in place so a full disk cannot stop them.
//!
//! A group's cursor is the first position it has not acknowledged contiguously. It lives in
//! memory in an [`AckTracker`] and is persisted lazily (every flush interval and on close) to
//! `groups/<name>.cursor`. After a crash the group resumes at the last persisted cursor: the
//! events acknowledged since then are delivered again (at-least-once), none is skipped.
//!
//! The file is created once, whole (temporary file, fsync, rename, directory fsync), and from
//! then on rewritten **in place**: it holds two slots `magic [4] | seq u64 | cursor u64 |
//! crc32 u32` and a persist overwrites the older slot, then `fdatasync`s. Overwriting blocks the
//! file already owns needs no new disk space, so acknowledgements keep being persisted when the
//! disk is full (the alternative, a new file per write renamed over the old one, needs a free
//! inode and block each time: that failed every 200 ms on a full disk). A torn slot write
//! leaves the other slot, one persist older: a few events are delivered again, none skipped.
//! After the slots: `len u32 | name | crc32 u32`, the group's name (the file name is only an
//! encoding of it, see [`super::topic::file_safe`]). A cursor file's presence makes the group
//! "known" to retention even while no subscriber of it runs.
//!
//! Files of earlier versions (`cursor\nname\n`, text) are converted when loaded.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::ack::AckTracker;

use super::topic::{Topic, file_safe, sync_dir};
use crate::BusError;

const SUFFIX: &str = ".cursor";
const SLOT_MAGIC: [u8; 4] = *b"HCUR";
const SLOT: usize = 24;
const NAME_AT: usize = 2 * SLOT;

#[derive(Debug)]
pub struct Group {
    pub tracker: Arc<AckTracker>,
    /// The cursor as last persisted; retention trusts only this one.
    persisted: AtomicU64,
    /// The open cursor file and the sequence number of the newest slot; `None` once the group
    /// was removed. Held while the file is written or deleted, so a flush racing a removal
    /// cannot bring the cursor file back.
    file: Mutex<Option<(File, u64)>>,
    path: PathBuf,
    name: String,
}

impl Group {
    pub fn persisted(&self) -> u64 {
        self.persisted.load(Ordering::Acquire)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Persists the cursor if it moved (overwriting the older slot in place, then
    /// `fdatasync`).
    pub fn flush(&self) -> io::Result<()> {
        let cursor = self.tracker.committed();
        let mut file = self.file.lock().unwrap();
        let Some((file, seq)) = file.as_mut() else {
            return Ok(()); // removed
        };
        if cursor == self.persisted() {
            return Ok(());
        }
        let next = *seq + 1;
        file.write_all_at(&slot(next, cursor), slot_offset(next))?;
        file.sync_data()?;
        *seq = next;
        self.persisted.store(cursor, Ordering::Release);
        Ok(())
    }

    /// Deletes the cursor file for good (the group was removed from its topic's map).
    fn delete(&self) -> io::Result<()> {
        self.file.lock().unwrap().take();
        fs::remove_file(&self.path)
    }
}

fn slot_offset(seq: u64) -> u64 {
    (seq % 2) * SLOT as u64
}

fn slot(seq: u64, cursor: u64) -> [u8; SLOT] {
    let mut bytes = [0u8; SLOT];
    bytes[0..4].copy_from_slice(&SLOT_MAGIC);
    bytes[4..12].copy_from_slice(&seq.to_le_bytes());
    bytes[12..20].copy_from_slice(&cursor.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..20]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// `(seq, cursor)` of a slot that checks.
fn parse_slot(bytes: &[u8]) -> Option<(u64, u64)> {
    let crc = u32::from_le_bytes(bytes.get(20..24)?.try_into().unwrap());
    if bytes[0..4] != SLOT_MAGIC || crc32fast::hash(&bytes[0..20]) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(bytes[4..12].try_into().unwrap());
    Some((seq, u64::from_le_bytes(bytes[12..20].try_into().unwrap())))
}

/// The whole content of a new cursor file: slot 0 at `cursor`, an empty slot 1, the name.
fn contents(cursor: u64, name: &str) -> Vec<u8> {
    let mut out = slot(0, cursor).to_vec();
    out.extend_from_slice(&[0; SLOT]);
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&crc32fast::hash(name.as_bytes()).to_le_bytes());
    out
}

/// `(seq, cursor, name)` of a cursor file's content.
fn parse(bytes: &[u8]) -> Option<(u64, u64, String)> {
    let (seq, cursor) = [0, SLOT]
        .iter()
        .filter_map(|&at| parse_slot(bytes.get(at..at + SLOT)?))
        .max()?;
    let len = u32::from_le_bytes(bytes.get(NAME_AT..NAME_AT + 4)?.try_into().unwrap()) as usize;
    let name = bytes.get(NAME_AT + 4..NAME_AT + 4 + len)?;
    let crc = bytes.get(NAME_AT + 4 + len..NAME_AT + 8 + len)?;
    if crc32fast::hash(name) != u32::from_le_bytes(crc.try_into().unwrap()) {
        return None;
    }
    Some((seq, cursor, String::from_utf8(name.to_vec()).ok()?))
}

/// Loads every group that has a cursor file in `dir`.
pub fn load_all(dir: &Path) -> io::Result<HashMap<String, Arc<Group>>> {
    let mut groups = HashMap::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.ends_with(".tmp") {
            // A creation that crashed before its rename: the group never existed.
            let _ = fs::remove_file(&path);
            continue;
        }
        if !file_name.ends_with(SUFFIX) {
            continue;
        }
        let group = load(&path)?;
        groups.insert(group.name.clone(), Arc::new(group));
    }
    Ok(groups)
}

fn load(path: &Path) -> io::Result<Group> {
    let bytes = fs::read(path)?;
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "cursor file {} is damaged (no slot or name checks); restore it, or delete it \
                 to restart its group at the end of the topic",
                path.display()
            ),
        )
    };
    if let Some((cursor, name)) = parse_text(&bytes) {
        // Written by an earlier version: rewrite it in the current format.
        write_new(path, cursor, &name)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        return open_group(path.to_owned(), 0, cursor, name);
    }
    let (seq, cursor, name) = parse(&bytes).ok_or_else(invalid)?;
    open_group(path.to_owned(), seq, cursor, name)
}

/// A cursor file of earlier versions: `cursor\nname\n`.
fn parse_text(bytes: &[u8]) -> Option<(u64, String)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (cursor, name) = text.split_once('\n')?;
    Some((cursor.parse().ok()?, name.strip_suffix('\n')?.to_owned()))
}

/// Creates the cursor file of a new group at `cursor`, durably (the directory is fsynced):
/// a group that could forget its start after a crash would skip the events published since.
pub fn create(dir: &Path, name: &str, cursor: u64) -> io::Result<Group> {
    let path = dir.join(format!("{}{SUFFIX}", file_safe(name)));
    write_new(&path, cursor, name)?;
    sync_dir(dir)?;
    open_group(path, 0, cursor, name.to_owned())
}

fn write_new(path: &Path, cursor: u64, name: &str) -> io::Result<()> {
    let tmp = path.with_extension("cursor.tmp");
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(&contents(cursor, name))?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp); // a full disk: leave nothing behind
    }
    written
}

fn open_group(path: PathBuf, seq: u64, cursor: u64, name: String) -> io::Result<Group> {
    let file = OpenOptions::new().write(true).open(&path)?;
    Ok(Group {
        tracker: Arc::new(AckTracker::new(cursor)),
        persisted: AtomicU64::new(cursor),
        file: Mutex::new(Some((file, seq))),
        path,
        name,
    })
}

/// The group `name` of `topic`, created at `start(topic)` if it never consumed before.
pub fn join_at(
    topic: &Topic,
    name: &str,
    start: impl FnOnce(&Topic) -> Result<u64, BusError>,
) -> Result<Arc<Group>, BusError> {
    let mut groups = topic.groups.lock().unwrap();
    if let Some(group) = groups.get(name) {
        return Ok(group.clone());
    }
    let position = start(topic)?;
    let group = Arc::new(create(&topic.groups_dir(), name, position)?);
    groups.insert(name.to_owned(), group.clone());
    Ok(group)
}

/// Forgets the group `name` of `topic`, if it exists.
pub fn forget(topic: &Topic, name: &str) -> Result<(), BusError> {
    let removed = topic.groups.lock().unwrap().remove(name);
    if let Some(group) = removed {
        group.delete()?;
        sync_dir(&topic.groups_dir())?;
    }
    Ok(())
}

/// Forgets every group of `topic` not named in `keep`, with one directory sync. Returns the
/// names of the removed groups, sorted.
pub fn retain(topic: &Topic, keep: &[String]) -> Result<Vec<String>, BusError> {
    let mut groups = topic.groups.lock().unwrap();
    let mut removed: Vec<String> = groups
        .keys()
        .filter(|name| !keep.contains(name))
        .cloned()
        .collect();
    removed.sort();
    for name in &removed {
        if let Some(group) = groups.remove(name) {
            group.delete()?;
        }
    }
    if !removed.is_empty() {
        sync_dir(&topic.groups_dir())?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flushed_cursor_is_loaded_back_with_its_group_name() {
        let dir = tempfile::tempdir().unwrap();
        let group = create(dir.path(), "knative-trigger-ns/odd name", 7).unwrap();
        let size = fs::metadata(group.path()).unwrap().len();
        for n in 7..10 {
            group.tracker.ack(n);
            group.flush().unwrap();
        }
        assert_eq!(fs::metadata(group.path()).unwrap().len(), size, "in place");
        let loaded = load_all(dir.path()).unwrap();
        let again = &loaded["knative-trigger-ns/odd name"];
        assert_eq!(again.tracker.committed(), 10);
        assert_eq!(again.persisted(), 10);
    }

    #[test]
    fn a_torn_slot_leaves_the_previous_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let group = create(dir.path(), "g", 0).unwrap();
        group.tracker.ack(0);
        group.flush().unwrap(); // slot 1: cursor 1
        group.tracker.ack(1);
        group.flush().unwrap(); // slot 0: cursor 2
        let path = group.path().to_owned();
        drop(group);
        let mut bytes = fs::read(&path).unwrap();
        bytes[14] ^= 1; // inside slot 0's cursor
        fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&path).unwrap().tracker.committed(), 1);
    }

    #[test]
    fn a_text_cursor_file_of_earlier_versions_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.cursor");
        fs::write(&path, "42\nknative-trigger-a-b\n").unwrap();
        let group = load(&path).unwrap();
        assert_eq!(
            (group.tracker.committed(), group.name()),
            (42, "knative-trigger-a-b")
        );
        assert_eq!(parse(&fs::read(&path).unwrap()).unwrap().1, 42);
    }
}
