//! Type hints for the binary-mode wire bindings (NATS, Kafka).
//!
//! Binary mode flattens every attribute to a string and the data to bytes. Two extra headers,
//! which other consumers may ignore, let Herald read back exactly what it wrote: the data's
//! variant (`none`, `binary`, `text`, `json`) and the extensions that were not strings
//! (`count=integer,flag=boolean`). One implementation serves every binding that uses them.

use cloudevents::Event;
use cloudevents::event::{Data, ExtensionValue};

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
