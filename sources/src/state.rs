//! Persisted source state: small JSON files written atomically (temp file, fsync, rename,
//! directory fsync) and checksummed, with the file I/O on tokio's blocking pool.
//!
//! Every store here is a few kilobytes to a few megabytes, read once at start and rewritten as
//! a whole, so a crash leaves either the old or the new file, never a torn one. A file that is
//! damaged anyway (a flipped bit, a copy cut short, an editor) fails its checksum and is
//! reported as [`StateError::Corrupt`]; [`load_or_quarantine`] moves it aside so the caller can
//! start over without overwriting the evidence.
//!
//! File format: one header line `herald-state crc32={hex} len={bytes}` then the JSON document.
//! Files written before the header existed (plain JSON) still load.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

const MAGIC: &str = "herald-state ";

/// Reading or writing a state file failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file system refused (permissions, disk full, I/O error): the file may be fine.
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is there but its content is damaged: it will never read back.
    #[error("state file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl StateError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn corrupt(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::Corrupt { path, .. } => path,
        }
    }

    /// A short, fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io { .. } => "state_io",
            Self::Corrupt { .. } => "state_corrupt",
        }
    }
}

/// Runs blocking file work on tokio's blocking pool, never on an async worker.
pub(crate) async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(StateError::io(
            path,
            std::io::Error::other(format!("blocking file task failed: {e}")),
        )),
    }
}

/// Reads `path` as JSON; a missing file is `Ok(None)` (first start).
pub async fn load<T: DeserializeOwned + Send + 'static>(
    path: &Path,
) -> Result<Option<T>, StateError> {
    let owned = path.to_owned();
    blocking(path, move || load_blocking(&owned)).await
}

/// What [`load_or_quarantine`] found.
#[derive(Debug)]
pub enum Loaded<T> {
    /// The state as last written.
    Found(T),
    /// No file: a first start.
    Missing,
    /// The file was corrupt and now lies at `moved_to`; the caller starts without state.
    Quarantined {
        error: StateError,
        moved_to: PathBuf,
    },
}

/// Like [`load`], but a corrupt file is renamed to `{name}.corrupt` (replacing an older one)
/// so that the caller can start over without overwriting it. I/O errors stay errors: the file
/// may be intact, and writing a fresh state over it would lose it.
pub async fn load_or_quarantine<T: DeserializeOwned + Send + 'static>(
    path: &Path,
) -> Result<Loaded<T>, StateError> {
    let owned = path.to_owned();
    blocking(path, move || match load_blocking(&owned) {
        Ok(Some(value)) => Ok(Loaded::Found(value)),
        Ok(None) => Ok(Loaded::Missing),
        Err(error @ StateError::Corrupt { .. }) => {
            let moved_to = quarantine_path(&owned);
            rename_durably(&owned, &moved_to).map_err(|e| StateError::io(&owned, e))?;
            Ok(Loaded::Quarantined { error, moved_to })
        }
        Err(e) => Err(e),
    })
    .await
}

/// Where [`load_or_quarantine`] moves a corrupt file.
pub fn quarantine_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".corrupt");
    path.with_file_name(name)
}

/// Writes `value` to `path` atomically, creating the parent directory if needed. Serializes on
/// the caller's thread (memory only) and writes on the blocking pool; returns once durable.
pub async fn store<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let json =
        serde_json::to_vec(value).map_err(|e| StateError::io(path, std::io::Error::other(e)))?;
    let owned = path.to_owned();
    blocking(path, move || {
        write_atomically(&owned, &encode(&json)).map_err(|e| StateError::io(&owned, e))
    })
    .await
}

fn encode(json: &[u8]) -> Vec<u8> {
    let header = format!(
        "{MAGIC}crc32={:08x} len={}\n",
        crc32fast::hash(json),
        json.len()
    );
    [header.as_bytes(), json].concat()
}

/// The JSON document inside a state file, checked against its header.
fn decode(bytes: &[u8]) -> Result<&[u8], String> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_bytes()) else {
        // Written before the header existed: plain JSON, checked only by parsing it.
        return Ok(bytes);
    };
    let newline = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("header line without an end")?;
    let header = std::str::from_utf8(&rest[..newline]).map_err(|_| "header is not text")?;
    let json = &rest[newline + 1..];
    let field = |key: &str| {
        header
            .split(' ')
            .find_map(|part| part.strip_prefix(key))
            .ok_or_else(|| format!("header {header:?} lacks {key}"))
    };
    let crc = u32::from_str_radix(field("crc32=")?, 16)
        .map_err(|_| format!("header {header:?}: bad crc32"))?;
    let len: usize = field("len=")?
        .parse()
        .map_err(|_| format!("header {header:?}: bad len"))?;
    if json.len() != len {
        return Err(format!(
            "{} bytes of JSON, the header says {len} (cut short or appended to)",
            json.len()
        ));
    }
    let actual = crc32fast::hash(json);
    if actual != crc {
        return Err(format!("checksum {actual:08x}, the header says {crc:08x}"));
    }
    Ok(json)
}

#[allow(
    clippy::disallowed_methods,
    reason = "runs on the blocking pool, called through `blocking`"
)]
fn load_blocking<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io(path, e)),
    };
    let json = decode(&bytes).map_err(|reason| StateError::corrupt(path, reason))?;
    serde_json::from_slice(json)
        .map(Some)
        .map_err(|e| StateError::corrupt(path, e))
}

/// Temp file, fsync, rename, directory fsync: a crash leaves the old file or the new one.
#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "runs on the blocking pool only (through `blocking`, or a caller's spawn_blocking)"
)]
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    rename_durably(&tmp, path)
}

/// Renames `from` to `to` and makes the rename durable (the directory entry is fsynced).
#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "runs on the blocking pool only"
)]
fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    if let Some(dir) = to.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
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

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests damage files directly to simulate crashes and bit flips"
)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct S {
        n: u64,
        name: String,
    }

    fn sample() -> S {
        S {
            n: 1234,
            name: "x".into(),
        }
    }

    #[tokio::test]
    async fn a_stored_state_loads_back_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/s.json");
        store(&path, &sample()).await.unwrap();
        assert_eq!(load::<S>(&path).await.unwrap(), Some(sample()));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["s.json"]);
    }

    #[tokio::test]
    async fn a_missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_or_quarantine::<S>(&dir.path().join("none.json"))
                .await
                .unwrap(),
            Loaded::Missing
        ));
    }

    #[tokio::test]
    async fn a_flipped_bit_is_detected_even_where_the_json_still_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        store(&path, &sample()).await.unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // "1234" -> "1235": still valid JSON, silently wrong without the checksum.
        let at = bytes.windows(4).position(|w| w == b"1234").unwrap() + 3;
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = load::<S>(&path).await.unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert_eq!(err.path(), path);
    }

    #[tokio::test]
    async fn a_truncated_file_is_quarantined_and_kept_for_inspection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        store(&path, &sample()).await.unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        match load_or_quarantine::<S>(&path).await.unwrap() {
            Loaded::Quarantined { error, moved_to } => {
                assert!(error.to_string().contains("cut short"), "{error}");
                assert_eq!(moved_to, dir.path().join("s.json.corrupt"));
                assert_eq!(std::fs::read(&moved_to).unwrap(), &bytes[..bytes.len() - 3]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !path.exists(),
            "moved aside, so a fresh state cannot clobber it"
        );
    }

    #[tokio::test]
    async fn plain_json_from_before_the_header_still_loads_and_garbage_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, r#"{"n": 7, "name": "old"}"#).unwrap();
        assert_eq!(load::<S>(&path).await.unwrap().unwrap().n, 7);
        std::fs::write(&path, b"{\"n\": 7, \"na\0\0\0").unwrap();
        assert!(matches!(
            load::<S>(&path).await,
            Err(StateError::Corrupt { .. })
        ));
    }
}
