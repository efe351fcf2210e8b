//! For tests that damage or fill the embedded bus's files: the segment files and frame byte
//! ranges of a topic (read with the log's own header parser, so no test keeps a copy of the
//! frame format), and a small real filesystem for full-disk tests — a tmpfs mounted over a
//! directory (needs root), lazily unmounted on drop. Where it cannot be mounted the test says
//! so and skips, never silently.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::segment;

/// Bytes of a frame header: a frame's payload starts this far after its start.
pub const FRAME_HEADER: usize = segment::HEADER;

/// The segment files (`*.log`) of the topic directory `topic_dir`, oldest first.
#[allow(
    clippy::disallowed_methods,
    reason = "test inspection of files the bus wrote"
)]
pub fn segment_files(topic_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(topic_dir)
        .expect("the topic directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// The byte ranges (start, end) of the frames of a segment file, up to the first bytes that
/// are no frame header (the preallocated zeros, or damage).
#[allow(
    clippy::disallowed_methods,
    reason = "test inspection of files the bus wrote"
)]
pub fn frame_ranges(path: &Path) -> Vec<(usize, usize)> {
    let data = std::fs::read(path).expect("the segment file");
    let mut frames = vec![];
    let mut at = 0usize;
    while let Some(header) = data.get(at..).and_then(segment::parse_header) {
        let end = at + FRAME_HEADER + header.len;
        frames.push((at, end));
        at = end;
    }
    frames
}

/// A tmpfs mounted over a directory for one test.
#[derive(Debug)]
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `1m`) over `dir`, creating it; `None`,
    /// with the reason printed, where that is not possible (not root).
    #[allow(
        clippy::disallowed_methods,
        reason = "test set-up before the code under test runs"
    )]
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs(dir.to_owned())),
            Ok(out) => {
                println!(
                    "SKIPPED: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// The mounted directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
