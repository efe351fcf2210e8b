//! The mapping between an [`Event`] and a Pub/Sub message: the CloudEvents Pub/Sub protocol
//! binding.
//!
//! - **Binary mode** (what Herald writes): every context attribute and extension is a message
//!   attribute `ce-{name}` holding its canonical string (Pub/Sub attributes are UTF-8 strings:
//!   no escaping), `datacontenttype` is the attribute `Content-Type`, the data is the payload.
//! - **Structured mode** (read only): a `Content-Type` attribute starting with
//!   `application/cloudevents` (any case) marks a payload in the JSON event format.
//!
//! Attribute names are read case-insensitively, as the binding says. Two hint attributes that
//! other consumers can ignore let Herald read back exactly what it wrote (see
//! [`crate::type_hints`]): `herald-data` and `herald-ext-types`. The event's `partitionkey`
//! becomes the message's ordering key.

use std::collections::BTreeMap;

use cloudevents::Event;
use cloudevents::event::Data;
use cloudevents::message::{BinaryDeserializer, Error as MessageError};

pub use crate::type_hints::EncodeError;
use crate::type_hints::{self, BinaryMessage, ContentTypeSource, HintError};

const CE_PREFIX: &str = "ce-";
const CONTENT_TYPE: &str = "Content-Type";
const DATA_KIND: &str = "herald-data";
const EXT_TYPES: &str = "herald-ext-types";
const PARTITION_KEY: &str = "partitionkey";

/// A Pub/Sub message as Herald publishes or receives it (data decoded from base64).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub attributes: BTreeMap<String, String>,
    pub data: Vec<u8>,
    pub ordering_key: Option<String>,
}

impl Message {
    /// Bytes Pub/Sub counts against its message size limit: data, attribute names and values,
    /// ordering key.
    pub fn size(&self) -> u64 {
        let attributes: usize = self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
        (self.data.len() + attributes + self.ordering_key.as_ref().map_or(0, String::len)) as u64
    }
}

/// Why a Pub/Sub message is not a CloudEvent.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("structured content type {0:?} is not the JSON event format")]
    UnsupportedFormat(String),
    #[error("invalid JSON event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid binary-mode event: {0}")]
    Binary(#[from] MessageError),
    #[error(transparent)]
    Hint(#[from] HintError),
}

/// Encodes `event` in binary mode. Refuses extension names a binary binding cannot carry back.
pub fn encode(event: &Event) -> Result<Message, EncodeError> {
    type_hints::check_extension_names(event)?;
    let mut attributes = BTreeMap::new();
    for (name, value) in event.iter_attributes() {
        if name == "datacontenttype" {
            attributes.insert(CONTENT_TYPE.to_owned(), value.to_string());
        } else {
            attributes.insert(format!("{CE_PREFIX}{name}"), value.to_string());
        }
    }
    for (name, value) in event.iter_extensions() {
        attributes.insert(format!("{CE_PREFIX}{name}"), value.to_string());
    }
    if let Some(types) = type_hints::extension_types(event) {
        attributes.insert(EXT_TYPES.to_owned(), types);
    }
    attributes.insert(
        DATA_KIND.to_owned(),
        type_hints::data_kind(event.data()).to_owned(),
    );
    let data = match event.data() {
        None => Vec::new(),
        Some(Data::Binary(b)) => b.clone(),
        Some(Data::String(s)) => s.as_bytes().to_vec(),
        Some(Data::Json(v)) => serde_json::to_vec(v)?,
    };
    let ordering_key = event
        .extension(PARTITION_KEY)
        .map(|v| v.to_string())
        .filter(|k| !k.is_empty());
    Ok(Message {
        attributes,
        data,
        ordering_key,
    })
}

/// Decodes a Pub/Sub message in either content mode.
pub fn decode(attributes: &BTreeMap<String, String>, data: &[u8]) -> Result<Event, DecodeError> {
    let content_type = attribute(attributes, CONTENT_TYPE);
    if let Some(ct) = content_type
        && ct
            .get(..23)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/cloudevents"))
    {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/cloudevents+json") {
            return Err(DecodeError::UnsupportedFormat(ct.to_owned()));
        }
        return Ok(serde_json::from_slice(data)?);
    }
    let attrs = attributes
        .iter()
        .filter(|(name, _)| {
            name.len() > CE_PREFIX.len()
                && name
                    .get(..CE_PREFIX.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(CE_PREFIX))
        })
        .map(|(name, value)| (name[CE_PREFIX.len()..].to_ascii_lowercase(), value.clone()))
        .collect();
    let kind = attribute(attributes, DATA_KIND);
    let message = BinaryMessage {
        content_type_source: ContentTypeSource::Header,
        attrs,
        content_type: content_type.map(str::to_owned),
        payload: if kind == Some("none") || (kind.is_none() && data.is_empty()) {
            None
        } else {
            Some(data.to_vec())
        },
    };
    let mut event = BinaryDeserializer::into_event(message)?;
    type_hints::restore(&mut event, kind, attribute(attributes, EXT_TYPES))?;
    Ok(event)
}

fn attribute<'a>(attributes: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::fixtures;
    use cloudevents::AttributesReader;

    #[test]
    fn events_survive_binary_mode_exactly() {
        for event in [
            fixtures::event(7),
            fixtures::minimal_event(),
            fixtures::rich_event(),
        ] {
            let message = encode(&event).unwrap();
            assert_eq!(decode(&message.attributes, &message.data).unwrap(), event);
        }
    }

    #[test]
    fn binary_mode_uses_ce_attributes_content_type_and_the_partition_key() {
        let message = encode(&fixtures::rich_event()).unwrap();
        let a = &message.attributes;
        assert_eq!(a["ce-id"], "rich-1");
        assert_eq!(a["ce-specversion"], "1.0");
        assert_eq!(a["ce-time"], "2024-05-06T07:08:09.123+00:00");
        assert_eq!(a["Content-Type"], "application/octet-stream");
        assert_eq!(a["ce-count"], "42");
        assert_eq!(message.data, vec![0u8, 1, 2, 255]);
        assert_eq!(message.ordering_key.as_deref(), Some("k1"));
    }

    #[test]
    fn foreign_binary_and_structured_messages_are_read() {
        let attributes: BTreeMap<String, String> = [
            ("CE-SpecVersion", "1.0"),
            ("ce-id", "x1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("content-type", "text/plain"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let event = decode(&attributes, b"hi").unwrap();
        assert_eq!(event.id(), "x1");
        assert_eq!(event.datacontenttype(), Some("text/plain"));

        let structured: BTreeMap<String, String> = [(
            "Content-Type".to_owned(),
            "application/cloudevents+json; charset=utf-8".to_owned(),
        )]
        .into();
        let body = br#"{"specversion":"1.0","id":"s1","source":"/s","type":"t","data":{"a":1}}"#;
        assert_eq!(decode(&structured, body).unwrap().id(), "s1");
        let avro: BTreeMap<String, String> = [(
            "content-type".to_owned(),
            "application/cloudevents+avro".to_owned(),
        )]
        .into();
        assert!(matches!(
            decode(&avro, b""),
            Err(DecodeError::UnsupportedFormat(_))
        ));
    }

    #[test]
    fn messages_without_cloudevent_attributes_are_refused() {
        assert!(decode(&BTreeMap::new(), b"plain").is_err());
    }
}
