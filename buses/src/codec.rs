//! The one binary encoding of a CloudEvent for the embedded log (the memory bus stores `Event`
//! values and needs no encoding).
//!
//! Layout (all integers little-endian, strings length-prefixed with u32):
//! `version u8 | specversion u8 | id | source | type | flags u8 | [datacontenttype] |
//! [dataschema] | [subject] | [time: i64 seconds, u32 nanos] | extension count u16 |
//! (name, tag u8, value)* | data tag u8 | [data bytes]`.
//! It is private to Herald's storage; wire formats (HTTP, Kafka, NATS) have their own mappings.
//! A record is delimited by its container (the embedded frame gives every event its length), so
//! [`decode`] takes exactly one record and rejects bytes after it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use cloudevents::event::{Data, ExtensionValue, SpecVersion};
use cloudevents::{
    AttributesReader, AttributesWriter, Event, EventBuilder, EventBuilderV03, EventBuilderV10,
};

const FORMAT_VERSION: u8 = 1;
const HAS_CONTENT_TYPE: u8 = 1;
const HAS_SCHEMA: u8 = 2;
const HAS_SUBJECT: u8 = 4;
const HAS_TIME: u8 = 8;

#[derive(Debug, thiserror::Error)]
#[error("undecodable event record: {0}")]
pub struct DecodeError(&'static str);

/// An event the layout cannot represent; nothing of it must be stored.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{field} of {len} bytes exceeds the record limit of {limit} bytes")]
    TooLong {
        field: &'static str,
        len: u64,
        limit: u64,
    },
    #[error("{count} extensions exceed the record limit of {limit}")]
    TooManyExtensions { count: usize, limit: usize },
    #[error("JSON data does not serialize: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<EncodeError> for crate::BusError {
    fn from(error: EncodeError) -> Self {
        match error {
            EncodeError::TooLong { len, limit, .. } => {
                crate::BusError::TooLarge { size: len, limit }
            }
            other => crate::BusError::Rejected {
                reason: other.to_string(),
            },
        }
    }
}

/// Appends the record of `event` to `out`. On error `out` may hold part of a record: the caller
/// discards it.
pub fn encode(event: &Event, out: &mut BytesMut) -> Result<(), EncodeError> {
    let count = event.iter_extensions().count();
    let count = u16::try_from(count).map_err(|_| EncodeError::TooManyExtensions {
        count,
        limit: u16::MAX as usize,
    })?;
    out.put_u8(FORMAT_VERSION);
    out.put_u8(match event.specversion() {
        SpecVersion::V03 => 3,
        SpecVersion::V10 => 10,
    });
    put_str(out, "id", event.id())?;
    put_str(out, "source", event.source())?;
    put_str(out, "type", event.ty())?;
    let mut flags = 0;
    if event.datacontenttype().is_some() {
        flags |= HAS_CONTENT_TYPE;
    }
    if event.dataschema().is_some() {
        flags |= HAS_SCHEMA;
    }
    if event.subject().is_some() {
        flags |= HAS_SUBJECT;
    }
    if event.time().is_some() {
        flags |= HAS_TIME;
    }
    out.put_u8(flags);
    if let Some(ct) = event.datacontenttype() {
        put_str(out, "datacontenttype", ct)?;
    }
    if let Some(schema) = event.dataschema() {
        put_str(out, "dataschema", schema.as_str())?;
    }
    if let Some(subject) = event.subject() {
        put_str(out, "subject", subject)?;
    }
    if let Some(time) = event.time() {
        out.put_i64_le(time.timestamp());
        out.put_u32_le(time.timestamp_subsec_nanos());
    }
    out.put_u16_le(count);
    for (name, value) in event.iter_extensions() {
        put_str(out, "extension name", name)?;
        match value {
            ExtensionValue::String(s) => {
                out.put_u8(0);
                put_str(out, "extension value", s)?;
            }
            ExtensionValue::Boolean(b) => {
                out.put_u8(1);
                out.put_u8(*b as u8);
            }
            ExtensionValue::Integer(i) => {
                out.put_u8(2);
                out.put_i64_le(*i);
            }
        }
    }
    match event.data() {
        None => out.put_u8(0),
        Some(Data::Binary(bytes)) => {
            out.put_u8(1);
            put_bytes(out, "data", bytes)?;
        }
        Some(Data::String(s)) => {
            out.put_u8(2);
            put_str(out, "data", s)?;
        }
        Some(Data::Json(value)) => {
            out.put_u8(3);
            let text = serde_json::to_vec(value)?;
            put_bytes(out, "data", &text)?;
        }
    }
    Ok(())
}

pub fn encode_to_bytes(event: &Event) -> Result<Bytes, EncodeError> {
    let mut out = BytesMut::with_capacity(256);
    encode(event, &mut out)?;
    Ok(out.freeze())
}

pub fn decode(mut buf: &[u8]) -> Result<Event, DecodeError> {
    let buf = &mut buf;
    if get_u8(buf)? != FORMAT_VERSION {
        return Err(DecodeError("unknown format version"));
    }
    let spec = get_u8(buf)?;
    let id = get_str(buf)?;
    let source = get_str(buf)?;
    let ty = get_str(buf)?;
    let mut event = match spec {
        // Not `Event::default()`: it invents a `time` (now), a UUID and a hostname source.
        10 => EventBuilderV10::new()
            .id(id)
            .source(source)
            .ty(ty)
            .build()
            .map_err(|_| DecodeError("invalid 1.0 attributes"))?,
        3 => EventBuilderV03::new()
            .id(id)
            .source(source)
            .ty(ty)
            .build()
            .map_err(|_| DecodeError("invalid 0.3 attributes"))?,
        _ => return Err(DecodeError("unknown spec version")),
    };
    let flags = get_u8(buf)?;
    if flags & HAS_CONTENT_TYPE != 0 {
        event.set_datacontenttype(Some(get_str(buf)?));
    }
    if flags & HAS_SCHEMA != 0 {
        let schema = url::Url::parse(&get_str(buf)?).map_err(|_| DecodeError("dataschema"))?;
        event.set_dataschema(Some(schema));
    }
    if flags & HAS_SUBJECT != 0 {
        event.set_subject(Some(get_str(buf)?));
    }
    if flags & HAS_TIME != 0 {
        need(buf, 12)?;
        let secs = buf.get_i64_le();
        let nanos = buf.get_u32_le();
        let time: DateTime<Utc> =
            DateTime::from_timestamp(secs, nanos).ok_or(DecodeError("time out of range"))?;
        event.set_time(Some(time));
    }
    need(buf, 2)?;
    let count = buf.get_u16_le();
    for _ in 0..count {
        let name = get_str(buf)?;
        let value = match get_u8(buf)? {
            0 => ExtensionValue::String(get_str(buf)?),
            1 => ExtensionValue::Boolean(get_u8(buf)? != 0),
            2 => {
                need(buf, 8)?;
                ExtensionValue::Integer(buf.get_i64_le())
            }
            _ => return Err(DecodeError("unknown extension tag")),
        };
        event.set_extension(&name, value);
    }
    match get_u8(buf)? {
        0 => {}
        1 => {
            event.set_data_unchecked(get_bytes(buf)?.to_vec());
        }
        2 => {
            event.set_data_unchecked(Data::String(get_str(buf)?));
        }
        3 => {
            let value: serde_json::Value =
                serde_json::from_slice(get_bytes(buf)?).map_err(|_| DecodeError("json data"))?;
            event.set_data_unchecked(Data::Json(value));
        }
        _ => return Err(DecodeError("unknown data tag")),
    }
    if !buf.is_empty() {
        return Err(DecodeError("trailing bytes after the record"));
    }
    Ok(event)
}

fn put_str(out: &mut BytesMut, field: &'static str, s: &str) -> Result<(), EncodeError> {
    put_bytes(out, field, s.as_bytes())
}

fn put_bytes(out: &mut BytesMut, field: &'static str, b: &[u8]) -> Result<(), EncodeError> {
    let len = u32::try_from(b.len()).map_err(|_| EncodeError::TooLong {
        field,
        len: b.len() as u64,
        limit: u32::MAX as u64,
    })?;
    out.put_u32_le(len);
    out.put_slice(b);
    Ok(())
}

fn need(buf: &[u8], n: usize) -> Result<(), DecodeError> {
    if buf.len() < n {
        Err(DecodeError("truncated"))
    } else {
        Ok(())
    }
}

fn get_u8(buf: &mut &[u8]) -> Result<u8, DecodeError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn get_bytes<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    need(buf, 4)?;
    let len = buf.get_u32_le() as usize;
    need(buf, len)?;
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

fn get_str(buf: &mut &[u8]) -> Result<String, DecodeError> {
    let bytes = get_bytes(buf)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("invalid utf-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::EventBuilderV10;

    #[test]
    fn every_attribute_survives_a_round_trip() {
        let mut event = EventBuilderV10::new()
            .id("1")
            .source("/s")
            .ty("t")
            .subject("sub")
            .time("2020-01-02T03:04:05.123456789Z")
            .data_with_schema(
                "application/json",
                "https://example.com/schema",
                serde_json::json!({"a": 1}),
            )
            .extension("count", 7i64)
            .extension("flag", true)
            .extension("name", "x")
            .build()
            .unwrap();
        let decoded = decode(&encode_to_bytes(&event).unwrap()).unwrap();
        assert_eq!(decoded, event);
        event.set_data("application/octet-stream", vec![0u8, 159, 146, 150]);
        assert_eq!(decode(&encode_to_bytes(&event).unwrap()).unwrap(), event);
    }

    #[test]
    fn an_event_without_optional_attributes_gains_none() {
        let event = EventBuilderV10::new()
            .id("1")
            .source("/s")
            .ty("t")
            .build()
            .unwrap();
        let decoded = decode(&encode_to_bytes(&event).unwrap()).unwrap();
        assert_eq!(decoded.time(), None);
        assert_eq!(decoded, event);
    }

    #[test]
    fn truncated_record_is_an_error_not_a_panic() {
        let bytes = encode_to_bytes(&Event::default()).unwrap();
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }

    #[test]
    fn more_extensions_than_the_count_field_holds_are_refused() {
        let mut event = Event::default();
        for i in 0..=u16::MAX as usize {
            event.set_extension(&format!("e{i}"), "v");
        }
        let mut out = BytesMut::new();
        let error = encode(&event, &mut out).unwrap_err();
        assert!(
            matches!(error, EncodeError::TooManyExtensions { count: 65536, .. }),
            "{error}"
        );
        assert!(matches!(
            crate::BusError::from(error),
            crate::BusError::Rejected { .. }
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode_to_bytes(&Event::default()).unwrap().to_vec();
        bytes.push(0);
        assert!(decode(&bytes).is_err());
    }

    /// Found by the fuzzer: without serde_json's correctly rounded parsing this number came
    /// back one unit in the last place off.
    #[test]
    fn json_numbers_come_back_exactly() {
        let mut event = Event::default();
        let number: serde_json::Value = serde_json::from_str("6.666666666666667e85").unwrap();
        event.set_data("application/json", number);
        assert_eq!(decode(&encode_to_bytes(&event).unwrap()).unwrap(), event);
    }
}
