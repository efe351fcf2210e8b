//! State left behind by sources that are no longer configured, removed at start.
//!
//! The sources keep their state under one directory, one subdirectory per kind
//! ([`GITHUB_DIR`], [`PING_DIR`], [`API_SERVER_DIR`]) and one entry per source named after its
//! `{namespace}_{name}` ([`crate::state::file_name`]). A source removed from the configuration
//! would otherwise leave its entry there for ever; one added again later under the same name
//! starts as a new source (Ping: no past time; ApiServerSource: records without emitting;
//! GitHubSource: remembers no delivery id), as Knative's would.
//!
//! Only entries shaped like the sources' own (`*.deliveries*`, `*.json*`, `*.d/`) are touched,
//! so a state directory shared with other files is safe.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::state::{self, StateError};

/// Subdirectory of the GitHubSources' delivery logs.
pub const GITHUB_DIR: &str = "github";
/// Subdirectory of the PingSources' progress files.
pub const PING_DIR: &str = "ping";
/// Subdirectory of the ApiServerSources' seen-object states.
pub const API_SERVER_DIR: &str = "apiserver";

/// One configured source, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept<'a> {
    GitHub { namespace: &'a str, name: &'a str },
    Ping { namespace: &'a str, name: &'a str },
    ApiServer { namespace: &'a str, name: &'a str },
}

/// What each kind's entries are named: `(subdirectory, extension)`.
const KINDS: [(&str, &str); 3] = [
    (GITHUB_DIR, "deliveries"),
    (PING_DIR, "json"),
    (API_SERVER_DIR, "d"),
];

/// Removes the state of every source not in `kept`, on the blocking pool; returns what it
/// removed. An entry that cannot be removed is reported in the error list and left.
pub async fn remove_unconfigured(
    state_dir: &Path,
    kept: &[Kept<'_>],
) -> (Vec<PathBuf>, Vec<StateError>) {
    let keep: HashSet<(String, String)> = kept
        .iter()
        .map(|k| match *k {
            Kept::GitHub { namespace, name } => (GITHUB_DIR, namespace, name, "deliveries"),
            Kept::Ping { namespace, name } => (PING_DIR, namespace, name, "json"),
            Kept::ApiServer { namespace, name } => (API_SERVER_DIR, namespace, name, "d"),
        })
        .map(|(dir, ns, name, ext)| (dir.to_owned(), state::file_name(ns, name, ext)))
        .collect();
    let root = state_dir.to_owned();
    state::blocking(state_dir, move || Ok(remove_blocking(&root, &keep)))
        .await
        .unwrap_or_else(|e| (Vec::new(), vec![e]))
}

#[allow(
    clippy::disallowed_methods,
    reason = "runs on the blocking pool, called through `state::blocking`"
)]
fn remove_blocking(
    root: &Path,
    keep: &HashSet<(String, String)>,
) -> (Vec<PathBuf>, Vec<StateError>) {
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    for (dir, ext) in KINDS {
        let dir_path = root.join(dir);
        let entries = match std::fs::read_dir(&dir_path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                failed.push(StateError::Io {
                    path: dir_path,
                    source: e,
                });
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `ns_a.json`, and its `ns_a.json.tmp` / `ns_a.json.corrupt` companions.
            let Some(owner) = owner_of(&name, ext) else {
                continue;
            };
            if keep.contains(&(dir.to_owned(), owner.to_owned())) {
                continue;
            }
            let path = entry.path();
            let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed.push(path),
                Err(e) => failed.push(StateError::Io { path, source: e }),
            }
        }
    }
    (removed, failed)
}

/// `ns_a.json` for `ns_a.json`, `ns_a.json.tmp` and `ns_a.json.corrupt`; `None` for names that
/// are not a source's state.
fn owner_of<'n>(name: &'n str, ext: &str) -> Option<&'n str> {
    let marker = format!(".{ext}");
    let end = name.rfind(&marker)? + marker.len();
    let rest = &name[end..];
    (rest.is_empty() || rest == ".tmp" || rest == ".corrupt").then(|| &name[..end])
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests lay out state files directly"
)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn state_of_unconfigured_sources_is_removed_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "github/ns_kept.deliveries",
            "github/ns_gone.deliveries",
            "github/ns_gone.deliveries.corrupt",
            "ping/ns_kept.json",
            "ping/ns_kept.json.corrupt",
            "ping/ns_gone.json",
            "ping/ns_gone.json.tmp",
            "ping/README.txt",
            "apiserver/ns_kept.d/v1_ConfigMap.json",
            "apiserver/ns_gone.d/v1_ConfigMap.json",
            "other/ns_gone.json",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let kept = [
            Kept::GitHub {
                namespace: "ns",
                name: "kept",
            },
            Kept::Ping {
                namespace: "ns",
                name: "kept",
            },
            Kept::ApiServer {
                namespace: "ns",
                name: "kept",
            },
            // The same name under another kind keeps nothing of this one.
            Kept::Ping {
                namespace: "ns",
                name: "gone-elsewhere",
            },
        ];
        let (mut removed, failed) = remove_unconfigured(root, &kept).await;
        assert!(failed.is_empty(), "{failed:?}");
        removed.sort();
        let removed: Vec<_> = removed
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            removed,
            [
                "apiserver/ns_gone.d",
                "github/ns_gone.deliveries",
                "github/ns_gone.deliveries.corrupt",
                "ping/ns_gone.json",
                "ping/ns_gone.json.tmp",
            ]
        );
        for left in [
            "github/ns_kept.deliveries",
            "ping/ns_kept.json",
            "ping/ns_kept.json.corrupt",
            "ping/README.txt",
            "apiserver/ns_kept.d/v1_ConfigMap.json",
            "other/ns_gone.json",
        ] {
            assert!(root.join(left).exists(), "{left} kept");
        }
    }

    #[tokio::test]
    async fn a_missing_state_directory_is_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let (removed, failed) = remove_unconfigured(&dir.path().join("none"), &[]).await;
        assert!(removed.is_empty() && failed.is_empty());
    }
}
