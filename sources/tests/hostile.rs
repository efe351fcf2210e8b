//! Hostile input at conversion: every string a GitHub payload carries made long and full of
//! control characters, for every fixture and both mappings, must still give an event that
//! ingress accepts (no control characters, at most 64 extensions, at most 16 KiB of
//! attributes), with the payload unchanged as data. A source event is never lost to ingress
//! validation.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures and write secrets directly"
)]

mod common;

use cloudevents::{AttributesReader, Data, Event};
use common::github::{config, delivery, fixture, fixture_names, now};
use herald_sources::attribute::has_control;
use herald_sources::github::Mapping;
use herald_sources::manifest::{PingSourceSpec, SourceMeta};
use serde_json::Value;

/// What ingress checks by default (control characters, the `source` URI-reference, the caps),
/// as a list of violations.
fn violations(event: &Event) -> Vec<String> {
    let mut found = Vec::new();
    let mut total = 0;
    for (name, value) in event.iter() {
        let text = value.to_string();
        if has_control(&text) {
            found.push(format!("{name} has a control character"));
        }
        total += name.len() + text.len();
    }
    let source = event.source().to_string();
    let mut bytes = source.bytes().peekable();
    let mut uri = !source.is_empty();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next(), bytes.next()];
            uri &= hex.iter().all(|h| h.is_some_and(|h| h.is_ascii_hexdigit()));
        } else {
            uri &= b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b);
        }
    }
    if !uri {
        found.push(format!("source {source:?} is not a URI-reference"));
    }
    let extensions = event.iter_extensions().count();
    if extensions > 64 {
        found.push(format!("{extensions} extensions"));
    }
    if total > 16 * 1024 {
        found.push(format!("{total} bytes of attributes"));
    }
    found
}

/// Every string in `value` with 1,500 bytes and a log-forging tail appended.
fn poison(value: &mut Value) {
    match value {
        Value::String(s) => {
            s.push_str("\n\u{0}\u{1b}[31m\r\u{7f}\u{85}forged ");
            s.push_str(&"x".repeat(1500));
        }
        Value::Array(items) => items.iter_mut().for_each(poison),
        Value::Object(map) => map.values_mut().for_each(poison),
        _ => {}
    }
}

#[test]
fn every_payload_string_made_hostile_still_converts_to_an_event_ingress_accepts() {
    for mapping in [Mapping::Knative, Mapping::CloudEventsAdapter] {
        let cfg = config(mapping, &[]);
        for name in fixture_names() {
            let mut json: Value = serde_json::from_slice(&fixture(&name)).unwrap();
            poison(&mut json);
            if name == "gollum" {
                // Hundreds of pages: the subject joins their names.
                let page = json["pages"][0].clone();
                json["pages"] = Value::Array(vec![page; 300]);
            }
            let body = serde_json::to_vec(&json).unwrap();
            let event = delivery(&name, &body, "d-1")
                .verify(&cfg.secret, false)
                .unwrap()
                .to_event(&cfg, now())
                .unwrap();
            assert_eq!(
                violations(&event),
                Vec::<String>::new(),
                "{mapping:?} {name}"
            );
            assert_eq!(
                event.data(),
                Some(&Data::Binary(body)),
                "{name}: data unchanged"
            );
        }
    }
}

#[test]
fn a_hostile_branch_name_is_percent_encoded_in_the_knative_extension() {
    let cfg = config(Mapping::Knative, &[]);
    let mut json: Value = serde_json::from_slice(&fixture("push")).unwrap();
    json["ref"] = Value::String("refs/heads/x\n\u{0}y".into());
    let body = serde_json::to_vec(&json).unwrap();
    let event = delivery("push", &body, "d-2")
        .verify(&cfg.secret, false)
        .unwrap()
        .to_event(&cfg, now())
        .unwrap();
    assert_eq!(
        event.extension("ref").map(ToString::to_string).as_deref(),
        Some("refs/heads/x%0A%00y")
    );
}

#[test]
fn ping_overrides_and_content_type_with_control_characters_fail_the_load() {
    let meta = SourceMeta {
        namespace: "ns".into(),
        name: "tick".into(),
        ..Default::default()
    };
    for (yaml, field) in [
        (
            "schedule: '* * * * *'\nceOverrides: {extensions: {team: \"a\\nb\"}}\nsink: {uri: http://x}\n",
            "spec.ceOverrides.extensions.team",
        ),
        (
            "schedule: '* * * * *'\ncontentType: \"text/plain\\r\\nx: y\"\ndata: hi\nsink: {uri: http://x}\n",
            "spec.contentType",
        ),
        (
            "schedule: '* * * * *'\ncontentType: a/b/c\ndata: hi\nsink: {uri: http://x}\n",
            "spec.contentType",
        ),
    ] {
        let spec: PingSourceSpec = serde_saphyr::from_str(yaml).unwrap();
        let err = spec.compile(&meta).unwrap_err();
        assert_eq!(err.field, field, "{err}");
    }
    // Data is not an attribute: control characters there are the subscriber's business.
    let spec: PingSourceSpec = serde_saphyr::from_str(
        "schedule: '* * * * *'\ndata: \"a\\u0000b\\nc\"\nsink: {uri: http://x}\n",
    )
    .unwrap();
    let config = spec.compile(&meta).unwrap();
    assert_eq!(violations(&config.to_event(now())), Vec::<String>::new());
}

#[test]
fn overrides_beyond_the_caps_fail_the_load_naming_the_limit() {
    let meta = SourceMeta {
        namespace: "ns".into(),
        name: "tick".into(),
        ..Default::default()
    };
    let many: Vec<String> = (0..33).map(|i| format!("e{i}: v")).collect();
    let big = format!("big: {}", "v".repeat(5000));
    for extensions in [many.join(", "), big] {
        let yaml = format!(
            "schedule: '* * * * *'\nceOverrides: {{extensions: {{{extensions}}}}}\nsink: {{uri: http://x}}\n"
        );
        let spec: PingSourceSpec = serde_saphyr::from_str(&yaml).unwrap();
        let err = spec.compile(&meta).unwrap_err();
        assert_eq!(err.field, "spec.ceOverrides.extensions", "{err}");
        assert!(err.message.contains("at most 32"), "{err}");
    }
}

#[test]
fn an_overlong_event_name_header_is_refused_with_400() {
    let cfg = config(Mapping::Knative, &[]);
    let body = fixture("push");
    let err = delivery(&"push".repeat(100), &body, "d-3")
        .verify(&cfg.secret, false)
        .unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{err}");
    assert!(err.to_string().contains("X-GitHub-Event"), "{err}");
}
