//! Source resources: each spec is compiled by `herald-sources`; its `spec.sink` (and an
//! ApiServerSource's `spec.filters`) are resolved here, exactly like a trigger's subscriber and
//! filters, so the two can never disagree.

use std::sync::Arc;

use herald_sources::manifest::{
    ApiServerSourceSpec, CloudPubSubSourceSpec, GitHubSourceSpec, ManifestError, PingSourceSpec,
    SourceMeta,
};

use super::load::{ConfigError, Located};
use super::model::{SourceConfig, SourceKind};
use super::resolve::{Resolver, check_name, destination, filter, namespace, signer};
use super::resources::{Destination, Manifest};
use crate::filter::Filter;

impl Resolver {
    pub fn add_ping(&mut self, at: Located<Manifest<PingSourceSpec>>) -> Result<(), ConfigError> {
        let meta = source_meta(&at)?;
        let spec = &at.value.spec;
        let config = spec.compile(&meta).map_err(|e| manifest_error(&at, e))?;
        self.add_source(&at, meta, &spec.sink, SourceKind::Ping(Arc::new(config)))
    }

    pub fn add_api_server(
        &mut self,
        at: Located<Manifest<ApiServerSourceSpec>>,
    ) -> Result<(), ConfigError> {
        let meta = source_meta(&at)?;
        let spec = &at.value.spec;
        let config = spec.compile(&meta).map_err(|e| manifest_error(&at, e))?;
        let filters = spec
            .filters
            .iter()
            .enumerate()
            .map(|(i, f)| filter(&at, &format!("spec.filters[{i}]"), f))
            .collect::<Result<Vec<_>, _>>()?;
        let kind = SourceKind::ApiServer(Arc::new(config), Filter::All(filters));
        self.add_source(&at, meta, &spec.sink, kind)
    }

    pub fn add_github(
        &mut self,
        at: Located<Manifest<GitHubSourceSpec>>,
    ) -> Result<(), ConfigError> {
        let meta = source_meta(&at)?;
        let spec = &at.value.spec;
        let config = spec
            .compile(&meta, &self.options.secrets_dir)
            .map_err(|e| manifest_error(&at, e))?;
        self.add_source(&at, meta, &spec.sink, SourceKind::GitHub(Arc::new(config)))
    }

    pub fn add_cloud_pubsub(
        &mut self,
        at: Located<Manifest<CloudPubSubSourceSpec>>,
    ) -> Result<(), ConfigError> {
        let meta = source_meta(&at)?;
        let spec = &at.value.spec;
        let config = spec.compile(&meta).map_err(|e| manifest_error(&at, e))?;
        let kind = SourceKind::CloudPubSub(Arc::new(config));
        self.add_source(&at, meta, &spec.sink, kind)
    }

    fn add_source<S>(
        &mut self,
        at: &Located<Manifest<S>>,
        meta: SourceMeta,
        sink: &Destination,
        kind: SourceKind,
    ) -> Result<(), ConfigError> {
        let sink = destination(at, "spec.sink", &meta.namespace, sink)?;
        let signer = signer(at, &meta.annotations, &self.options)?;
        let source = SourceConfig {
            namespace: meta.namespace,
            name: meta.name,
            sink,
            kind,
            signer,
        };
        let duplicate = self.sources.iter().any(|s| {
            s.value.kind_name() == source.kind_name()
                && s.value.namespace == source.namespace
                && s.value.name == source.name
        });
        if duplicate {
            return Err(at.error(
                "metadata.name",
                format!("{} {source} is defined twice", source.kind_name()),
            ));
        }
        self.sources.push(Located {
            file: at.file.clone(),
            document: at.document,
            value: source,
        });
        Ok(())
    }
}

fn source_meta<S>(at: &Located<Manifest<S>>) -> Result<SourceMeta, ConfigError> {
    let meta = &at.value.metadata;
    check_name(at, &meta.name)?;
    Ok(SourceMeta {
        namespace: namespace(meta),
        name: meta.name.clone(),
        annotations: meta.annotations.clone(),
    })
}

fn manifest_error<T>(at: &Located<T>, error: ManifestError) -> ConfigError {
    at.error(&error.field, error.message)
}
