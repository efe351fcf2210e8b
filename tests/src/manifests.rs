//! Knative manifests for tests, built as JSON values (JSON is YAML) so tests can adjust any
//! field with `value["spec"]["delivery"] = json!(...)` instead of splicing indented text.

use serde_json::{Value, json};

/// Joins documents into one `---`-separated YAML stream.
pub fn yaml(documents: &[Value]) -> String {
    documents
        .iter()
        .map(|d| serde_json::to_string_pretty(d).expect("JSON serializes"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Broker `default/{name}`.
pub fn broker(name: &str) -> Value {
    json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": { "name": name, "namespace": "default" },
        "spec": {}
    })
}

/// Trigger `default/{name}` on broker `default/{broker}` delivering to `uri`, with
/// [`fast_delivery`].
pub fn trigger(name: &str, broker: &str, uri: &str) -> Value {
    json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "broker": broker,
            "subscriber": { "uri": uri },
            "delivery": fast_delivery()
        }
    })
}

/// Delivery settings that keep tests fast: 3 retries, linear 50 ms backoff, 5 s timeout.
pub fn fast_delivery() -> Value {
    json!({
        "retry": 3,
        "backoffPolicy": "linear",
        "backoffDelay": "PT0.05S",
        "timeout": "PT5S"
    })
}

/// Broker `default` plus one trigger `t` to `uri`: the most common setup.
pub fn one_trigger(uri: &str) -> String {
    yaml(&[broker("default"), trigger("t", "default", uri)])
}
