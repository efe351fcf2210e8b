use std::collections::BTreeMap;

use super::*;
use crate::kubernetes::{Mode, NamespaceScope};

fn meta(annotations: &[(&str, &str)]) -> SourceMeta {
    SourceMeta {
        namespace: "ns".into(),
        name: "src".into(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

const API_SERVER: &str = "
mode: Resource
serviceAccountName: watcher
resources:
  - apiVersion: v1
    kind: Event
  - apiVersion: apps/v1
    kind: Deployment
    selector:
      matchLabels: {app: web}
      matchExpressions:
        - {key: tier, operator: In, values: [front, back]}
        - {key: canary, operator: DoesNotExist}
owner: {apiVersion: apps/v1, kind: ReplicaSet}
namespaceSelector: {matchLabels: {env: prod}}
filters:
  - prefix: {type: dev.knative.apiserver.resource}
sink:
  ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}
ceOverrides: {extensions: {cluster: east}}
";

#[test]
fn api_server_source_compiles_selectors_into_query_syntax() {
    let spec: ApiServerSourceSpec = serde_saphyr::from_str(API_SERVER).unwrap();
    let cfg = spec.compile(&meta(&[])).unwrap();
    assert_eq!(cfg.mode, Mode::Resource);
    assert_eq!(cfg.resources[0].label_selector, None);
    assert_eq!(
        cfg.resources[1].label_selector.as_deref(),
        Some("app=web,tier in (front,back),!canary")
    );
    assert_eq!(cfg.namespaces, NamespaceScope::Matching("env=prod".into()));
    assert_eq!(cfg.owner.unwrap().kind, "ReplicaSet");
    assert_eq!(spec.filters.len(), 1);
}

#[test]
fn api_server_source_without_namespace_selector_watches_its_own_namespace() {
    let spec: ApiServerSourceSpec =
        serde_saphyr::from_str("resources: [{apiVersion: v1, kind: Pod}]\nsink: {uri: http://x}\n")
            .unwrap();
    let cfg = spec.compile(&meta(&[])).unwrap();
    assert_eq!(cfg.namespaces, NamespaceScope::Only("ns".into()));
    assert_eq!(cfg.mode, Mode::Reference);
}

#[test]
fn api_server_source_errors_name_the_field() {
    for (yaml, field) in [
        ("resources: []\nsink: {uri: http://x}\n", "spec.resources"),
        (
            "resources: [{apiVersion: v1, kind: Pod}]\nmode: Full\nsink: {uri: http://x}\n",
            "spec.mode",
        ),
        (
            "resources: [{apiVersion: v1, kind: Pod}]\nsink: {}\n",
            "spec.sink",
        ),
        (
            "resources: [{apiVersion: v1, kind: Pod, selector: {matchExpressions: [{key: a, operator: Near}]}}]\nsink: {uri: http://x}\n",
            "spec.resources[0].selector.matchExpressions[0].operator",
        ),
    ] {
        let spec: ApiServerSourceSpec = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(spec.compile(&meta(&[])).unwrap_err().field, field, "{yaml}");
    }
}

fn github_spec() -> GitHubSourceSpec {
    serde_saphyr::from_str(
        "ownerAndRepository: octo-org/hello-world\neventTypes: [push]\n\
         accessToken: {secretKeyRef: {name: gh, key: access}}\n\
         secretToken: {secretKeyRef: {name: gh, key: secret}}\nsink: {uri: http://x}\n",
    )
    .unwrap()
}

#[test]
fn github_source_reads_its_secret_and_annotations() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("gh")).unwrap();
    std::fs::write(dir.path().join("gh/secret"), "s3cret\n").unwrap();
    let m = meta(&[
        (GITHUB_MAPPING_ANNOTATION, "cloudevents-adapter"),
        (GITHUB_ALLOW_SHA1_ANNOTATION, "true"),
        (GITHUB_REDELIVERY_WINDOW_ANNOTATION, "PT1H"),
    ]);
    let cfg = github_spec().compile(&m, dir.path()).unwrap();
    assert_eq!(cfg.source, "https://github.com/octo-org/hello-world");
    assert_eq!(cfg.mapping, crate::github::Mapping::CloudEventsAdapter);
    assert!(cfg.allow_sha1);
    assert_eq!(cfg.redelivery_window, std::time::Duration::from_secs(3600));
    assert!(cfg.event_types.allows("push") && !cfg.event_types.allows("issues"));
}

#[test]
fn github_source_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let err = github_spec().compile(&meta(&[]), dir.path()).unwrap_err();
    assert_eq!(err.field, "spec.secretToken.secretKeyRef");
    std::fs::create_dir_all(dir.path().join("gh")).unwrap();
    std::fs::write(dir.path().join("gh/secret"), "s").unwrap();
    let err = github_spec()
        .compile(&meta(&[(GITHUB_MAPPING_ANNOTATION, "custom")]), dir.path())
        .unwrap_err();
    assert_eq!(
        err.field,
        format!("metadata.annotations.{GITHUB_MAPPING_ANNOTATION}")
    );
    let mut bad = github_spec();
    bad.owner_and_repository = "a/b/c".into();
    assert_eq!(
        bad.compile(&meta(&[]), dir.path()).unwrap_err().field,
        "spec.ownerAndRepository"
    );
    bad = github_spec();
    bad.event_types = vec!["push".into(), "Pull Request".into()];
    assert_eq!(
        bad.compile(&meta(&[]), dir.path()).unwrap_err().field,
        "spec.eventTypes[1]"
    );
}

#[test]
fn go_and_iso_durations_parse() {
    assert_eq!(parse_go_duration("1h30m").unwrap().as_secs(), 5400);
    assert_eq!(parse_go_duration("1.5s").unwrap().as_millis(), 1500);
    assert!(parse_go_duration("10").is_err() && parse_go_duration("5d").is_err());
    assert_eq!(parse_iso8601("P3D").unwrap().as_secs(), 259_200);
    assert_eq!(parse_iso8601("PT72H").unwrap().as_secs(), 259_200);
    assert!(parse_iso8601("72h").is_err() && parse_iso8601("PT").is_err());
}

#[test]
fn github_previous_secret_is_read_and_references_out_of_the_secrets_dir_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("gh")).unwrap();
    std::fs::write(dir.path().join("gh/secret"), "new-secret").unwrap();
    std::fs::write(dir.path().join("gh/old"), "old-secret\n").unwrap();
    let annotation = format!("metadata.annotations.{GITHUB_PREVIOUS_SECRET_ANNOTATION}");
    let cfg = github_spec()
        .compile(
            &meta(&[(GITHUB_PREVIOUS_SECRET_ANNOTATION, "gh/old")]),
            dir.path(),
        )
        .unwrap();
    assert_eq!(cfg.secrets().len(), 2);
    for bad in ["gh/../gh/old", "../gh/old", "gh/", "gh", "gh/missing"] {
        let err = github_spec()
            .compile(
                &meta(&[(GITHUB_PREVIOUS_SECRET_ANNOTATION, bad)]),
                dir.path(),
            )
            .unwrap_err();
        assert_eq!(err.field, annotation, "{bad:?}");
        assert!(!err.message.contains("old-secret"), "{err}");
    }
    let mut bad = github_spec();
    bad.secret_token.secret_key_ref.key = "../x".into();
    let err = bad.compile(&meta(&[]), dir.path()).unwrap_err();
    assert_eq!(err.field, "spec.secretToken.secretKeyRef.key");
    assert!(err.message.contains("\"../x\""), "{err}");
}
