//! [`Live`]: the files, the API's documents and the running set, kept consistent.
//!
//! Every change — a file edit, `SIGHUP`, the management API — goes the same way: the new
//! whole set of documents (files' and API's) is resolved into one [`Config`]; if that fails
//! nothing changes; otherwise [`Runtime::apply`] switches to it. One change at a time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::pause::{PauseError, PauseOverlay};
use super::runtime::{Changes, Runtime};
use super::status;
use super::{ApiDocument, Apply, FileDocument, ResourceStatus};
use crate::config::{self, Config, ConfigError, FileText, LoadOptions};

/// What `herald serve` runs without `-f`: broker `default/default` (unless the API defines
/// it).
fn default_broker() -> ApiDocument {
    serde_json::json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"namespace": "default", "name": "default"},
    })
}

/// The documents the running configuration was resolved from.
#[derive(Default)]
struct Documents {
    files: Vec<FileText>,
    api: Vec<ApiDocument>,
    /// The files as last refused, so that polling does not log and count the same invalid
    /// edit every interval (`SIGHUP` does: it asks explicitly).
    refused: Option<Vec<FileText>>,
}

/// Live configuration of one Herald: see the module documentation.
pub struct Live {
    runtime: Runtime,
    /// The `-f` paths (files or directories), read again on every reload.
    paths: Vec<PathBuf>,
    load: LoadOptions,
    documents: Mutex<Documents>,
    /// One change at a time, from reading to applying.
    changing: tokio::sync::Mutex<()>,
    /// `http://host:port`, for a Broker's `status.address.url`.
    address_base: Mutex<Option<String>>,
    /// Triggers paused by command, on top of the configuration.
    overlay: PauseOverlay,
    /// The configuration as resolved, before the overlay.
    resolved: Mutex<Option<Config>>,
}

impl Live {
    pub fn new(
        runtime: Runtime,
        paths: Vec<PathBuf>,
        load: LoadOptions,
        overlay: PauseOverlay,
    ) -> Self {
        Self {
            runtime,
            paths,
            load,
            documents: Mutex::default(),
            changing: tokio::sync::Mutex::new(()),
            address_base: Mutex::new(None),
            overlay,
            resolved: Mutex::new(None),
        }
    }

    /// Runs `config`, resolved from `files` (the content of the `-f` paths; empty without).
    pub async fn start(&self, config: Config, files: Vec<FileText>) -> anyhow::Result<()> {
        let _one = self.changing.lock().await;
        self.switch(config).await?;
        self.lock_documents().files = files;
        Ok(())
    }

    /// Applies `config` (resolved, valid) with the pause overlay on top.
    async fn switch(&self, config: Config) -> anyhow::Result<Changes> {
        self.overlay.retain(&config).await;
        let changes = self
            .runtime
            .apply(self.overlay.apply_to(config.clone()))
            .await?;
        *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = Some(config);
        Ok(changes)
    }

    /// Pauses (`true`) or resumes `namespace/name` by command; durable before it returns.
    /// Returns whether anything changed.
    pub async fn set_paused(&self, trigger: &str, paused: bool) -> Result<bool, PauseError> {
        let _one = self.changing.lock().await;
        let resolved = self
            .resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(resolved) = resolved else {
            return Err(PauseError::NotFound {
                trigger: trigger.to_owned(),
            });
        };
        let Some(config) = resolved.triggers.iter().find(|t| t.to_string() == trigger) else {
            return Err(PauseError::NotFound {
                trigger: trigger.to_owned(),
            });
        };
        if !paused && config.paused {
            return Err(PauseError::PausedByAnnotation {
                trigger: trigger.to_owned(),
            });
        }
        let changed = self.overlay.set(trigger, paused).await?;
        if changed {
            self.switch(resolved)
                .await
                .map_err(|e| PauseError::Apply(format!("{e:#}")))?;
        }
        Ok(changed)
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Where brokers are reachable (`http://127.0.0.1:8080`), for their status.
    pub fn set_address_base(&self, base: String) {
        *self.address_base.lock().unwrap_or_else(|e| e.into_inner()) = Some(base);
    }

    /// Reads the `-f` files (off the async workers) and, if they differ from what runs (and,
    /// unless `force`, from what was last refused), validates them together with the API's
    /// documents and applies the result. `Ok(None)`: nothing to do.
    pub async fn reload_files(&self, force: bool) -> Result<Option<Changes>, ReloadError> {
        let _one = self.changing.lock().await;
        let paths = self.paths.clone();
        let files = tokio::task::spawn_blocking(move || config::read_files(&paths))
            .await
            .map_err(|e| ReloadError::Apply(format!("reading the files failed: {e}")))??;
        let api = {
            let documents = self.lock_documents();
            let same = documents.files == files && self.running();
            let refused = documents.refused.as_ref() == Some(&files);
            if same || (refused && !force) {
                return Ok(None);
            }
            documents.api.clone()
        };
        let config = match self.resolve(files.clone(), api.clone()).await {
            Ok(config) => config,
            Err(e) => {
                self.lock_documents().refused = Some(files);
                return Err(e.into());
            }
        };
        let changes = self
            .switch(config)
            .await
            .map_err(|e| ReloadError::Apply(format!("{e:#}")))?;
        *self.lock_documents() = Documents {
            files,
            api,
            refused: None,
        };
        Ok(Some(changes))
    }

    /// Whether a configuration was applied yet.
    fn running(&self) -> bool {
        self.runtime.has_config()
    }

    fn lock_documents(&self) -> std::sync::MutexGuard<'_, Documents> {
        self.documents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves files and API documents as one configuration, off the async workers
    /// (resolving reads `secretKeyRef` files).
    async fn resolve(
        &self,
        files: Vec<FileText>,
        api: Vec<ApiDocument>,
    ) -> Result<Config, ConfigError> {
        let (load, implicit) = (self.load.clone(), self.paths.is_empty());
        tokio::task::spawn_blocking(move || resolve_now(&files, &api, implicit, &load))
            .await
            .unwrap_or_else(|e| {
                Err(ConfigError {
                    file: String::new(),
                    document: 0,
                    field: String::new(),
                    message: format!("resolving the configuration failed: {e}"),
                })
            })
    }
}

/// Resolves `files` and `api` together; without `-f` files, broker `default/default` is
/// added unless the API defines it.
fn resolve_now(
    files: &[FileText],
    api: &[ApiDocument],
    implicit_default: bool,
    load: &LoadOptions,
) -> Result<Config, ConfigError> {
    let defines_default = api.iter().any(|d| {
        d.pointer("/kind").and_then(|k| k.as_str()) == Some("Broker")
            && d.pointer("/metadata/name").and_then(|k| k.as_str()) == Some("default")
            && d.pointer("/metadata/namespace")
                .and_then(|k| k.as_str())
                .unwrap_or("default")
                == "default"
    });
    if implicit_default && !defines_default {
        let mut all = Vec::with_capacity(api.len() + 1);
        all.push(default_broker());
        all.extend_from_slice(api);
        return config::resolve_all(files, &all, load);
    }
    config::resolve_all(files, api, load)
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid (file, document and field are in the error).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// Valid, but the running broker could not switch to it (a bus refused a subscription).
    #[error("applying the configuration failed: {0}")]
    Apply(String),
}

#[async_trait]
impl Apply for Live {
    async fn set_api_documents(&self, documents: Vec<ApiDocument>) -> Result<(), ConfigError> {
        let _one = self.changing.lock().await;
        let files = self.lock_documents().files.clone();
        let config = self.resolve(files, documents.clone()).await?;
        // Through `switch`, like a file reload: the pause overlay stays on top, and a later
        // pause by command starts from this configuration, API triggers included.
        self.switch(config).await.map_err(|e| ConfigError {
            file: "api".into(),
            document: 0,
            field: String::new(),
            message: format!("applying the configuration failed: {e:#}"),
        })?;
        self.lock_documents().api = documents;
        Ok(())
    }

    /// Resolves in the caller's thread: it reads `secretKeyRef` files, small and local, and
    /// the trait is synchronous.
    fn validate(&self, documents: &[ApiDocument]) -> Result<(), ConfigError> {
        let files = self.lock_documents().files.clone();
        resolve_now(&files, documents, self.paths.is_empty(), &self.load).map(|_| ())
    }

    fn file_documents(&self) -> Vec<FileDocument> {
        config::file_documents(&self.lock_documents().files)
    }

    fn status(&self) -> Vec<ResourceStatus> {
        let base = self
            .address_base
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match self.runtime.config_now() {
            Some(config) => status::of(
                &config,
                &self.runtime.unready(),
                base.as_deref(),
                &|trigger| self.runtime.last_error(trigger),
            ),
            None => Vec::new(),
        }
    }
}

/// The running [`Live`] as the management API holds it.
pub type SharedLive = Arc<Live>;
