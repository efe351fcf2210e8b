//! The mapping between an [`Event`] and a Kafka record: the CloudEvents Kafka protocol binding
//! (version 1.0), written here because `cloudevents-sdk`'s `rdkafka` feature pins an older
//! rdkafka. It is the format Knative's Kafka broker writes and reads.
//!
//! - **Binary mode** (what Herald writes): every context attribute and extension but
//!   `datacontenttype` is a header `ce_{name}` holding the attribute's canonical string as UTF-8;
//!   `datacontenttype` is the `content-type` header; the data is the record value, and an event
//!   without data is a record without value. The `partitionkey` extension, when present, is
//!   also the record key (it stays a `ce_partitionkey` header: the binding's key mapper must not
//!   change the event), so events of one key share a partition.
//! - **Structured mode** (read only): a `content-type` header starting with
//!   `application/cloudevents` (any case) marks a value in the JSON event format.
//!
//! Binary mode carries every value as a string. So that an event comes out of the bus exactly as
//! it went in, Herald adds two headers that other consumers (Knative's among them) ignore:
//! - `herald-data`: `binary`, `json` or `text`: which [`Data`] variant the value was (absent:
//!   a value is binary data);
//! - `herald-ext-types`: `name=integer,name=boolean` for extensions that are not strings.

pub use crate::type_hints::EncodeError;
use crate::type_hints::{self, BinaryMessage, ContentTypeSource, HintError};
use cloudevents::Event;
use cloudevents::event::Data;
use cloudevents::message::{BinaryDeserializer, Error as MessageError};
use rdkafka::message::{Header, OwnedHeaders};

const CE_PREFIX: &str = "ce_";
const CONTENT_TYPE: &str = "content-type";
const DATA_KIND: &str = "herald-data";
const EXT_TYPES: &str = "herald-ext-types";
/// The extension whose value becomes the record key.
pub const PARTITION_KEY: &str = "partitionkey";
/// Bytes a record takes on the wire besides its key, value and headers, at most (record
/// framing, varints, batch share). Used only for the size check before producing.
const RECORD_OVERHEAD: usize = 64;

/// Why a Kafka record is not a CloudEvent.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("structured content type {0:?} is not the JSON event format")]
    UnsupportedFormat(String),
    #[error("structured-mode record without a value")]
    NoValue,
    #[error("invalid JSON event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid binary-mode event: {0}")]
    Binary(#[from] MessageError),
    #[error("header {name:?} is not UTF-8")]
    BadHeaderValue { name: String },
    #[error("header name {name:?} starts like an attribute but is not UTF-8")]
    BadHeaderName { name: String },
    #[error(transparent)]
    Hint(#[from] HintError),
}

/// One header of a consumed record as the broker stored it: the key may be any bytes (librdkafka
/// cuts it at a NUL), the value may be null.
#[derive(Debug, Clone, Copy)]
pub struct RawHeader<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// One event as a Kafka record, ready to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The event's `partitionkey`, if it has one.
    pub key: Option<String>,
    /// Header names and UTF-8 values, in the order they are written.
    pub headers: Vec<(String, String)>,
    /// The data; `None` for an event without data.
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// The headers as rdkafka wants them.
    pub fn owned_headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                })
            },
        )
    }

    /// The headers as a consumer sees them.
    pub fn raw_headers(&self) -> Vec<RawHeader<'_>> {
        self.headers
            .iter()
            .map(|(key, value)| RawHeader {
                key: key.as_bytes(),
                value: Some(value.as_bytes()),
            })
            .collect()
    }

    /// An upper bound of the record's size as the producer counts it against
    /// `message.max.bytes`.
    pub fn wire_size(&self) -> usize {
        RECORD_OVERHEAD
            + self.key.as_ref().map_or(0, String::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 10)
                .sum::<usize>()
    }
}

/// Encodes `event` in binary mode; refuses extension names that headers cannot carry back.
pub fn encode(event: &Event) -> Result<Record, EncodeError> {
    type_hints::check_extension_names(event)?;
    let mut headers = Vec::with_capacity(12);
    for (name, value) in event.iter_attributes() {
        let value = value.to_string();
        if name == "datacontenttype" {
            headers.push((CONTENT_TYPE.to_owned(), value));
        } else {
            headers.push((format!("{CE_PREFIX}{name}"), value));
        }
    }
    let mut key = None;
    for (name, value) in event.iter_extensions() {
        headers.push((format!("{CE_PREFIX}{name}"), value.to_string()));
        if name == PARTITION_KEY {
            key = Some(value.to_string());
        }
    }
    if let Some(types) = type_hints::extension_types(event) {
        headers.push((EXT_TYPES.to_owned(), types));
    }
    // Binary data (and none) needs no hint: it is what a foreign record decodes to anyway.
    if let kind @ ("text" | "json") = type_hints::data_kind(event.data()) {
        headers.push((DATA_KIND.to_owned(), kind.to_owned()));
    }
    let value = match event.data() {
        None => None,
        Some(Data::Binary(b)) => Some(b.clone()),
        Some(Data::String(s)) => Some(s.as_bytes().to_vec()),
        Some(Data::Json(v)) => Some(serde_json::to_vec(v)?),
    };
    Ok(Record {
        key,
        headers,
        value,
    })
}

/// Decodes a Kafka record in either content mode. The record key is not consulted: the binding
/// carries `partitionkey` as a header too. Headers whose names are not UTF-8 and not the
/// binding's are ignored, as other foreign headers are.
pub fn decode(headers: &[RawHeader<'_>], value: Option<&[u8]>) -> Result<Event, DecodeError> {
    let mut attrs = Vec::new();
    let mut content_type = None;
    let mut kind = None;
    let mut types = None;
    for header in headers {
        let text = |name: &str| {
            std::str::from_utf8(header.value.unwrap_or_default()).map_err(|_| {
                DecodeError::BadHeaderValue {
                    name: name.to_owned(),
                }
            })
        };
        let is_attribute = header.key.len() > CE_PREFIX.len()
            && header.key[..CE_PREFIX.len()].eq_ignore_ascii_case(CE_PREFIX.as_bytes());
        let Ok(name) = std::str::from_utf8(header.key) else {
            if is_attribute {
                return Err(DecodeError::BadHeaderName {
                    name: String::from_utf8_lossy(header.key).into_owned(),
                });
            }
            continue;
        };
        if name.eq_ignore_ascii_case(CONTENT_TYPE) {
            content_type = Some(text(name)?.to_owned());
        } else if is_attribute {
            // The prefix is ASCII, so the rest starts on a character boundary.
            attrs.push((
                name[CE_PREFIX.len()..].to_ascii_lowercase(),
                text(name)?.to_owned(),
            ));
        } else if name == DATA_KIND {
            kind = Some(text(name)?.to_owned());
        } else if name == EXT_TYPES {
            types = Some(text(name)?.to_owned());
        }
    }
    if let Some(ct) = &content_type
        && ct
            .get(..23)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/cloudevents"))
    {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/cloudevents+json") {
            return Err(DecodeError::UnsupportedFormat(ct.clone()));
        }
        return Ok(serde_json::from_slice(value.ok_or(DecodeError::NoValue)?)?);
    }
    let message = BinaryMessage {
        content_type_source: ContentTypeSource::Header,
        attrs,
        content_type,
        payload: value.map(<[u8]>::to_vec),
    };
    let mut event = BinaryDeserializer::into_event(message)?;
    type_hints::restore(&mut event, kind.as_deref(), types.as_deref())?;
    Ok(event)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
