//! Durable consumer-group cursors.
//!
//! A group's cursor is the first position it has not acknowledged contiguously. It lives in
//! memory in an [`AckTracker`] and is persisted lazily (every flush interval and on close) to
//! `groups/<name>.cursor`, replaced atomically: write a temporary file, fsync it, rename it over
//! the old one. After a crash the group resumes at the last persisted cursor: the events
//! acknowledged since then are delivered again (at-least-once), none is skipped.
//!
//! The file holds the cursor and the group's name on two lines; the file name is only an
//! encoding of the name (see [`super::topic::file_safe`]). A cursor file's presence makes the
//! group "known" to retention even while no subscriber of it runs.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::ack::AckTracker;

use super::topic::{Topic, file_safe, sync_dir};
use crate::BusError;

const SUFFIX: &str = ".cursor";

#[derive(Debug)]
pub struct Group {
    pub tracker: Arc<AckTracker>,
    /// The cursor as last persisted; retention trusts only this one.
    persisted: AtomicU64,
    /// Set when the group is removed; held while its file is written or deleted, so a flush
    /// racing a removal cannot bring the cursor file back.
    removed: Mutex<bool>,
    path: PathBuf,
    name: String,
}

impl Group {
    pub fn persisted(&self) -> u64 {
        self.persisted.load(Ordering::Acquire)
    }

    /// Persists the cursor if it moved. Returns whether a file was replaced (the caller then
    /// fsyncs the directory once for all groups).
    pub fn flush(&self) -> io::Result<bool> {
        let cursor = self.tracker.committed();
        let removed = self.removed.lock().unwrap();
        if cursor == self.persisted() || *removed {
            return Ok(false);
        }
        write_atomically(&self.path, cursor, &self.name)?;
        self.persisted.store(cursor, Ordering::Release);
        Ok(true)
    }

    /// Deletes the cursor file for good (the group was removed from its topic's map).
    fn delete(&self) -> io::Result<()> {
        let mut removed = self.removed.lock().unwrap();
        *removed = true;
        fs::remove_file(&self.path)
    }
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
            // A write that crashed before its rename: the old cursor file is still valid.
            let _ = fs::remove_file(&path);
            continue;
        }
        if !file_name.ends_with(SUFFIX) {
            continue;
        }
        let (cursor, name) = read(&path)?;
        groups.insert(name.clone(), Arc::new(group(path, cursor, name)));
    }
    Ok(groups)
}

/// Creates the cursor file of a new group at `cursor`, durably (the directory is fsynced):
/// a group that could forget its start after a crash would skip the events published since.
pub fn create(dir: &Path, name: &str, cursor: u64) -> io::Result<Group> {
    let path = dir.join(format!("{}{SUFFIX}", file_safe(name)));
    write_atomically(&path, cursor, name)?;
    sync_dir(dir)?;
    Ok(group(path, cursor, name.to_owned()))
}

/// The group `name` of `topic`, created at the topic's end if it never consumed before.
pub fn join(topic: &Topic, name: &str) -> Result<Arc<Group>, BusError> {
    let mut groups = topic.groups.lock().unwrap();
    if let Some(group) = groups.get(name) {
        return Ok(group.clone());
    }
    let end = *topic.end.borrow();
    let group = Arc::new(create(&topic.groups_dir(), name, end)?);
    groups.insert(name.to_owned(), group.clone());
    Ok(group)
}

/// Forgets group `name` of `topic`: its cursor file goes, so it no longer holds back
/// retention. Returns whether it existed.
pub fn leave(topic: &Topic, name: &str) -> Result<bool, BusError> {
    let Some(group) = topic.groups.lock().unwrap().remove(name) else {
        return Ok(false);
    };
    group.delete()?;
    sync_dir(&topic.groups_dir())?;
    Ok(true)
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

fn group(path: PathBuf, cursor: u64, name: String) -> Group {
    Group {
        tracker: Arc::new(AckTracker::new(cursor)),
        persisted: AtomicU64::new(cursor),
        removed: Mutex::new(false),
        path,
        name,
    }
}

fn write_atomically(path: &Path, cursor: u64, name: &str) -> io::Result<()> {
    let tmp = path.with_extension("cursor.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(format!("{cursor}\n{name}\n").as_bytes())?;
    file.sync_data()?;
    fs::rename(&tmp, path)
}

fn read(path: &Path) -> io::Result<(u64, String)> {
    let text = fs::read_to_string(path)?;
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("invalid cursor file {}", path.display()),
        )
    };
    let (cursor, name) = text.split_once('\n').ok_or_else(invalid)?;
    let name = name.strip_suffix('\n').ok_or_else(invalid)?;
    Ok((cursor.parse().map_err(|_| invalid())?, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flushed_cursor_is_loaded_back_with_its_group_name() {
        let dir = tempfile::tempdir().unwrap();
        let group = create(dir.path(), "knative-trigger-ns/odd name", 7).unwrap();
        group.tracker.ack(7);
        group.tracker.ack(8);
        assert!(group.flush().unwrap());
        assert!(!group.flush().unwrap(), "nothing moved since");
        let loaded = load_all(dir.path()).unwrap();
        let again = &loaded["knative-trigger-ns/odd name"];
        assert_eq!(again.tracker.committed(), 9);
        assert_eq!(again.persisted(), 9);
    }
}
