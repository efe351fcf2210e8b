//! The mapping between an [`Event`] and a NATS message: the CloudEvents NATS protocol binding
//! (version 1.0.3), written here because `cloudevents-sdk`'s `nats` feature pins an old client.
//!
//! - **Binary mode** (what Herald writes): every context attribute and extension is a header
//!   `ce-{name}` holding the attribute's canonical string, percent-encoded as the binding
//!   requires (space, `"`, `%` and everything outside printable ASCII); the data is the payload.
//! - **Structured mode** (read only): a `Content-Type` header starting with
//!   `application/cloudevents` (any case) marks a payload in the JSON event format.
//!
//! Binary mode carries every value as a string. So that an event comes out of the bus exactly as
//! it went in, Herald adds two headers that other consumers can ignore:
//! - `Herald-Data`: `none`, `binary`, `json` or `text`: which [`Data`] variant the payload was
//!   (absent: an empty payload is no data, anything else binary data);
//! - `Herald-Ext-Types`: `name=integer,name=boolean` for extensions that are not strings.
//!
//! The message id used for JetStream de-duplication (`Nats-Msg-Id`) is [`message_id`].

pub use crate::type_hints::EncodeError;
use crate::type_hints::{self, BinaryMessage, ContentTypeSource, HintError};
use async_nats::HeaderMap;
use bytes::Bytes;
use cloudevents::event::Data;
use cloudevents::message::{BinaryDeserializer, Error as MessageError};
use cloudevents::{AttributesReader, Event};

const CE_PREFIX: &str = "ce-";
const DATA_KIND: &str = "Herald-Data";
const EXT_TYPES: &str = "Herald-Ext-Types";
/// The JetStream header that de-duplicates retried publishes within the duplicate window.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Why a NATS message is not a CloudEvent.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("structured content type {0:?} is not the JSON event format")]
    UnsupportedFormat(String),
    #[error("invalid JSON event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid binary-mode event: {0}")]
    Binary(#[from] MessageError),
    #[error("header {name} is not valid percent-encoded UTF-8")]
    BadHeaderValue { name: String },
    #[error(transparent)]
    Hint(#[from] HintError),
}

/// Encodes `event` in binary mode: `ce-` headers and the data as payload. Refuses extension
/// names that a header cannot carry back (header names are not escaped: a `:` or a line break
/// in one would forge headers).
pub fn encode(event: &Event) -> Result<(HeaderMap, Bytes), EncodeError> {
    type_hints::check_extension_names(event)?;
    let mut headers = HeaderMap::new();
    for (name, value) in event.iter_attributes() {
        headers.insert(
            format!("{CE_PREFIX}{name}").as_str(),
            pct_encode(&value.to_string()),
        );
    }
    for (name, value) in event.iter_extensions() {
        headers.insert(
            format!("{CE_PREFIX}{name}").as_str(),
            pct_encode(&value.to_string()),
        );
    }
    if let Some(types) = type_hints::extension_types(event) {
        headers.insert(EXT_TYPES, types.as_str());
    }
    let payload = match event.data() {
        None => Bytes::new(),
        Some(Data::Binary(b)) => Bytes::copy_from_slice(b),
        Some(Data::String(s)) => Bytes::copy_from_slice(s.as_bytes()),
        Some(Data::Json(v)) => Bytes::from(serde_json::to_vec(v)?),
    };
    headers.insert(DATA_KIND, type_hints::data_kind(event.data()));
    Ok((headers, payload))
}

/// The size of a message as the server counts it against `max_payload`: the header block
/// (`NATS/1.0`, one `name: value` line per value, a blank line) and the payload.
pub fn wire_size(headers: &HeaderMap, payload: &[u8]) -> usize {
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values
                .iter()
                .map(|v| name.len() + 2 + v.as_str().len() + 2)
                .sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n".len() + lines + 2 + payload.len()
}

/// `Nats-Msg-Id` for `event`: its percent-encoded source and id joined by a space (neither
/// contains an unencoded space, so distinct (source, id) pairs give distinct ids).
pub fn message_id(event: &Event) -> String {
    format!(
        "{} {}",
        pct_encode(event.source().as_str()),
        pct_encode(event.id())
    )
}

/// Decodes a NATS message in either content mode.
pub fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Event, DecodeError> {
    let empty = HeaderMap::new();
    let headers = headers.unwrap_or(&empty);
    let content_type = header(headers, "content-type");
    if let Some(ct) = content_type
        && ct
            .get(..23)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/cloudevents"))
    {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/cloudevents+json") {
            return Err(DecodeError::UnsupportedFormat(ct.to_owned()));
        }
        return Ok(serde_json::from_slice(payload)?);
    }
    let mut attrs = Vec::new();
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        // `get`, not indexing: a name may have a multi-byte character across the prefix's end.
        if name.len() > CE_PREFIX.len()
            && name
                .get(..CE_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(CE_PREFIX))
        {
            let value = values.last().map(|v| v.as_str()).unwrap_or("");
            let value = pct_decode(&unquote(value)).ok_or_else(|| DecodeError::BadHeaderValue {
                name: name.to_owned(),
            })?;
            attrs.push((name[CE_PREFIX.len()..].to_ascii_lowercase(), value));
        }
    }
    let kind = header(headers, DATA_KIND);
    let message = BinaryMessage {
        content_type_source: ContentTypeSource::Attribute,
        attrs,
        content_type: content_type.map(str::to_owned),
        payload: if kind == Some("none") || (kind.is_none() && payload.is_empty()) {
            None
        } else {
            Some(payload.to_vec())
        },
    };
    let mut event = BinaryDeserializer::into_event(message)?;
    type_hints::restore(&mut event, kind, header(headers, EXT_TYPES))?;
    Ok(event)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| AsRef::<str>::as_ref(*n).eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.last())
        .map(|v| v.as_str())
}

/// Percent-encodes a header value as the binding requires: space, `"`, `%` and every byte
/// outside printable ASCII (so all of a non-ASCII character's UTF-8 bytes), upper-case hex.
pub fn pct_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// One round of percent-decoding; `None` for a malformed escape or bytes that are not UTF-8
/// (overlong encodings included, which `String::from_utf8` rejects).
pub fn pct_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Undoes RFC 7230 double-quoting (with backslash escapes), which older producers may use.
fn unquote(value: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = value.trim();
    match trimmed.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().unwrap_or('\\')
                } else {
                    c
                });
            }
            out.into()
        }
        None => trimmed.into(),
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
