use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;

use super::*;
use crate::manifest::{PingSourceSpec, SourceMeta};

pub(crate) fn config(yaml: &str) -> PingConfig {
    let spec: PingSourceSpec = serde_saphyr::from_str(yaml).unwrap();
    let meta = SourceMeta {
        namespace: "ns".into(),
        name: "tick".into(),
        ..Default::default()
    };
    spec.compile(&meta).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn ping_event_has_knative_attributes_and_the_scheduled_time() {
    let cfg = config(
        "schedule: '* * * * *'\ncontentType: application/json\ndata: '{\"m\": 1}'\nsink: {uri: http://x}\n",
    );
    let e = cfg.to_event(at("2024-03-01T10:05:00Z"));
    assert_eq!(e.ty(), "dev.knative.sources.ping");
    assert_eq!(
        e.source().to_string(),
        "/apis/v1/namespaces/ns/pingsources/tick"
    );
    assert_eq!(e.time(), Some(&at("2024-03-01T10:05:00Z")));
    assert_eq!(e.datacontenttype(), Some("application/json"));
    assert_eq!(
        e.data(),
        Some(&cloudevents::Data::Binary(b"{\"m\": 1}".to_vec()))
    );
    assert!(uuid::Uuid::parse_str(e.id()).is_ok());
}

#[test]
fn ping_ids_are_uuids_stable_per_scheduled_time() {
    let cfg = config("schedule: '* * * * *'\nsink: {uri: http://x}\n");
    let a = cfg.to_event(at("2024-03-01T10:05:00Z"));
    let b = cfg.to_event(at("2024-03-01T10:05:00Z"));
    let c = cfg.to_event(at("2024-03-01T10:06:00Z"));
    assert_eq!(a.id(), b.id());
    assert_ne!(a.id(), c.id());
    assert!(a.data().is_none() && a.datacontenttype().is_none());
}

#[test]
fn data_base64_is_decoded_into_the_event_data() {
    let cfg = config(
        "schedule: '@hourly'\ncontentType: application/octet-stream\ndataBase64: AAEC\nsink: {uri: http://x}\n",
    );
    let e = cfg.to_event(at("2024-03-01T10:00:00Z"));
    assert_eq!(e.data(), Some(&cloudevents::Data::Binary(vec![0, 1, 2])));
}

#[test]
fn data_and_data_base64_together_are_refused() {
    let spec: PingSourceSpec = serde_saphyr::from_str(
        "schedule: '@hourly'\ndata: a\ndataBase64: AAEC\nsink: {uri: http://x}\n",
    )
    .unwrap();
    let err = spec.compile(&SourceMeta::default()).unwrap_err();
    assert_eq!(err.field, "spec.dataBase64");
}

#[test]
fn unknown_spec_fields_fail_the_load() {
    let err = serde_saphyr::from_str::<PingSourceSpec>(
        "schedule: '@hourly'\nschedul: x\nsink: {uri: http://x}\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("schedul"), "{err}");
}

#[test]
fn ce_overrides_become_extensions() {
    let cfg = config(
        "schedule: '@hourly'\nsink: {uri: http://x}\nceOverrides: {extensions: {team: infra}}\n",
    );
    let e = cfg.to_event(at("2024-03-01T10:00:00Z"));
    assert_eq!(
        e.extension("team").map(|v| v.to_string()),
        Some("infra".to_string())
    );
}
