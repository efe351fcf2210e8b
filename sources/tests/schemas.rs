//! Every fixture's converted event validates against its schema under `schemas/`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures and write files directly"
)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Data};
use common::github::{config, delivery, fixture, fixture_names, now};
use common::schema::{load, validate};
use herald_sources::github::Mapping;
use herald_sources::kubernetes::{Change, EventContext, Mode, to_event};
use herald_sources::manifest::{PingSourceSpec, SourceMeta};
use serde_json::{Value, json};

fn data_json(data: Option<&Data>) -> Value {
    match data.unwrap() {
        Data::Binary(b) => serde_json::from_slice(b).unwrap(),
        Data::Json(v) => v.clone(),
        Data::String(s) => serde_json::from_str(s).unwrap(),
    }
}

#[test]
fn every_github_fixture_event_data_validates_against_its_event_schema() {
    let cfg = config(Mapping::Knative, &[]);
    for name in fixture_names() {
        let body = fixture(&name);
        let event = delivery(&name, &body, "d")
            .verify(&cfg.secret, false)
            .unwrap()
            .to_event(&cfg, now())
            .unwrap();
        let schema = load(&format!("github/{name}.json"));
        let errors = validate(&schema, &data_json(event.data()));
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn github_schemas_reject_payloads_missing_what_the_mapping_reads() {
    let schema = load("github/push.json");
    let mut payload: Value = serde_json::from_slice(&fixture("push")).unwrap();
    payload.as_object_mut().unwrap().remove("compare");
    assert!(!validate(&schema, &payload).is_empty());
}

#[test]
fn apiserver_event_data_validates_against_the_reference_and_resource_schemas() {
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "3"}, "data": {"k": "v"}});
    for (mode, schema) in [
        (Mode::Reference, "apiserver/reference.json"),
        (Mode::Resource, "apiserver/resource.json"),
    ] {
        let ctx = EventContext {
            api_server: "https://k8s".into(),
            plural: "configmaps".into(),
            mode,
            max_value_bytes: herald_sources::attribute::DEFAULT_MAX_VALUE_BYTES,
        };
        for change in [Change::Added, Change::Updated, Change::Deleted] {
            let event = to_event(change, &object, &ctx);
            let errors = validate(&load(schema), &data_json(event.data()));
            assert!(errors.is_empty(), "{schema}: {errors:?}");
        }
    }
}

#[test]
fn ping_event_envelope_validates_against_its_schema() {
    let spec: PingSourceSpec = serde_saphyr::from_str(
        "schedule: '*/5 * * * *'\ncontentType: application/json\ndata: '{\"a\": 1}'\nsink: {uri: http://x}\n",
    )
    .unwrap();
    let meta = SourceMeta {
        namespace: "ns".into(),
        name: "p".into(),
        ..Default::default()
    };
    let cfg = Arc::new(spec.compile(&meta).unwrap());
    let at: DateTime<Utc> = "2024-03-01T10:05:00Z".parse().unwrap();
    let event = cfg.to_event(at);
    assert_eq!(event.ty(), "dev.knative.sources.ping");
    let envelope = serde_json::to_value(&event).unwrap();
    let errors = validate(&load("ping/event.json"), &envelope);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn cloud_pubsub_event_data_validates_against_its_schema_and_foreign_fields_do_not() {
    use herald_sources::manifest::CloudPubSubSourceSpec;
    use herald_sources::pubsub::{PulledMessage, to_event};
    let spec: CloudPubSubSourceSpec =
        serde_saphyr::from_str("topic: orders\nproject: my-proj\nsink: {uri: http://x}\n").unwrap();
    let meta = SourceMeta {
        namespace: "ns".into(),
        name: "orders".into(),
        ..Default::default()
    };
    let cfg = spec.compile(&meta).unwrap();
    let schema = load("pubsub/message-published.json");
    for message in [
        PulledMessage {
            message_id: "1".into(),
            publish_time: "2026-12-01T06:26:45.643Z".into(),
            data: b"hi".to_vec(),
            attributes: [("a".to_owned(), "b".to_owned())].into(),
            ordering_key: "k".into(),
        },
        PulledMessage {
            message_id: "2".into(),
            publish_time: "2026-12-01T06:26:45Z".into(),
            ..Default::default()
        },
    ] {
        let event = to_event(&cfg, &message).unwrap();
        let errors = validate(&schema, &data_json(event.data()));
        assert!(errors.is_empty(), "{errors:?}");
    }
    let foreign = json!({"subscription": "s", "message": {"messageId": "1", "data": "", "publishTime": "t", "extra": 1}});
    assert!(!validate(&schema, &foreign).is_empty());
}
