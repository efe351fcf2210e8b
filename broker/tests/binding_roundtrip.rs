//! Property tests of the HTTP binding: every event up to the ingress limits that Herald encodes
//! for a subscriber (binary or structured mode) decodes back to the same event, as far as the
//! mode can carry it, and the decoder never panics on arbitrary headers and bodies.
//!
//! What a mode cannot carry, and so is normalised before comparing:
//! - binary mode: extension types (every header is a string) and the data variant (a body is
//!   bytes; an empty body is no data);
//! - structured mode: the data variant (`data` is JSON, `data_base64` bytes) and JSON `null`
//!   data, which the JSON format defines as absent.

#[path = "../../buses/tests/support/arbitrary_event.rs"]
mod arbitrary_event;

use arbitrary_event::event;
use bytes::Bytes;
use cloudevents::event::{Data, ExtensionValue};
use cloudevents::{AttributesWriter, Event, EventBuilder, EventBuilderV03};
use herald::binding::decode::decode;
use herald::binding::encode::{self, json_value};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    }
}

fn header_map(headers: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name, value);
    }
    map
}

fn decode_one(headers: Vec<(HeaderName, HeaderValue)>, body: Bytes) -> Event {
    let mut events = decode(&header_map(headers), body).expect("decodes");
    assert_eq!(events.len(), 1);
    events.remove(0)
}

/// The event without its data (`take_data` also takes the content type and the schema).
fn context(event: &Event) -> Event {
    let mut event = event.clone();
    let (content_type, schema, _) = event.take_data();
    event.set_datacontenttype(content_type);
    event.set_dataschema(schema);
    event
}

/// What binary mode carries: string extensions, the data as bytes.
fn as_binary_mode(event: &Event) -> Event {
    let mut expected = context(event);
    let extensions: Vec<_> = event
        .iter_extensions()
        .map(|(name, value)| (name.to_owned(), encode::extension_string(value)))
        .collect();
    for (name, value) in extensions {
        expected.set_extension(&name, ExtensionValue::String(value));
    }
    let bytes = encode::data_bytes(event);
    if !bytes.is_empty() {
        expected.set_data_unchecked(Data::Binary(bytes.to_vec()));
    }
    expected
}

/// The data of an event as the JSON format writes it, `null` being absent.
fn json_data(event: &Event) -> (Option<Value>, Option<Value>) {
    let mut value = json_value(event);
    let data = value
        .get_mut("data")
        .map(Value::take)
        .filter(|v| !v.is_null());
    let base64 = value.get_mut("data_base64").map(Value::take);
    (data, base64)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn binary_mode_round_trips_every_event(event in event()) {
        let (headers, body) = encode::binary(&event);
        prop_assert_eq!(decode_one(headers, body), as_binary_mode(&event));
    }

    #[test]
    fn structured_mode_round_trips_every_event(event in event()) {
        let (headers, body) = encode::structured(&event);
        let decoded = decode_one(headers, body);
        prop_assert_eq!(context(&decoded), context(&event));
        prop_assert_eq!(json_data(&decoded), json_data(&event));
    }

    #[test]
    fn the_decoder_never_panics(
        headers in proptest::collection::vec(
            (
                prop_oneof![
                    proptest::sample::select(vec![
                        "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time",
                        "ce-dataschema", "ce-subject", "ce-datacontenttype", "content-type",
                    ])
                    .prop_map(str::to_owned),
                    "ce-[a-z0-9]{1,8}",
                    "[a-z-]{1,12}",
                ],
                prop_oneof![
                    proptest::sample::select(vec![
                        "1.0", "0.3", "/s", "2020-01-01T00:00:00Z", "%", "%C3", "%FF",
                        "application/cloudevents+json", "application/cloudevents-batch+json",
                        "application/json",
                    ])
                    .prop_map(|s| s.as_bytes().to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..16),
                ],
            ),
            0..10,
        ),
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            "\\{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",.{0,32}\\}"
                .prop_map(String::into_bytes),
            "\\[\\{.{0,48}\\}\\]".prop_map(String::into_bytes),
        ],
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::from_bytes(&value))
            {
                map.append(name, value);
            }
        }
        let _ = decode(&map, Bytes::from(body));
    }
}

/// A 0.3 event's binary data in structured mode: the JSON format 0.3 has no `data_base64`
/// (it writes `"datacontentencoding": "base64"` and the text as `data`); a `data_base64` would
/// be read back as an extension and the data lost.
#[test]
fn structured_0_3_binary_data_survives() {
    let event = EventBuilderV03::new()
        .id("1")
        .source("/s")
        .ty("t")
        .data("application/octet-stream", vec![0u8, 255])
        .build()
        .unwrap();
    let (headers, body) = encode::structured(&event);
    let decoded = decode_one(headers, body);
    assert_eq!(decoded.extension("data_base64"), None);
    assert_eq!(decoded.data(), Some(&Data::Binary(vec![0, 255])));
}

/// JSON data under a non-JSON content type (an event from a foreign Kafka record, a source):
/// the JSON format wants a string for a non-JSON type, so the encoder writes the JSON text as
/// a string; a JSON value there would be a body no CloudEvents reader accepts.
#[test]
fn structured_json_data_under_a_text_type_decodes() {
    let mut event = EventBuilderV03::new()
        .id("1")
        .source("/s")
        .ty("t")
        .build()
        .unwrap();
    event.set_datacontenttype(Some("text/plain"));
    event.set_data_unchecked(Data::Json(serde_json::json!({"a": 1})));
    let (headers, body) = encode::structured(&event);
    let map = header_map(headers);
    assert!(decode(&map, body).is_ok());
}

/// A valid structured event whose JSON content type has parameters: JSON by its essence, so
/// its JSON data is kept (the SDK's reader alone checks `ends_with("+json")` on the whole value
/// and would refuse it).
#[test]
fn structured_json_data_under_a_json_type_with_parameters_decodes() {
    let body = serde_json::json!({
        "specversion": "1.0", "id": "1", "source": "/s", "type": "t",
        "datacontenttype": "application/vnd.example+json; charset=utf-8",
        "data": [1, 2],
    });
    let mut map = HeaderMap::new();
    map.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/cloudevents+json"),
    );
    let events = decode(&map, Bytes::from(body.to_string())).unwrap();
    assert_eq!(
        events[0].data(),
        Some(&Data::Json(serde_json::json!([1, 2])))
    );
}
