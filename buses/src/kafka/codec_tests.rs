use cloudevents::event::{Data, ExtensionValue};
use cloudevents::{AttributesReader, EventBuilder, EventBuilderV03, EventBuilderV10};

use super::*;
use crate::contract::fixtures;

fn round_trip(event: &Event) -> Event {
    let record = encode(event).expect("encodes");
    decode(&record.raw_headers(), record.value.as_deref()).expect("decodes")
}

fn get<'a>(record: &'a Record, name: &str) -> &'a str {
    record
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("header {name} missing"))
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs
        .iter()
        .map(|(key, value)| (key.as_bytes().to_vec(), value.as_bytes().to_vec()))
        .collect()
}

fn raw(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<RawHeader<'_>> {
    headers
        .iter()
        .map(|(key, value)| RawHeader {
            key,
            value: Some(value),
        })
        .collect()
}

#[test]
fn every_attribute_type_round_trips_in_binary_mode() {
    let event = fixtures::rich_event();
    assert_eq!(round_trip(&event), event);
}

#[test]
fn binary_mode_uses_ce_headers_content_type_and_partitionkey_as_key() {
    let event = fixtures::rich_event();
    let record = encode(&event).unwrap();
    assert_eq!(get(&record, "ce_specversion"), "1.0");
    assert_eq!(get(&record, "ce_id"), "rich-1");
    assert_eq!(get(&record, "ce_source"), "https://example.com/source?x=1");
    assert_eq!(get(&record, "ce_type"), "dev.herald.rich");
    assert_eq!(get(&record, "ce_subject"), "a/b");
    assert_eq!(get(&record, "ce_time"), "2024-05-06T07:08:09.123+00:00");
    assert_eq!(get(&record, "content-type"), "application/octet-stream");
    assert_eq!(
        get(&record, "ce_dataschema"),
        "https://example.com/schema.json"
    );
    assert_eq!(get(&record, "ce_partitionkey"), "k1");
    assert_eq!(get(&record, "ce_count"), "42");
    assert_eq!(get(&record, "ce_flag"), "false");
    assert!(
        !record
            .headers
            .iter()
            .any(|(n, _)| n == "ce_datacontenttype"),
        "datacontenttype travels only as content-type"
    );
    assert_eq!(record.key.as_deref(), Some("k1"));
    assert_eq!(record.value.as_deref(), Some(&[0u8, 1, 2, 255][..]));
}

#[test]
fn events_without_partitionkey_have_no_key_and_without_data_no_value() {
    let event = EventBuilderV10::new()
        .id("x")
        .source("/s")
        .ty("t")
        .build()
        .unwrap();
    let record = encode(&event).unwrap();
    assert_eq!(record.key, None);
    assert_eq!(record.value, None);
    assert_eq!(round_trip(&event), event);
}

#[test]
fn data_variants_round_trip() {
    let base = || EventBuilderV10::new().id("d").source("/s").ty("t");
    let events = [
        base().build().unwrap(),
        base()
            .data(
                "application/json",
                serde_json::json!({"b": [1, 2], "a": null}),
            )
            .build()
            .unwrap(),
        base().data("text/plain", "héllo").build().unwrap(),
        base()
            .data("application/octet-stream", Vec::<u8>::new())
            .build()
            .unwrap(),
        base()
            .data("application/json", b"{\"raw\": 1}".to_vec())
            .build()
            .unwrap(),
    ];
    for event in &events {
        assert_eq!(&round_trip(event), event);
    }
}

#[test]
fn typed_extensions_and_non_ascii_values_round_trip() {
    let event = EventBuilderV10::new()
        .id("id with spaces \"and quotes\"")
        .source("/s")
        .ty("t")
        .subject("Euro \u{20AC} \u{1F600} 100%")
        .extension("partitionkey", "123")
        .extension("n", -7i64)
        .extension("yes", true)
        .build()
        .unwrap();
    let record = encode(&event).unwrap();
    assert_eq!(get(&record, "ce_subject"), "Euro \u{20AC} \u{1F600} 100%");
    let back = round_trip(&event);
    assert_eq!(
        back.extension("partitionkey"),
        Some(&ExtensionValue::String("123".into()))
    );
    assert_eq!(back.extension("n"), Some(&ExtensionValue::Integer(-7)));
    assert_eq!(back.extension("yes"), Some(&ExtensionValue::Boolean(true)));
    assert_eq!(back, event);
}

#[test]
fn a_non_string_partitionkey_is_still_the_key() {
    let event = EventBuilderV10::new()
        .id("p")
        .source("/s")
        .ty("t")
        .extension("partitionkey", 17i64)
        .build()
        .unwrap();
    assert_eq!(encode(&event).unwrap().key.as_deref(), Some("17"));
    assert_eq!(round_trip(&event), event);
}

#[test]
fn specversion_0_3_round_trips() {
    let event = EventBuilderV03::new()
        .id("old")
        .source("/s")
        .ty("t")
        .subject("sub")
        .data("text/plain", "x")
        .build()
        .unwrap();
    assert_eq!(round_trip(&event), event);
}

/// What Knative's Kafka broker (the Java SDK's Kafka serializer) writes in binary mode.
#[test]
fn foreign_binary_records_decode_with_string_extensions_and_binary_data() {
    let h = headers(&[
        ("ce_specversion", "1.0"),
        ("ce_id", "1234-1234-1234"),
        ("ce_source", "/mycontext/subcontext"),
        ("ce_type", "com.example.someevent"),
        ("ce_time", "2018-04-05T03:56:24Z"),
        ("ce_count", "5"),
        ("ce_knativearrivaltime", "2018-04-05T03:56:25Z"),
        ("content-type", "application/json"),
    ]);
    let event = decode(&raw(&h), Some(b"{\"a\":1}")).unwrap();
    assert_eq!(event.id(), "1234-1234-1234");
    assert_eq!(event.datacontenttype(), Some("application/json"));
    assert_eq!(
        event.extension("count"),
        Some(&ExtensionValue::String("5".into()))
    );
    assert_eq!(event.data(), Some(&Data::Binary(b"{\"a\":1}".to_vec())));
}

#[test]
fn a_foreign_ce_datacontenttype_header_is_read_when_content_type_is_absent() {
    let h = headers(&[
        ("ce_specversion", "1.0"),
        ("ce_id", "1"),
        ("ce_source", "/s"),
        ("ce_type", "t"),
        ("ce_datacontenttype", "text/plain"),
    ]);
    let event = decode(&raw(&h), Some(b"x")).unwrap();
    assert_eq!(event.datacontenttype(), Some("text/plain"));
}

#[test]
fn structured_json_records_decode() {
    let event = fixtures::rich_event();
    let value = serde_json::to_vec(&event).unwrap();
    let h = headers(&[(
        "content-type",
        "Application/CloudEvents+JSON; charset=utf-8",
    )]);
    assert_eq!(decode(&raw(&h), Some(&value)).unwrap(), event);

    let h = headers(&[("content-type", "application/cloudevents+avro")]);
    assert!(matches!(
        decode(&raw(&h), Some(&value)),
        Err(DecodeError::UnsupportedFormat(_))
    ));
}

#[test]
fn records_that_are_not_cloudevents_are_rejected() {
    let h = headers(&[("ce_id", "1")]);
    assert!(decode(&raw(&h), Some(b"x")).is_err());
    assert!(decode(&[], Some(b"not json")).is_err());
    let h = vec![(b"ce_specversion".to_vec(), vec![0xff_u8, 0xfe])];
    assert!(matches!(
        decode(&raw(&h), None),
        Err(DecodeError::BadHeaderValue { .. })
    ));
}

/// The record of the issue: `ce` then a two-byte character straddling the prefix's end.
#[test]
fn a_header_name_with_a_multi_byte_character_at_byte_2_is_no_attribute_and_no_panic() {
    let mut h = headers(&[
        ("ce_specversion", "1.0"),
        ("ce_id", "1"),
        ("ce_source", "/s"),
        ("ce_type", "t"),
    ]);
    h.push(("ceé".as_bytes().to_vec(), b"x".to_vec()));
    assert_eq!(decode(&raw(&h), None).unwrap().id(), "1");
    h.push((vec![b'c', b'e', b'_', 0xff], b"x".to_vec()));
    assert!(matches!(
        decode(&raw(&h), None),
        Err(DecodeError::BadHeaderName { .. })
    ));
    h.pop();
    h.push((vec![0xff, b'x'], b"x".to_vec()));
    assert_eq!(decode(&raw(&h), None).unwrap().id(), "1");
}

#[test]
fn extension_names_headers_cannot_carry_back_are_refused() {
    for name in ["Upper", "a,b", "a=b", "nul\0", ""] {
        let mut event = fixtures::rich_event();
        event.set_extension(name, "v");
        assert!(
            matches!(encode(&event), Err(EncodeError::ExtensionName(_))),
            "{name:?} accepted"
        );
    }
}

#[test]
fn wire_size_bounds_key_value_and_headers() {
    let event = fixtures::rich_event();
    let record = encode(&event).unwrap();
    let exact: usize = record.key.as_ref().map_or(0, String::len)
        + record.value.as_ref().map_or(0, Vec::len)
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    assert!(record.wire_size() > exact);
}
