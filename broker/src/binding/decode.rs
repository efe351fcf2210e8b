//! Requests into events: binary, structured and batched modes (`http-protocol-binding.md`,
//! `json-format.md`), validated against `spec.md`.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use cloudevents::event::{Data, ExtensionValue};
use cloudevents::{AttributesWriter, Event, EventBuilder, EventBuilderV03, EventBuilderV10};
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate::{attribute_name, media_type, non_empty, uri_reference};
use super::{BATCH, BindingError, STRUCTURED, invalid};

/// Reads the events of one request. A batch yields all its events or an error.
pub fn decode(headers: &HeaderMap, body: Bytes) -> Result<Vec<Event>, BindingError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().map_err(|_| invalid("Content-Type is not ASCII")))
        .transpose()?;
    let essence = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if essence.starts_with("application/cloudevents-batch") {
        if essence != BATCH {
            return Err(BindingError::UnsupportedFormat(essence));
        }
        return decode_batch(&body);
    }
    if essence.starts_with("application/cloudevents") {
        if essence != STRUCTURED {
            return Err(BindingError::UnsupportedFormat(essence));
        }
        return Ok(vec![decode_structured(&body)?]);
    }
    if headers.contains_key("ce-specversion") {
        return Ok(vec![decode_binary(headers, content_type, body)?]);
    }
    Err(invalid(format!(
        "not a CloudEvent: no ce-specversion header (binary mode) and content type {:?} is not \
         {STRUCTURED} or {BATCH}",
        content_type.unwrap_or("")
    )))
}

/// Decodes `%XX` escapes of a binary-mode header value into UTF-8 (binding §3.1.3.2).
fn header_value(name: &str, raw: &[u8]) -> Result<String, BindingError> {
    let decoded: Vec<u8> = percent_encoding::percent_decode(raw).collect();
    String::from_utf8(decoded).map_err(|_| {
        invalid(format!(
            "header ce-{name} is not UTF-8 after percent-decoding"
        ))
    })
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, BindingError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            invalid(format!(
                "attribute time {value:?} is not an RFC 3339 timestamp: {e}"
            ))
        })
}

fn decode_binary(
    headers: &HeaderMap,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<Event, BindingError> {
    let mut attrs: Vec<(String, String)> = Vec::with_capacity(8);
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        attribute_name(attr)?;
        if attrs.iter().any(|(n, _)| n == attr) {
            return Err(invalid(format!("header ce-{attr} appears more than once")));
        }
        attrs.push((attr.to_owned(), header_value(attr, value.as_bytes())?));
    }
    let take = |attrs: &mut Vec<(String, String)>, name: &str| {
        attrs
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| attrs.swap_remove(i).1)
    };
    let spec = take(&mut attrs, "specversion").unwrap_or_default();
    let id = take(&mut attrs, "id").ok_or_else(|| invalid("missing required header ce-id"))?;
    let source =
        take(&mut attrs, "source").ok_or_else(|| invalid("missing required header ce-source"))?;
    let ty = take(&mut attrs, "type").ok_or_else(|| invalid("missing required header ce-type"))?;
    non_empty("id", &id)?;
    uri_reference("source", &source)?;
    non_empty("type", &ty)?;
    let mut event = new_event(&spec, id, source, ty)?;
    let schema_name = if spec == "0.3" {
        "schemaurl"
    } else {
        "dataschema"
    };
    if let Some(subject) = take(&mut attrs, "subject") {
        non_empty("subject", &subject)?;
        event.set_subject(Some(subject));
    }
    if let Some(time) = take(&mut attrs, "time") {
        event.set_time(Some(parse_time(&time)?));
    }
    if let Some(schema) = take(&mut attrs, schema_name) {
        event.set_dataschema(Some(absolute_uri(schema_name, &schema)?));
    }
    if take(&mut attrs, "datacontenttype").is_some() {
        return Err(invalid(
            "binary mode carries datacontenttype in Content-Type, not ce-datacontenttype",
        ));
    }
    for (name, value) in attrs {
        event.set_extension(&name, ExtensionValue::String(value));
    }
    if let Some(ct) = content_type {
        media_type(ct)?;
        event.set_datacontenttype(Some(ct));
    }
    if !body.is_empty() {
        event.set_data_unchecked(Data::Binary(body.into()));
    }
    Ok(event)
}

fn new_event(spec: &str, id: String, source: String, ty: String) -> Result<Event, BindingError> {
    match spec {
        // Not `Event::default()`: it invents a `time` (now), a UUID and a hostname source.
        "1.0" => EventBuilderV10::new()
            .id(id)
            .source(source)
            .ty(ty)
            .build()
            .map_err(|e| invalid(e.to_string())),
        "0.3" => EventBuilderV03::new()
            .id(id)
            .source(source)
            .ty(ty)
            .build()
            .map_err(|e| invalid(e.to_string())),
        other => Err(invalid(format!(
            "unsupported specversion {other:?} (supported: 1.0, 0.3)"
        ))),
    }
}

fn absolute_uri(name: &str, value: &str) -> Result<url::Url, BindingError> {
    url::Url::parse(value).map_err(|e| {
        invalid(format!(
            "attribute {name} {value:?} is not an absolute URI: {e}"
        ))
    })
}

fn decode_structured(body: &[u8]) -> Result<Event, BindingError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => from_json_object(map),
        _ => Err(invalid("structured event must be a JSON object")),
    }
}

fn decode_batch(body: &[u8]) -> Result<Vec<Event>, BindingError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("body is not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(invalid("a batch must be a JSON array of events"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => {
                from_json_object(map).map_err(|e| invalid(format!("batch event {i}: {e}")))
            }
            _ => Err(invalid(format!("batch event {i} is not a JSON object"))),
        })
        .collect()
}

/// Validates a JSON-format event with messages naming the attribute, then builds it.
pub fn from_json_object(mut map: Map<String, Value>) -> Result<Event, BindingError> {
    // JSON null means "absent" (json-format §2.2).
    map.retain(|_, v| !v.is_null());
    match map.get("specversion") {
        Some(Value::String(s)) if s == "1.0" || s == "0.3" => {}
        Some(Value::String(s)) => {
            return Err(invalid(format!(
                "unsupported specversion {s:?} (supported: 1.0, 0.3)"
            )));
        }
        Some(_) => return Err(invalid("attribute specversion must be a string")),
        None => return Err(invalid("missing required attribute specversion")),
    };
    for required in ["id", "source", "type"] {
        match map.get(required) {
            Some(Value::String(s)) => non_empty(required, s)?,
            Some(_) => return Err(invalid(format!("attribute {required} must be a string"))),
            None => return Err(invalid(format!("missing required attribute {required}"))),
        }
    }
    if let Some(Value::String(source)) = map.get("source") {
        uri_reference("source", source)?;
    }
    if map.contains_key("data") && map.contains_key("data_base64") {
        return Err(invalid("an event has data or data_base64, not both"));
    }
    for (name, value) in &map {
        if name == "data" || name == "data_base64" {
            continue;
        }
        attribute_name(name)?;
        match (name.as_str(), value) {
            ("time", Value::String(t)) => {
                parse_time(t)?;
            }
            ("datacontenttype", Value::String(ct)) => media_type(ct)?,
            ("dataschema" | "schemaurl", Value::String(s)) => {
                absolute_uri(name, s)?;
            }
            ("subject", Value::String(s)) => non_empty(name, s)?,
            (_, Value::String(_) | Value::Bool(_)) => {}
            (_, Value::Number(n)) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {}
            (_, other) => {
                return Err(invalid(format!(
                    "attribute {name} has a value of unsupported type ({}): CloudEvents \
                     attributes are strings, booleans or 32-bit integers",
                    json_kind(other)
                )));
            }
        }
        if matches!(
            name.as_str(),
            "id" | "source" | "type" | "time" | "datacontenttype" | "dataschema" | "subject"
        ) && !value.is_string()
        {
            return Err(invalid(format!("attribute {name} must be a string")));
        }
    }
    if let Some(b64) = map.get("data_base64") {
        let ok = b64.as_str().is_some_and(|s| {
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).is_ok()
        });
        if !ok {
            return Err(invalid("data_base64 is not a base64 string"));
        }
    }
    // 0.3's base64 data is decoded here: the SDK's reader parses it as JSON when the content
    // type is JSON or absent, and refuses binary data that is not.
    let base64_data = match (map.get("specversion"), map.get("datacontentencoding")) {
        (Some(Value::String(v)), Some(Value::String(enc)))
            if v == "0.3" && enc.eq_ignore_ascii_case("base64") =>
        {
            map.remove("datacontentencoding");
            match map.remove("data") {
                Some(Value::String(text)) => Some(
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text)
                        .map_err(|_| invalid("data is not base64 (datacontentencoding: base64)"))?,
                ),
                None => None,
                Some(_) => return Err(invalid("base64 data must be a string")),
            }
        }
        _ => None,
    };
    // JSON data of a JSON type is kept here: the SDK's reader tells JSON types by the whole
    // value (`application/vnd.x+json; charset=utf-8` is not JSON to it) and would refuse it.
    let json_type = match map.get("datacontenttype") {
        Some(Value::String(ct)) => super::encode::is_json(ct),
        _ => true,
    };
    let json_data = match map.get("data") {
        Some(data) if json_type && !data.is_string() => map.remove("data"),
        _ => None,
    };
    let mut event = Event::deserialize(Value::Object(map))
        .map_err(|e| invalid(format!("invalid event: {e}")))?;
    if let Some(data) = json_data {
        event.set_data_unchecked(cloudevents::event::Data::Json(data));
    }
    if let Some(bytes) = base64_data {
        event.set_data_unchecked(cloudevents::event::Data::Binary(bytes));
    }
    Ok(event)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number out of integer range",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
