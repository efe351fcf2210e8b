//! A request body checked against its URL before it becomes an object.

use serde_json::{Value, json};

use super::kinds::Kind;
use super::names;
use super::status::ApiError;

/// Checks a request body against the URL and strips what the server owns (`status`,
/// `managedFields`); `name` is the URL's for an update.
pub fn prepare(
    kind: &Kind,
    namespace: &str,
    name: Option<&str>,
    mut body: Value,
) -> Result<Value, ApiError> {
    let Value::Object(fields) = &mut body else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object (a manifest)",
        ));
    };
    let api_version = kind.api_version();
    for (field, expected) in [("apiVersion", api_version.as_str()), ("kind", kind.kind)] {
        match fields.get(field).and_then(Value::as_str) {
            Some(given) if given == expected => {}
            None if !fields.contains_key(field) => {
                fields.insert(field.into(), json!(expected));
            }
            given => {
                return Err(ApiError::bad_request(format!(
                    "{field} {given:?} does not match the URL, which serves {expected}"
                )));
            }
        }
    }
    fields.remove("status");
    let Some(Value::Object(meta)) = fields.get_mut("metadata") else {
        return Err(ApiError::invalid(
            kind.kind,
            "",
            "metadata",
            "metadata is required",
        ));
    };
    meta.remove("managedFields");
    let given_name = meta.get("name").and_then(Value::as_str).map(str::to_owned);
    let given_name = match (given_name, name) {
        (Some(given), Some(url)) if given != url => {
            return Err(ApiError::bad_request(format!(
                "metadata.name {given:?} does not match the name in the URL {url:?}"
            )));
        }
        (Some(given), _) => given,
        (None, Some(url)) => url.to_owned(),
        (None, None) => {
            let field = if meta.contains_key("generateName") {
                "metadata.generateName"
            } else {
                "metadata.name"
            };
            return Err(ApiError::invalid(
                kind.kind,
                "",
                field,
                "metadata.name is required (generateName is not supported)",
            ));
        }
    };
    names::check_name(&given_name)
        .map_err(|why| ApiError::invalid(kind.kind, &given_name, "metadata.name", why))?;
    names::check_namespace(namespace).map_err(ApiError::bad_request)?;
    meta.insert("name".into(), json!(given_name));
    match meta.get("namespace").and_then(Value::as_str) {
        Some(given) if given != namespace => {
            return Err(ApiError::bad_request(format!(
                "metadata.namespace {given:?} does not match the namespace in the URL {namespace:?}"
            )));
        }
        _ => {
            meta.insert("namespace".into(), json!(namespace));
        }
    }
    Ok(body)
}
