use async_nats::HeaderMap;
use cloudevents::event::{Data, ExtensionValue};
use cloudevents::{AttributesReader, EventBuilder, EventBuilderV03, EventBuilderV10};

use super::*;
use crate::contract::fixtures;

fn round_trip(event: &Event) -> Event {
    let (headers, payload) = encode(event).unwrap();
    decode(Some(&headers), &payload).expect("decodes")
}

fn get<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    header(headers, name).unwrap_or_else(|| panic!("header {name} missing"))
}

#[test]
fn every_attribute_type_round_trips_in_binary_mode() {
    let event = fixtures::rich_event();
    assert_eq!(round_trip(&event), event);
}

#[test]
fn binary_mode_uses_ce_headers_with_canonical_strings() {
    let event = fixtures::rich_event();
    let (headers, payload) = encode(&event).unwrap();
    assert_eq!(get(&headers, "ce-specversion"), "1.0");
    assert_eq!(get(&headers, "ce-id"), "rich-1");
    assert_eq!(get(&headers, "ce-source"), "https://example.com/source?x=1");
    assert_eq!(get(&headers, "ce-type"), "dev.herald.rich");
    assert_eq!(get(&headers, "ce-subject"), "a/b");
    assert_eq!(get(&headers, "ce-time"), "2024-05-06T07:08:09.123+00:00");
    assert_eq!(
        get(&headers, "ce-datacontenttype"),
        "application/octet-stream"
    );
    assert_eq!(
        get(&headers, "ce-dataschema"),
        "https://example.com/schema.json"
    );
    assert_eq!(get(&headers, "ce-partitionkey"), "k1");
    assert_eq!(get(&headers, "ce-count"), "42");
    assert_eq!(get(&headers, "ce-flag"), "false");
    assert_eq!(&payload[..], &[0u8, 1, 2, 255]);
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
fn partitionkey_and_typed_extensions_round_trip() {
    let event = EventBuilderV10::new()
        .id("p")
        .source("/s")
        .ty("t")
        .extension("partitionkey", "123")
        .extension("n", -7i64)
        .extension("yes", true)
        .build()
        .unwrap();
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

#[test]
fn header_values_are_percent_encoded_as_the_binding_requires() {
    assert_eq!(
        pct_encode("Euro \u{20AC} \u{1F600}"),
        "Euro%20%E2%82%AC%20%F0%9F%98%80"
    );
    assert_eq!(pct_encode("a\"b%c"), "a%22b%25c");
    let event = EventBuilderV10::new()
        .id("id with spaces")
        .source("/s")
        .ty("t")
        .subject("Euro \u{20AC} \u{1F600}")
        .build()
        .unwrap();
    let (headers, _) = encode(&event).unwrap();
    assert_eq!(
        get(&headers, "ce-subject"),
        "Euro%20%E2%82%AC%20%F0%9F%98%80"
    );
    assert_eq!(get(&headers, "ce-id"), "id%20with%20spaces");
    assert_eq!(round_trip(&event), event);
}

#[test]
fn decoding_accepts_lower_case_escapes_and_quoted_values_and_rejects_bad_utf8() {
    assert_eq!(pct_decode("%e2%82%ac").as_deref(), Some("\u{20AC}"));
    assert_eq!(pct_decode("%41bc").as_deref(), Some("Abc"));
    assert_eq!(pct_decode("%C0%A0"), None, "overlong encoding of a space");
    assert_eq!(pct_decode("%4"), None);
    let mut headers = HeaderMap::new();
    headers.insert("ce-specversion", "1.0");
    headers.insert("ce-id", "\"quoted \\\"id\\\"\"");
    headers.insert("ce-source", "/s");
    headers.insert("ce-type", "t");
    let event = decode(Some(&headers), b"").unwrap();
    assert_eq!(event.id(), "quoted \"id\"");
    assert_eq!(event.data(), None);
}

#[test]
fn foreign_binary_messages_decode_with_string_extensions_and_binary_data() {
    let mut headers = HeaderMap::new();
    headers.insert("CE-SpecVersion", "1.0");
    headers.insert("Ce-Id", "1234-1234-1234");
    headers.insert("ce-source", "/mycontext/subcontext");
    headers.insert("ce-type", "com.example.someevent");
    headers.insert("ce-time", "2018-04-05T03:56:24Z");
    headers.insert("ce-count", "5");
    headers.insert("Content-Type", "application/json");
    let event = decode(Some(&headers), b"{\"a\":1}").unwrap();
    assert_eq!(event.id(), "1234-1234-1234");
    assert_eq!(event.datacontenttype(), Some("application/json"));
    assert_eq!(
        event.extension("count"),
        Some(&ExtensionValue::String("5".into()))
    );
    assert_eq!(event.data(), Some(&Data::Binary(b"{\"a\":1}".to_vec())));
}

#[test]
fn structured_json_messages_decode() {
    let event = fixtures::rich_event();
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        "Application/CloudEvents+JSON; charset=utf-8",
    );
    let payload = serde_json::to_vec(&event).unwrap();
    assert_eq!(decode(Some(&headers), &payload).unwrap(), event);

    headers.insert("content-type", "application/cloudevents+avro");
    assert!(matches!(
        decode(Some(&headers), &payload),
        Err(DecodeError::UnsupportedFormat(_))
    ));
}

#[test]
fn a_message_without_specversion_is_rejected() {
    let mut headers = HeaderMap::new();
    headers.insert("ce-id", "1");
    assert!(decode(Some(&headers), b"x").is_err());
    assert!(decode(None, b"not json").is_err());
}

#[test]
fn message_ids_distinguish_source_and_id() {
    let a = EventBuilderV10::new()
        .id("b c")
        .source("/a")
        .ty("t")
        .build()
        .unwrap();
    let b = EventBuilderV10::new()
        .id("c")
        .source("/a%20b")
        .ty("t")
        .build()
        .unwrap();
    assert_ne!(message_id(&a), message_id(&b));
    assert_eq!(message_id(&a), "/a b%20c");
}

#[test]
fn extension_names_a_header_cannot_carry_are_refused() {
    for name in ["a:b", "a\r\nNats-Msg-Id", "Upper", "a,b"] {
        let mut event = fixtures::rich_event();
        event.set_extension(name, "v");
        assert!(
            matches!(encode(&event), Err(EncodeError::ExtensionName(_))),
            "{name:?} accepted"
        );
    }
}

#[test]
fn wire_size_counts_the_header_block_and_the_payload() {
    let mut headers = HeaderMap::new();
    headers.insert("a", "bc");
    assert_eq!(
        wire_size(&headers, b"xyz"),
        "NATS/1.0\r\na: bc\r\n\r\n".len() + 3
    );
}
