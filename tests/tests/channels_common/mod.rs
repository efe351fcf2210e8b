//! Manifests and "functions" shared by the channel and flow tests.

#![allow(dead_code, reason = "each test file uses a part")]

use herald_tests::manifests::fast_delivery;
use herald_tests::{Client, Herald, Recorded, Reply, Subscriber};
use serde_json::{Value, json};

/// `{kind}` `default/{name}` of `messaging.knative.dev` (v1beta1 for `KafkaChannel`).
pub fn channel(kind: &str, name: &str) -> Value {
    let version = if kind == "KafkaChannel" {
        "v1beta1"
    } else {
        "v1"
    };
    json!({
        "apiVersion": format!("messaging.knative.dev/{version}"),
        "kind": kind,
        "metadata": { "name": name, "namespace": "default" },
        "spec": {}
    })
}

/// Subscription `default/{name}` of channel `default/{channel}` to `subscriber` (a
/// destination), with [`fast_delivery`] and no reply.
pub fn subscription(name: &str, channel: &str, subscriber: Value) -> Value {
    json!({
        "apiVersion": "messaging.knative.dev/v1",
        "kind": "Subscription",
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "channel": {
                "apiVersion": "messaging.knative.dev/v1",
                "kind": "InMemoryChannel",
                "name": channel
            },
            "subscriber": subscriber,
            "delivery": fast_delivery()
        }
    })
}

pub fn uri(url: &str) -> Value {
    json!({ "uri": url })
}

/// A `ref` destination to `kind` `default/{name}`.
pub fn reference(api_version: &str, kind: &str, name: &str) -> Value {
    json!({ "ref": { "apiVersion": api_version, "kind": kind, "name": name } })
}

/// A function on loopback: replies to each event with the same id and source, type
/// `{ty}`, its `steps` data with `step` appended, and extension `step{step}: "done"`.
pub async fn function(step: &'static str) -> Subscriber {
    let f = Subscriber::start().await;
    f.set_script(move |r| append(r, step));
    f
}

/// The reply of [`function`] to `r`.
pub fn append(r: &Recorded, step: &str) -> Reply {
    let mut data = r.json();
    let mut steps = data["steps"].as_array().cloned().unwrap_or_default();
    steps.push(json!(step));
    data["steps"] = json!(steps);
    Reply::binary_event(&r.id(), &format!("dev.herald.{step}"), "/functions", &data)
        .header(&format!("ce-step{step}"), "done")
}

/// The `steps` of a recorded event's data, as strings.
pub fn steps(r: &Recorded) -> Vec<String> {
    r.json()["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Publishes a structured event `{id}` with data `{"steps": []}` to `path`; asserts 202.
pub async fn publish(herald: &Herald, path: &str, id: &str) {
    let event = json!({
        "specversion": "1.0",
        "id": id,
        "source": "/herald/tests",
        "type": "dev.herald.test",
        "datacontenttype": "application/json",
        "data": { "steps": [] }
    });
    let r = Client::new()
        .post_structured(&herald.url(path), &event)
        .await;
    assert_eq!(r.status, 202, "POST {path}: {}", r.text());
}

/// Sequence `default/{name}` of the functions `steps` (each with [`fast_delivery`]), replying
/// to `reply`.
pub fn sequence(name: &str, steps: &[&Subscriber], reply: Value) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| json!({ "uri": s.url("/"), "delivery": fast_delivery() }))
        .collect();
    json!({
        "apiVersion": "flows.knative.dev/v1",
        "kind": "Sequence",
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "channelTemplate": { "apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel" },
            "steps": steps,
            "reply": reply
        }
    })
}
