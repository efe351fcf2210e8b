//! The pure conversion of one object change into the event Knative's ApiServerSource sends.

use cloudevents::event::ExtensionValue;
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Mode;
use crate::attribute::clean;

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    #[serde(rename = "add")]
    Added,
    #[serde(rename = "update")]
    Updated,
    #[serde(rename = "delete")]
    Deleted,
}

impl Change {
    /// The last segment of the event type and of the id.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "add",
            Change::Updated => "update",
            Change::Deleted => "delete",
        }
    }
}

/// What the conversion needs beyond the object.
#[derive(Debug, Clone)]
pub struct EventContext {
    /// The API server URL Herald connected to: the events' `source`.
    pub api_server: String,
    /// The resource's real plural, from discovery (`ingresses`, `endpoints`, `networkpolicies`).
    pub plural: String,
    pub mode: Mode,
    /// The longest attribute value taken from the object (see [`crate::attribute`]).
    pub max_value_bytes: usize,
}

/// The event for `change` of `object` (for deletes, its last known state).
///
/// The id is `{uid}/{resourceVersion}/{change}`: the same change always gets the same id,
/// so a re-send after a restart is recognisable (Knative sends a random UUID).
pub fn to_event(change: Change, object: &Value, ctx: &EventContext) -> Event {
    let raw = |ptr: &str| {
        object
            .pointer(ptr)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    // Cluster-controlled text: clean for attributes (no control characters, bounded); the
    // data keeps the original.
    let text = |ptr: &str| clean(raw(ptr), ctx.max_value_bytes);
    let api_version = text("/apiVersion");
    let kind = text("/kind");
    let name = text("/metadata/name");
    let namespace = text("/metadata/namespace");
    let uid = text("/metadata/uid");
    let resource_version = text("/metadata/resourceVersion");

    let plural = clean(&ctx.plural, ctx.max_value_bytes);
    let subject = if namespace.is_empty() {
        format!("/apis/{api_version}/{plural}/{name}")
    } else {
        format!("/apis/{api_version}/namespaces/{namespace}/{plural}/{name}")
    };
    let (mode, data) = match ctx.mode {
        Mode::Reference => {
            let mut reference = json!({"apiVersion": raw("/apiVersion"), "kind": raw("/kind"),
                                       "name": raw("/metadata/name")});
            if !namespace.is_empty() {
                reference["namespace"] = json!(raw("/metadata/namespace"));
            }
            ("ref", reference)
        }
        Mode::Resource => ("resource", object.clone()),
    };
    let mut event = EventBuilderV10::new()
        .id(format!("{uid}/{resource_version}/{}", change.as_str()))
        .ty(format!("dev.knative.apiserver.{mode}.{}", change.as_str()))
        .source(ctx.api_server.as_str())
        .subject(subject)
        .data("application/json", data)
        .build()
        .expect("id, type and source are set");
    for (ext, value) in [
        ("kind", kind),
        ("apiversion", api_version),
        ("name", name),
        ("namespace", namespace),
    ] {
        if !value.is_empty() {
            event.set_extension(ext, ExtensionValue::String(value));
        }
    }
    event
}
