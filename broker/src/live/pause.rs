//! Pausing triggers by command (`herald pause|resume trigger`): a durable overlay on top of
//! the configuration, for triggers defined in files (the management API pauses its own by
//! patching the `herald.dev/paused` annotation).
//!
//! The overlay is a JSON list of `namespace/name` in `{--data-dir}/live/paused.json`,
//! written whole (temporary file, then rename) before the pause takes effect, so a pause
//! survives a restart. A trigger paused by its annotation cannot be resumed by command: the
//! annotation is the configuration, and the command answers where to change it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::config::Config;

/// Why a pause or resume changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("no trigger {trigger} is configured")]
    NotFound { trigger: String },
    #[error(
        "trigger {trigger} is paused by its annotation herald.dev/paused: set it to \"false\" \
         where the trigger is defined"
    )]
    PausedByAnnotation { trigger: String },
    #[error("saving the pause overlay {path} failed: {reason}")]
    Save { path: String, reason: String },
    #[error("applying the pause failed: {0}")]
    Apply(String),
}

/// The triggers paused by command.
pub struct PauseOverlay {
    /// Where the overlay is kept; `None`: in memory only (tests).
    path: Option<PathBuf>,
    paused: Mutex<BTreeSet<String>>,
}

impl PauseOverlay {
    pub fn in_memory() -> Self {
        Self {
            path: None,
            paused: Mutex::default(),
        }
    }

    /// Reads the overlay at `path` (absent: nothing paused). A file that is not a JSON list
    /// of names is an error: starting without it would resume what was paused.
    pub async fn open(path: PathBuf) -> anyhow::Result<Self> {
        let paused = match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice::<BTreeSet<String>>(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a JSON list of paused triggers: {e}",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
        };
        Ok(Self {
            path: Some(path),
            paused: Mutex::new(paused),
        })
    }

    fn names(&self) -> BTreeSet<String> {
        self.paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `config` with the overlay's triggers paused.
    pub fn apply_to(&self, mut config: Config) -> Config {
        let paused = self.names();
        for trigger in &mut config.triggers {
            if paused.contains(&trigger.to_string()) {
                trigger.paused = true;
            }
        }
        config
    }

    /// Pauses or resumes `trigger` in the overlay and saves it; returns whether it changed.
    pub async fn set(&self, trigger: &str, paused: bool) -> Result<bool, PauseError> {
        let mut names = self.names();
        let changed = if paused {
            names.insert(trigger.to_owned())
        } else {
            names.remove(trigger)
        };
        if !changed {
            return Ok(false);
        }
        if let Some(path) = &self.path {
            save(path, &names).await.map_err(|e| PauseError::Save {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = names;
        Ok(true)
    }

    /// Drops names no longer configured (a removed trigger's pause does not outlive it).
    pub async fn retain(&self, config: &Config) {
        let configured: BTreeSet<String> = config.triggers.iter().map(|t| t.to_string()).collect();
        let names = self.names();
        let kept: BTreeSet<String> = names.intersection(&configured).cloned().collect();
        if kept.len() == names.len() {
            return;
        }
        if let Some(path) = &self.path
            && let Err(e) = save(path, &kept).await
        {
            tracing::warn!(path = ?path, error = %e, "saving the pause overlay failed");
            return;
        }
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = kept;
    }
}

async fn save(path: &std::path::Path, names: &BTreeSet<String>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let temp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(names).map_err(std::io::Error::other)?;
    tokio::fs::write(&temp, bytes).await?;
    let file = tokio::fs::File::open(&temp).await?;
    file.sync_all().await?;
    tokio::fs::rename(&temp, path).await
}
