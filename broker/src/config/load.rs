//! Reading manifests from files and directories.

use std::fmt;
use std::path::{Path, PathBuf};

use herald_sources::manifest::{
    API_SERVER_SOURCE, ApiServerSourceSpec, CLOUD_PUBSUB_SOURCE, CloudPubSubSourceSpec,
    GITHUB_SOURCE, GitHubSourceSpec, PING_SOURCE, PingSourceSpec,
};
use serde::de::DeserializeOwned;

use super::model::Config;
use super::resolve::Resolver;
use super::resources::{BrokerSpec, Manifest, TriggerSpec, TypeMeta};

/// A configuration error with where it is: file, document (1-based) and field path.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based index of the `---` document in the file; 0 when the error is about the file.
    pub document: usize,
    /// Dotted path of the offending field, e.g. `spec.delivery.backoffDelay`; empty if none.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.document > 0 {
            write!(f, ", document {}", self.document)?;
        }
        if !self.field.is_empty() {
            write!(f, ", field {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Settings of a load besides the manifests themselves.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where `secretKeyRef {name, key}` is read: `{secrets_dir}/{name}/{key}`.
    pub secrets_dir: PathBuf,
}

/// Where Kubernetes-style secret mounts are read unless `--secrets-dir` says otherwise.
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/secrets/herald";

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            secrets_dir: PathBuf::from(DEFAULT_SECRETS_DIR),
        }
    }
}

/// A parsed document with where it came from, for error messages.
pub(super) struct Located<T> {
    pub file: String,
    pub document: usize,
    pub value: T,
}

impl<T> Located<T> {
    pub fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            document: self.document,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Loads every manifest in `paths` (files, or directories of `*.yaml`/`*.yml`/`*.json`).
pub fn load_paths(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    load_paths_with(paths, &LoadOptions::default())
}

/// [`load_paths`] with explicit [`LoadOptions`]. Reads files: call it from a blocking context
/// (`herald serve` runs it on the blocking pool).
#[allow(
    clippy::disallowed_methods,
    reason = "blocking by contract: callers run it off the async workers"
)]
pub fn load_paths_with(paths: &[PathBuf], options: &LoadOptions) -> Result<Config, ConfigError> {
    resolve_all(&read_files(paths)?, &[], options)
}

/// A manifest file's path and text, as read (the running broker keeps them to validate API
/// documents against without reading again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileText {
    pub path: PathBuf,
    pub text: String,
}

/// Reads every manifest file of `paths` (directories expanded, sorted). Blocking.
#[allow(
    clippy::disallowed_methods,
    reason = "blocking by contract: callers run it off the async workers"
)]
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<FileText>, ConfigError> {
    let mut files = Vec::new();
    for path in paths {
        for file in expand(path)? {
            let text = std::fs::read_to_string(&file).map_err(|e| ConfigError {
                file: file.display().to_string(),
                document: 0,
                field: String::new(),
                message: format!("cannot read: {e}"),
            })?;
            files.push(FileText { path: file, text });
        }
    }
    Ok(files)
}

/// Resolves the files' manifests and the management API's documents as one configuration.
/// An API document is named `api {kind} {namespace}/{name}` in errors. Reads secret files
/// (`secretKeyRef`): call it off the async workers.
pub fn resolve_all(
    files: &[FileText],
    api: &[serde_json::Value],
    options: &LoadOptions,
) -> Result<Config, ConfigError> {
    let mut resolver = Resolver::new(options.clone());
    for file in files {
        read_documents(&file.path.display().to_string(), &file.text, &mut resolver)?;
    }
    for (index, value) in api.iter().enumerate() {
        let at = Located {
            file: api_name(value),
            document: index + 1,
            value: (),
        };
        add_document(&at, &Body::Json(value), &mut resolver)?;
    }
    resolver.finish()
}

fn api_name(value: &serde_json::Value) -> String {
    let text = |pointer: &str| value.pointer(pointer).and_then(|v| v.as_str());
    format!(
        "api {} {}/{}",
        text("/kind").unwrap_or("?"),
        text("/metadata/namespace").unwrap_or("default"),
        text("/metadata/name").unwrap_or("?")
    )
}

/// Every document of `files` as a JSON value, with its file and 1-based position.
pub fn file_documents(files: &[FileText]) -> Vec<crate::live::FileDocument> {
    let mut documents = Vec::new();
    for file in files {
        for (index, (_, doc)) in split_documents(&file.text).into_iter().enumerate() {
            // The typed load accepted this text, so it is YAML; a value YAML cannot give as
            // JSON (a non-string key) is left out rather than shown wrong.
            if let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(&doc) {
                documents.push(crate::live::FileDocument {
                    path: file.path.clone(),
                    index: index + 1,
                    value,
                });
            }
        }
    }
    documents
}

/// Loads manifests from a string (`name` stands for the file in errors).
pub fn load_str(name: &str, text: &str) -> Result<Config, ConfigError> {
    load_str_with(name, text, &LoadOptions::default())
}

/// [`load_str`] with explicit [`LoadOptions`].
pub fn load_str_with(name: &str, text: &str, options: &LoadOptions) -> Result<Config, ConfigError> {
    let mut resolver = Resolver::new(options.clone());
    read_documents(name, text, &mut resolver)?;
    resolver.finish()
}

#[allow(
    clippy::disallowed_methods,
    reason = "part of load_paths_with, which runs off the async workers"
)]
fn expand(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let error = |message: String| ConfigError {
        file: path.display().to_string(),
        document: 0,
        field: String::new(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| error(format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| error(format!("cannot list: {e}")))? {
        let entry = entry.map_err(|e| error(format!("cannot list: {e}")))?;
        let file = entry.path();
        let manifest = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if manifest && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// Splits a YAML stream at `---` lines. Each document is padded with the blank lines before
/// it, so the parser's line numbers are the file's.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1, String::new())];
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            docs.push((index + 2, "\n".repeat(index + 1)));
        } else {
            let doc = &mut docs.last_mut().expect("never empty").1;
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|(_, doc)| {
        doc.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

fn read_documents(file: &str, text: &str, resolver: &mut Resolver) -> Result<(), ConfigError> {
    for (index, (first_line, doc)) in split_documents(text).into_iter().enumerate() {
        let at = Located {
            file: file.to_owned(),
            document: index + 1,
            value: (),
        };
        add_document(
            &at,
            &Body::Yaml {
                first_line,
                text: &doc,
            },
            resolver,
        )?;
    }
    Ok(())
}

/// One manifest's text: a `---` document of a file, or a JSON document the management API
/// stored.
pub(super) enum Body<'a> {
    Yaml { first_line: usize, text: &'a str },
    Json(&'a serde_json::Value),
}

impl Body<'_> {
    fn parse<T: DeserializeOwned>(&self, at: &Located<()>) -> Result<T, ConfigError> {
        match self {
            Body::Yaml { first_line, text } => parse(at, *first_line, text),
            Body::Json(value) => T::deserialize(*value).map_err(|e| {
                let message = e.to_string();
                at.error(&field_of(&message), message)
            }),
        }
    }
}

/// Adds one manifest to `resolver`, by its `apiVersion` and `kind`.
pub(super) fn add_document(
    at: &Located<()>,
    body: &Body<'_>,
    resolver: &mut Resolver,
) -> Result<(), ConfigError> {
    let meta: TypeMeta = body.parse(at)?;
    let (Some(api_version), Some(kind)) = (meta.api_version, meta.kind) else {
        return Err(at.error("", "every document needs apiVersion and kind"));
    };
    match (api_version.as_str(), kind.as_str()) {
        ("eventing.knative.dev/v1", "Broker") => {
            let manifest: Manifest<Option<BrokerSpec>> = body.parse(at)?;
            resolver.add_broker(at.with(manifest))?;
        }
        ("eventing.knative.dev/v1", "Trigger") => {
            let manifest: Manifest<TriggerSpec> = body.parse(at)?;
            resolver.add_trigger(at.with(manifest))?;
        }
        ("messaging.knative.dev/v1", "Channel" | "InMemoryChannel")
        | ("messaging.knative.dev/v1beta1", "KafkaChannel") => {
            let manifest: Manifest<Option<super::channels::ChannelSpec>> = body.parse(at)?;
            resolver.add_channel(at.with(manifest))?;
        }
        ("messaging.knative.dev/v1", "Subscription") => {
            let manifest: Manifest<super::channels::SubscriptionSpec> = body.parse(at)?;
            resolver.add_subscription(at.with(manifest))?;
        }
        ("flows.knative.dev/v1", "Sequence") => {
            let manifest: Manifest<super::channels::SequenceSpec> = body.parse(at)?;
            resolver.add_sequence(at.with(manifest))?;
        }
        ("flows.knative.dev/v1", "Parallel") => {
            let manifest: Manifest<super::channels::ParallelSpec> = body.parse(at)?;
            resolver.add_parallel(at.with(manifest))?;
        }
        super::policies::EVENT_POLICY => {
            let manifest: Manifest<super::policies::EventPolicySpec> = body.parse(at)?;
            let located = at.with(manifest);
            let policy = super::policies::compile(&located)?;
            if resolver
                .policies
                .iter()
                .any(|p| p.namespace == policy.namespace && p.name == policy.name)
            {
                return Err(located.error(
                    "metadata.name",
                    format!(
                        "EventPolicy {}/{} is defined twice",
                        policy.namespace, policy.name
                    ),
                ));
            }
            resolver.policies.push(policy);
        }
        PING_SOURCE => {
            let manifest: Manifest<PingSourceSpec> = body.parse(at)?;
            resolver.add_ping(at.with(manifest))?;
        }
        API_SERVER_SOURCE => {
            let manifest: Manifest<ApiServerSourceSpec> = body.parse(at)?;
            resolver.add_api_server(at.with(manifest))?;
        }
        GITHUB_SOURCE => {
            let manifest: Manifest<GitHubSourceSpec> = body.parse(at)?;
            resolver.add_github(at.with(manifest))?;
        }
        CLOUD_PUBSUB_SOURCE => {
            let manifest: Manifest<CloudPubSubSourceSpec> = body.parse(at)?;
            resolver.add_cloud_pubsub(at.with(manifest))?;
        }
        (_, "PingSource" | "ApiServerSource" | "GitHubSource" | "CloudPubSubSource") => {
            let expected = [
                PING_SOURCE,
                API_SERVER_SOURCE,
                GITHUB_SOURCE,
                CLOUD_PUBSUB_SOURCE,
            ]
            .into_iter()
            .find(|(_, k)| *k == kind)
            .map_or("", |(v, _)| v);
            return Err(at.error(
                "apiVersion",
                format!("{kind} is read as apiVersion {expected}, not {api_version}"),
            ));
        }
        _ => {
            return Err(at.error(
                "kind",
                format!(
                    "unknown kind {kind} of apiVersion {api_version} (expected \
                     eventing.knative.dev/v1 Broker or Trigger, sources.knative.dev/v1 \
                     PingSource or ApiServerSource, sources.knative.dev/v1alpha1 \
                     GitHubSource, events.cloud.google.com/v1 CloudPubSubSource, \
                     eventing.knative.dev/v1alpha1 EventPolicy, \
                     messaging.knative.dev/v1 Channel, InMemoryChannel or Subscription, \
                     messaging.knative.dev/v1beta1 KafkaChannel, flows.knative.dev/v1 \
                     Sequence or Parallel)"
                ),
            ));
        }
    }
    Ok(())
}

impl Located<()> {
    pub(super) fn with<T>(&self, value: T) -> Located<T> {
        Located {
            file: self.file.clone(),
            document: self.document,
            value,
        }
    }
}

fn parse<T: DeserializeOwned>(
    at: &Located<()>,
    first_line: usize,
    doc: &str,
) -> Result<T, ConfigError> {
    serde_saphyr::from_str(doc).map_err(|e| {
        let message = e.to_string();
        at.error(
            &field_of(&message),
            format!("{message} (document starts at line {first_line})"),
        )
    })
}

/// The field serde names in `message` (unknown or missing), if it names one; the parser's
/// own message has the position.
fn field_of(message: &str) -> String {
    message
        .split("unknown field `")
        .nth(1)
        .or_else(|| message.split("missing field `").nth(1))
        .and_then(|rest| rest.split('`').next())
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_separator_lines_and_skip_empty_ones() {
        let docs = split_documents("# c\n---\na: 1\n---\n\n--- \nb: 2\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0], (3, "\n\na: 1\n".to_owned()));
        assert_eq!(docs[1].1.trim_start(), "b: 2\n");
    }
}
