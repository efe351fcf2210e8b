//! Type hints for the binary-mode wire bindings (NATS, Kafka).
//!
//! Binary mode flattens every attribute to a string and the data to bytes. Two extra headers,
//! which other consumers may ignore, let Herald read back exactly what it wrote: the data's
//! variant (`none`, `binary`, `text`, `json`) and the extensions that were not strings
//! (`count=integer,flag=boolean`). One implementation serves every binding that uses them,
//! as does [`BinaryMessage`], the adapter from a decoded binary-mode message to the SDK.

use cloudevents::Event;
use cloudevents::event::{Data, ExtensionValue, SpecVersion};
use cloudevents::message::{
    BinaryDeserializer, BinarySerializer, Error as MessageError, MessageAttributeValue,
};

/// Which hint a [`HintError::Bad`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    DataKind,
    ExtensionTypes,
}

#[derive(Debug, thiserror::Error)]
pub enum HintError {
    #[error("{hint:?} hint has an invalid value {value:?}")]
    Bad { hint: Hint, value: String },
    #[error("data hinted as JSON is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// An extension name that a binary-mode binding cannot carry back unchanged: decoders lowercase
/// header names, the extension-types hint separates with `,` and `=`, and header syntax forbids
/// much else. The CloudEvents spec allows lower-case ASCII letters and digits only.
#[derive(Debug, thiserror::Error)]
#[error("extension name {name:?} is not lower-case ASCII letters and digits")]
pub struct BadExtensionName {
    pub name: String,
}

/// Why an event cannot become a binary-mode Kafka record or NATS message.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    ExtensionName(#[from] BadExtensionName),
    #[error("JSON data does not serialize: {0}")]
    Json(#[from] serde_json::Error),
}

/// Refuses an event whose extension names a binary-mode binding cannot represent.
pub fn check_extension_names(event: &Event) -> Result<(), BadExtensionName> {
    for (name, _) in event.iter_extensions() {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(BadExtensionName {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// The data-kind hint of an event's data.
pub fn data_kind(data: Option<&Data>) -> &'static str {
    match data {
        None => "none",
        Some(Data::Binary(_)) => "binary",
        Some(Data::String(_)) => "text",
        Some(Data::Json(_)) => "json",
    }
}

/// The extension-types hint (`name=integer,name=boolean`), `None` when every extension is a
/// string.
pub fn extension_types(event: &Event) -> Option<String> {
    let mut types = String::new();
    for (name, value) in event.iter_extensions() {
        let ty = match value {
            ExtensionValue::String(_) => continue,
            ExtensionValue::Integer(_) => "integer",
            ExtensionValue::Boolean(_) => "boolean",
        };
        if !types.is_empty() {
            types.push(',');
        }
        types.push_str(name);
        types.push('=');
        types.push_str(ty);
    }
    (!types.is_empty()).then_some(types)
}

/// Puts back the data variant and the extension types that binary mode flattened.
pub fn restore(
    event: &mut Event,
    kind: Option<&str>,
    types: Option<&str>,
) -> Result<(), HintError> {
    let bad = |hint, value: &str| HintError::Bad {
        hint,
        value: value.to_owned(),
    };
    match kind {
        None | Some("none") | Some("binary") => {}
        Some(k @ ("json" | "text")) => {
            if let Some(Data::Binary(bytes)) = event.data() {
                let data = if k == "json" {
                    Data::Json(serde_json::from_slice(bytes)?)
                } else {
                    Data::String(
                        String::from_utf8(bytes.clone()).map_err(|_| bad(Hint::DataKind, k))?,
                    )
                };
                event.set_data_unchecked(data);
            }
        }
        Some(other) => return Err(bad(Hint::DataKind, other)),
    }
    for entry in types.into_iter().flat_map(|t| t.split(',')) {
        let invalid = || bad(Hint::ExtensionTypes, entry);
        let (name, ty) = entry.split_once('=').ok_or_else(invalid)?;
        let Some(ExtensionValue::String(s)) = event.extension(name) else {
            return Err(invalid());
        };
        let typed = match ty {
            "integer" => ExtensionValue::Integer(s.parse().map_err(|_| invalid())?),
            "boolean" => ExtensionValue::Boolean(s.parse().map_err(|_| invalid())?),
            _ => return Err(invalid()),
        };
        let name = name.to_owned();
        event.set_extension(&name, typed);
    }
    Ok(())
}

/// Which carrier of `datacontenttype` wins when a message has both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentTypeSource {
    /// The binding's own content-type header (Kafka): a `ce_` copy is ignored.
    Header,
    /// The `ce-datacontenttype` attribute; the header fills in when it is missing (NATS).
    Attribute,
}

/// A binary-mode message with its `ce-` prefixes removed, as the SDK's builder reads it.
pub struct BinaryMessage {
    /// Attribute and extension names (lowercase, without prefix) with decoded values.
    pub attrs: Vec<(String, String)>,
    /// The binding's content-type header.
    pub content_type: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub content_type_source: ContentTypeSource,
}

impl BinaryDeserializer for BinaryMessage {
    fn deserialize_binary<R: Sized, V: BinarySerializer<R>>(
        self,
        mut serializer: V,
    ) -> cloudevents::message::Result<R> {
        let spec = self
            .attrs
            .iter()
            .find(|(n, _)| n == "specversion")
            .map(|(_, v)| v.as_str())
            .ok_or(MessageError::WrongEncoding {})?;
        let spec = SpecVersion::try_from(spec)?;
        serializer = serializer.set_spec_version(spec.clone())?;
        let known = spec.attribute_names();
        let header_wins =
            self.content_type_source == ContentTypeSource::Header && self.content_type.is_some();
        let mut has_content_type = false;
        for (name, value) in self.attrs {
            if name == "specversion" || (name == "datacontenttype" && header_wins) {
                continue;
            }
            has_content_type |= name == "datacontenttype";
            let value = MessageAttributeValue::String(value);
            serializer = if known.contains(&name.as_str()) {
                serializer.set_attribute(&name, value)?
            } else {
                serializer.set_extension(&name, value)?
            };
        }
        if let (false, Some(ct)) = (has_content_type, self.content_type) {
            serializer =
                serializer.set_attribute("datacontenttype", MessageAttributeValue::String(ct))?;
        }
        match self.payload {
            Some(data) => serializer.end_with_data(data),
            None => serializer.end(),
        }
    }
}
