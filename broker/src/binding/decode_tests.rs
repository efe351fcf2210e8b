use super::*;
use cloudevents::AttributesReader;
use cloudevents::event::SpecVersion;
use http::HeaderValue;

fn binary_headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in pairs {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    headers
}

const REQUIRED: [(&str, &str); 4] = [
    ("ce-specversion", "1.0"),
    ("ce-id", "1"),
    ("ce-source", "/s"),
    ("ce-type", "t"),
];

#[test]
fn binary_mode_decodes_percent_encoded_values_and_keeps_the_body() {
    let mut pairs = REQUIRED.to_vec();
    pairs.push(("ce-subject", "caf%C3%A9%20%22x%22"));
    pairs.push(("ce-myext", "a%25b"));
    pairs.push(("content-type", "application/json"));
    let events = decode(&binary_headers(&pairs), Bytes::from_static(b"{\"a\":1}")).unwrap();
    let e = &events[0];
    assert_eq!(e.subject(), Some("café \"x\""));
    assert_eq!(
        e.extension("myext"),
        Some(&ExtensionValue::String("a%b".into()))
    );
    assert_eq!(e.datacontenttype(), Some("application/json"));
    assert_eq!(e.data(), Some(&Data::Binary(b"{\"a\":1}".to_vec())));
}

#[test]
fn binary_mode_reports_each_missing_required_attribute() {
    for missing in ["ce-id", "ce-source", "ce-type"] {
        let pairs: Vec<_> = REQUIRED
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        let err = decode(&binary_headers(&pairs), Bytes::new()).unwrap_err();
        assert!(err.to_string().contains(missing), "{err}");
    }
}

#[test]
fn binary_mode_rejects_bad_time_source_and_extension_names() {
    for (k, v, expect) in [
        ("ce-time", "yesterday", "RFC 3339"),
        ("ce-source", "a b", "URI-reference"),
        ("ce-my_ext", "x", "attribute name"),
        ("ce-specversion", "2.0", "specversion"),
    ] {
        let mut pairs: Vec<_> = REQUIRED.iter().copied().filter(|(n, _)| *n != k).collect();
        pairs.push((k, v));
        let err = decode(&binary_headers(&pairs), Bytes::new()).unwrap_err();
        assert!(err.to_string().contains(expect), "{k}: {err}");
    }
}

#[test]
fn spec_version_03_is_read() {
    let mut pairs = REQUIRED.to_vec();
    pairs[0] = ("ce-specversion", "0.3");
    let events = decode(&binary_headers(&pairs), Bytes::new()).unwrap();
    assert_eq!(events[0].specversion(), SpecVersion::V03);
}

fn structured(body: &str) -> Result<Vec<Event>, BindingError> {
    let headers = binary_headers(&[(
        "content-type",
        "application/cloudevents+json; charset=utf-8",
    )]);
    decode(&headers, Bytes::from(body.to_owned()))
}

#[test]
fn structured_mode_reads_data_and_data_base64() {
    let e = &structured(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/json","data":{"a":1},"count":5,"flag":true}"#).unwrap()[0];
    assert_eq!(e.data(), Some(&Data::Json(serde_json::json!({"a": 1}))));
    assert_eq!(e.extension("count"), Some(&ExtensionValue::Integer(5)));
    assert_eq!(e.extension("flag"), Some(&ExtensionValue::Boolean(true)));
    let e = &structured(
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAEC"}"#,
    )
    .unwrap()[0];
    assert_eq!(e.data(), Some(&Data::Binary(vec![0, 1, 2])));
}

#[test]
fn structured_mode_names_the_problem() {
    for (body, expect) in [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        (r#"{"id":"1","source":"/s","type":"t"}"#, "specversion"),
        (r#"{"specversion":"1.0","source":"/s","type":"t"}"#, "id"),
        (
            r#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#,
            "id must not be empty",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad":"x"}"#,
            "attribute name",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","x":1.5}"#,
            "unsupported type",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}"#,
            "not both",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"noon"}"#,
            "RFC 3339",
        ),
        (
            r#"{"specversion":"1.0","id":1,"source":"/s","type":"t"}"#,
            "must be a string",
        ),
    ] {
        let err = structured(body).unwrap_err();
        assert!(err.to_string().contains(expect), "{body}: {err}");
    }
}

#[test]
fn batch_is_all_or_nothing() {
    let headers = binary_headers(&[("content-type", "application/cloudevents-batch+json")]);
    let ok = r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","source":"/s","type":"t"}]"#;
    assert_eq!(decode(&headers, Bytes::from(ok)).unwrap().len(), 2);
    let bad = r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","source":"/s","type":"t"}]"#;
    let err = decode(&headers, Bytes::from(bad)).unwrap_err();
    assert!(err.to_string().contains("batch event 1"), "{err}");
}

#[test]
fn unsupported_structured_formats_are_415() {
    let headers = binary_headers(&[("content-type", "application/cloudevents+xml")]);
    assert!(matches!(
        decode(&headers, Bytes::new()),
        Err(BindingError::UnsupportedFormat(_))
    ));
}

#[test]
fn plain_body_without_specversion_is_not_an_event() {
    let headers = binary_headers(&[("content-type", "application/json")]);
    let err = decode(&headers, Bytes::from_static(b"{}")).unwrap_err();
    assert!(err.to_string().contains("ce-specversion"), "{err}");
}

#[test]
fn binary_mode_without_time_gets_no_invented_time() {
    let events = decode(&binary_headers(&REQUIRED), Bytes::new()).unwrap();
    assert_eq!(events[0].time(), None);
    assert_eq!(events[0].iter_extensions().count(), 0);
}
