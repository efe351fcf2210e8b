//! `proptest` strategies for CloudEvents up to Herald's ingress limits: 64 extensions, about
//! 16 KiB of attributes in all, data up to 4 KiB; spec versions 1.0 and 0.3; every data kind;
//! string, boolean and integer extensions; arbitrary Unicode without control characters in
//! string values. Shared by the codec property tests of `herald-buses` and the HTTP binding's
//! in `herald` (included there by path).

#![allow(dead_code)]

use chrono::DateTime;
use cloudevents::event::{Data, ExtensionValue};
use cloudevents::{AttributesWriter, Event, EventBuilder, EventBuilderV03, EventBuilderV10};
use proptest::prelude::*;
use serde_json::Value;

/// Extensions per event at most (the ingress default).
pub const MAX_EXTENSIONS: usize = 64;
/// Data bytes per event at most in these tests.
pub const MAX_DATA: usize = 4096;

/// Names the spec or the ingress gives a meaning of their own (a publisher's TTL is clamped).
const RESERVED: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "datacontentencoding",
    "dataschema",
    "schemaurl",
    "subject",
    "time",
    "data",
    "knativebrokerttl",
];

/// Unicode text without control characters (U+0000–U+001F, U+007F–U+009F), `max` characters.
pub fn text(min: usize, max: usize) -> BoxedStrategy<String> {
    proptest::string::string_regex(&format!("[^\\p{{Cc}}]{{{min},{max}}}"))
        .expect("valid regex")
        .boxed()
}

/// A URI-reference as `source` must be.
pub fn source() -> BoxedStrategy<String> {
    proptest::string::string_regex("[A-Za-z0-9/._~:@!$&'()*+,;=-]{1,64}(%[0-9A-F]{2})?")
        .expect("valid regex")
        .boxed()
}

pub fn extension_value() -> BoxedStrategy<ExtensionValue> {
    prop_oneof![
        text(0, 48).prop_map(ExtensionValue::String),
        any::<bool>().prop_map(ExtensionValue::Boolean),
        // The spec's Integer is 32-bit; the HTTP ingress refuses larger ones.
        any::<i32>().prop_map(|i| ExtensionValue::Integer(i.into())),
    ]
    .boxed()
}

pub fn extensions() -> BoxedStrategy<Vec<(String, ExtensionValue)>> {
    proptest::collection::btree_map("[a-z0-9]{1,20}", extension_value(), 0..=MAX_EXTENSIONS)
        .prop_map(|map| {
            map.into_iter()
                .filter(|(name, _)| !RESERVED.contains(&name.as_str()))
                .collect()
        })
        .boxed()
}

pub fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text(0, 32).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(text(0, 16), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

pub fn data() -> BoxedStrategy<Option<Data>> {
    prop_oneof![
        Just(None),
        proptest::collection::vec(any::<u8>(), 0..MAX_DATA).prop_map(|b| Some(Data::Binary(b))),
        text(0, 512).prop_map(|s| Some(Data::String(s))),
        json_value().prop_map(|v| Some(Data::Json(v))),
    ]
    .boxed()
}

pub fn content_type() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("text/plain".to_owned())),
        Just(Some("application/octet-stream".to_owned())),
        Just(Some(
            "application/vnd.example+json; charset=utf-8".to_owned()
        )),
    ]
    .boxed()
}

/// Seconds between years 1 and 9999, as RFC 3339 can write them.
fn time() -> BoxedStrategy<Option<DateTime<chrono::Utc>>> {
    proptest::option::of(
        (-62_135_596_800i64..=253_402_300_799, 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).expect("in range")),
    )
    .boxed()
}

/// An event up to the ingress limits.
pub fn event() -> BoxedStrategy<Event> {
    let context = (
        any::<bool>(),
        text(1, 48),
        source(),
        text(1, 48),
        // The spec requires a non-empty subject when there is one.
        proptest::option::of(text(1, 48)),
        proptest::option::of("[a-z0-9/]{0,20}"),
        time(),
    );
    (context, content_type(), data(), extensions())
        .prop_map(
            |((v03, id, source, ty, subject, schema, time), ct, data, extensions)| {
                let mut event = if v03 {
                    EventBuilderV03::new().id(id).source(source).ty(ty).build()
                } else {
                    EventBuilderV10::new().id(id).source(source).ty(ty).build()
                }
                .expect("id, source and type are set");
                event.set_subject(subject);
                event.set_time(time);
                if let Some(path) = schema {
                    let url =
                        url::Url::parse(&format!("https://example.com/{path}")).expect("a URL");
                    event.set_dataschema(Some(url));
                }
                event.set_datacontenttype(ct);
                if let Some(data) = data {
                    event.set_data_unchecked(data);
                }
                for (name, value) in extensions {
                    event.set_extension(&name, value);
                }
                event
            },
        )
        .boxed()
}
