//! Canonical events: one source and type, ids chosen by the test.

use serde_json::{Value, json};

pub const SOURCE: &str = "/herald/tests";
pub const TYPE: &str = "dev.herald.test";

/// A valid structured-mode event with JSON data `{"id": id}`.
pub fn structured(id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": SOURCE,
        "type": TYPE,
        "datacontenttype": "application/json",
        "data": { "id": id }
    })
}

/// A structured event of type `ty` with extra attributes merged in.
pub fn structured_with(id: &str, ty: &str, extra: &Value) -> Value {
    let mut event = structured(id);
    event["type"] = json!(ty);
    if let Some(map) = extra.as_object() {
        for (k, v) in map {
            event[k] = v.clone();
        }
    }
    event
}

/// Headers of a valid binary-mode event with a JSON body (pair with [`binary_body`]).
pub fn binary_headers(id: &str) -> Vec<(String, String)> {
    vec![
        ("ce-specversion".into(), "1.0".into()),
        ("ce-id".into(), id.into()),
        ("ce-source".into(), SOURCE.into()),
        ("ce-type".into(), TYPE.into()),
        ("content-type".into(), "application/json".into()),
    ]
}

pub fn binary_body(id: &str) -> String {
    json!({ "id": id }).to_string()
}

/// Borrows owned header pairs for [`crate::Client::post`].
pub fn borrow(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
