//! A JSON Schema validator for the keywords `schemas/` uses: `type`, `properties`,
//! `required`, `items`, `const`, `enum`, `additionalProperties: false`. The `jsonschema` crate
//! would bring a regex engine, an HTTP client option and dozens of crates for these seven.

use std::path::PathBuf;

use serde_json::Value;

pub fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

pub fn load(relative: &str) -> Value {
    let text = std::fs::read_to_string(schemas_dir().join(relative)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every violation, as `path: why`.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "$", &mut errors);
    errors
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unsupported type {other}"),
    }
}

fn check(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let known = [
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "properties",
        "required",
        "items",
        "const",
        "enum",
        "additionalProperties",
    ];
    for key in schema.as_object().expect("schema is an object").keys() {
        assert!(
            known.contains(&key.as_str()),
            "unsupported keyword {key} at {path}"
        );
    }
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Value::String(name) => type_matches(name, v),
            Value::Array(names) => names.iter().any(|n| type_matches(n.as_str().unwrap(), v)),
            _ => panic!("bad type at {path}"),
        };
        if !ok {
            errors.push(format!("{path}: expected type {t}, got {v}"));
            return;
        }
    }
    if let Some(c) = schema.get("const").filter(|c| *c != v) {
        errors.push(format!("{path}: expected {c}, got {v}"));
    }
    if let Some(Value::Array(options)) = schema
        .get("enum")
        .filter(|o| !o.as_array().is_some_and(|o| o.contains(v)))
    {
        errors.push(format!("{path}: {v} not in {options:?}"));
    }
    if let Value::Object(map) = v {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !map.contains_key(name.as_str().unwrap()) {
                errors.push(format!("{path}: missing required {name}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, child) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(s, child, &format!("{path}.{k}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: unexpected property {k}"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(s, item, &format!("{path}[{i}]"), errors);
        }
    }
}
