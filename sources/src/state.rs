//! Persisted source state: small JSON files written atomically (temp file, fsync, rename).
//!
//! Every store here is a few kilobytes to a few megabytes, read once at start and rewritten as
//! a whole, so a crash leaves either the old or the new file, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reading or writing a state file failed.
#[derive(Debug, thiserror::Error)]
#[error("state file {path}: {message}")]
pub struct StateError {
    pub path: PathBuf,
    pub message: String,
}

impl StateError {
    fn new(path: &Path, message: impl std::fmt::Display) -> Self {
        Self {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }

    pub fn reason(&self) -> &'static str {
        "state_io"
    }
}

/// Reads `path` as JSON; a missing file is `Ok(None)` (first start).
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::new(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::new(path, e)),
    }
}

/// Writes `value` to `path` atomically, creating the parent directory if needed.
pub fn store<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let dir = path
        .parent()
        .ok_or_else(|| StateError::new(path, "no parent directory"))?;
    std::fs::create_dir_all(dir).map_err(|e| StateError::new(path, e))?;
    let bytes = serde_json::to_vec(value).map_err(|e| StateError::new(path, e))?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| StateError::new(path, e))
}

/// A file name safe on any filesystem for a `{namespace}/{name}` pair (both are DNS labels in
/// Kubernetes, but Herald loads them from files, so anything else is escaped).
pub fn file_name(namespace: &str, name: &str, ext: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}_{}.{ext}", clean(namespace), clean(name))
}
