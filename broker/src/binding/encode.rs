//! Events into HTTP messages for subscribers and dead-letter sinks.

use std::borrow::Cow;

use base64::Engine;
use bytes::Bytes;
use chrono::SecondsFormat;
use cloudevents::event::{AttributeValue, Data, ExtensionValue};
use cloudevents::{AttributesReader, Event};
use http::{HeaderName, HeaderValue, header::CONTENT_TYPE};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value};

use super::STRUCTURED;

/// Characters a binary-mode header value must escape (binding §3.1.3.2): space, `"`, `%`,
/// controls and everything non-ASCII.
const HEADER_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// Binary mode: attributes as `ce-` headers, data as the body.
pub fn binary(event: &Event) -> (Vec<(HeaderName, HeaderValue)>, Bytes) {
    let mut headers = Vec::with_capacity(10);
    let mut put = |name: &str, value: &str| {
        // Values needing no escape are borrowed, not copied.
        let value: Cow<str> = utf8_percent_encode(value, HEADER_ESCAPES).into();
        if let (Some(name), Ok(value)) = (header_name(name), HeaderValue::from_str(&value)) {
            headers.push((name, value));
        }
    };
    for (name, value) in event.iter_attributes() {
        match value {
            AttributeValue::String(s) => put(name, s),
            AttributeValue::URIRef(s) => put(name, s),
            AttributeValue::URI(url) => put(name, url.as_str()),
            AttributeValue::SpecVersion(v) => put(name, v.as_str()),
            AttributeValue::Time(t) => put(name, &t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            other => put(name, &other.to_string()),
        }
    }
    for (name, value) in event.iter_extensions() {
        match value {
            ExtensionValue::String(s) => put(name, s),
            other => put(name, &extension_string(other)),
        }
    }
    if let Some(ct) = event.datacontenttype()
        && let Ok(value) = HeaderValue::from_str(ct)
    {
        headers.push((CONTENT_TYPE, value));
    }
    (headers, data_bytes(event))
}

/// The `ce-` header of an attribute; the context attributes' names are static.
fn header_name(attribute: &str) -> Option<HeaderName> {
    Some(HeaderName::from_static(match attribute {
        "datacontenttype" => return None, // carried by Content-Type
        "specversion" => "ce-specversion",
        "id" => "ce-id",
        "source" => "ce-source",
        "type" => "ce-type",
        "subject" => "ce-subject",
        "time" => "ce-time",
        "dataschema" => "ce-dataschema",
        "schemaurl" => "ce-schemaurl",
        "knativearrivaltime" => "ce-knativearrivaltime",
        "knativebrokerttl" => "ce-knativebrokerttl",
        other => return HeaderName::from_bytes(format!("ce-{other}").as_bytes()).ok(),
    }))
}

/// Structured mode: the whole event as `application/cloudevents+json`.
pub fn structured(event: &Event) -> (Vec<(HeaderName, HeaderValue)>, Bytes) {
    let body = serde_json::to_vec(&json_value(event)).expect("a JSON value always serializes");
    (
        vec![(CONTENT_TYPE, HeaderValue::from_static(STRUCTURED))],
        Bytes::from(body),
    )
}

/// The JSON format of an event. Binary data whose content type is JSON is embedded as
/// `data` when it parses; other binary data becomes `data_base64`.
pub fn json_value(event: &Event) -> Value {
    let mut map = Map::new();
    for (name, value) in event.iter_attributes() {
        map.insert(name.to_owned(), Value::String(value.to_string()));
    }
    for (name, value) in event.iter_extensions() {
        let v = match value {
            ExtensionValue::String(s) => Value::String(s.clone()),
            ExtensionValue::Boolean(b) => Value::Bool(*b),
            ExtensionValue::Integer(i) => Value::from(*i),
        };
        map.insert(name.to_owned(), v);
    }
    let json_content = event.datacontenttype().is_none_or(is_json);
    match event.data() {
        None => {}
        // The JSON format carries data of a non-JSON type as a string.
        Some(Data::Json(v)) if json_content => {
            map.insert("data".into(), v.clone());
        }
        Some(Data::Json(v)) => {
            map.insert("data".into(), Value::String(v.to_string()));
        }
        Some(Data::String(s)) => {
            let parsed = json_content
                .then(|| serde_json::from_str::<Value>(s).ok())
                .flatten();
            map.insert(
                "data".into(),
                parsed.unwrap_or_else(|| Value::String(s.clone())),
            );
        }
        Some(Data::Binary(b)) => match json_content
            .then(|| serde_json::from_slice::<Value>(b).ok())
            .flatten()
        {
            Some(v) => {
                map.insert("data".into(), v);
            }
            None => {
                let text = Value::String(base64::engine::general_purpose::STANDARD.encode(b));
                if event.specversion() == cloudevents::event::SpecVersion::V03 {
                    // 0.3's JSON format has no data_base64: it marks base64 text in `data`.
                    map.insert("datacontentencoding".into(), Value::String("base64".into()));
                    map.insert("data".into(), text);
                } else {
                    map.insert("data_base64".into(), text);
                }
            }
        },
    }
    Value::Object(map)
}

/// Whether a media type is JSON (`application/json`, `text/json`, `*+json`), parameters aside.
pub(crate) fn is_json(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

pub fn extension_string(value: &ExtensionValue) -> String {
    match value {
        ExtensionValue::String(s) => s.clone(),
        ExtensionValue::Boolean(b) => b.to_string(),
        ExtensionValue::Integer(i) => i.to_string(),
    }
}

pub fn data_bytes(event: &Event) -> Bytes {
    match event.data() {
        None => Bytes::new(),
        Some(Data::Binary(b)) => Bytes::copy_from_slice(b),
        Some(Data::String(s)) => Bytes::copy_from_slice(s.as_bytes()),
        Some(Data::Json(v)) => Bytes::from(serde_json::to_vec(v).expect("JSON serializes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::decode::decode;
    use cloudevents::{EventBuilder, EventBuilderV10};

    fn round_trip(headers: Vec<(HeaderName, HeaderValue)>, body: Bytes) -> Event {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(k, v);
        }
        decode(&map, body).unwrap().remove(0)
    }

    #[test]
    fn binary_encoding_round_trips_through_the_decoder() {
        let event = EventBuilderV10::new()
            .id("1")
            .source("/s")
            .ty("t")
            .subject("café \"quoted\" 100%")
            .time("2024-01-01T00:00:00Z")
            .data("application/octet-stream", vec![1u8, 2, 3])
            .extension("ext", "v")
            .build()
            .unwrap();
        let (headers, body) = binary(&event);
        assert_eq!(round_trip(headers, body), event);
    }

    #[test]
    fn structured_encoding_embeds_json_and_base64s_binary() {
        let json = EventBuilderV10::new()
            .id("1")
            .source("/s")
            .ty("t")
            .data("application/json", Data::Binary(b"{\"a\":1}".to_vec()))
            .build()
            .unwrap();
        assert_eq!(json_value(&json)["data"], serde_json::json!({"a": 1}));
        let raw = EventBuilderV10::new()
            .id("1")
            .source("/s")
            .ty("t")
            .data("application/octet-stream", vec![0u8, 255])
            .build()
            .unwrap();
        let (headers, body) = structured(&raw);
        let back = round_trip(headers, body);
        assert_eq!(back.data(), Some(&Data::Binary(vec![0, 255])));
    }
}
