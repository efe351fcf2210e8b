//! Two Herald replicas sharing their management API's resources through the bus (NATS
//! key-value bucket, Kafka compacted topic): the scenario both bus tests run.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use crate::{Client, Herald, HeraldOptions, eventually, manifests};

const WAIT: Duration = Duration::from_secs(20);
pub const TOKEN: &str = "replicas-token-0123456789";
pub const TRIGGERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/triggers";

pub async fn call(
    herald: &Herald,
    method: Method,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let response = Client::new()
        .request(
            method,
            &herald.url(path),
            &[("authorization", &auth), ("content-type", content_type)],
            body.map(|b| b.to_string()).unwrap_or_default(),
        )
        .await;
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    )
}

/// Waits until `herald` reports trigger `name` Ready at `generation` (its own runtime's state).
pub async fn ready_at(herald: &Herald, name: &str, generation: u64) -> Value {
    eventually(
        WAIT,
        &format!("trigger {name} Ready at generation {generation}"),
        || async {
            let (status, object) = call(
                herald,
                Method::GET,
                &format!("{TRIGGERS}/{name}"),
                "application/json",
                None,
            )
            .await;
            let ready = object["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            (status == 200 && ready && object["metadata"]["generation"] == generation)
                .then_some(object)
        },
    )
    .await
}

async fn gone(herald: &Herald, name: &str) {
    eventually(WAIT, &format!("trigger {name} gone"), || async {
        let (status, _) = call(
            herald,
            Method::GET,
            &format!("{TRIGGERS}/{name}"),
            "application/json",
            None,
        )
        .await;
        (status == 404).then_some(())
    })
    .await;
}

/// On `bus`: what one replica creates, changes or deletes through the API, the other
/// applies (its own status says Ready at the right generation), and a replica that was down
/// catches up at start. `env`: extra environment of both replicas.
pub async fn two_replicas_converge_on_api_resources(bus: &str, env: Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let options = || HeraldOptions {
        args: vec!["--admin-token-file".into(), token.display().to_string()],
        env: env.clone(),
        ..HeraldOptions::default()
    };
    let a = Herald::start_with(bus, "", options()).await;
    let mut b = Herald::start_with(bus, "", options()).await;

    let metrics = Client::new().get(&a.url("/metrics")).await.text();
    assert!(
        metrics.contains(r#"herald_task_running{task="api-store"} 1"#),
        "following the shared store is a visible task"
    );
    let t = manifests::trigger("t", "default", "http://127.0.0.1:9/");
    let (status, created) = call(&a, Method::POST, TRIGGERS, "application/json", Some(&t)).await;
    assert_eq!(status, 201, "{created}");
    let on_b = ready_at(&b, "t", 1).await;
    assert_eq!(
        on_b["metadata"]["uid"], created["metadata"]["uid"],
        "the same object"
    );

    // A change through the other replica comes back.
    let patch = json!({ "spec": { "filter": { "attributes": { "type": "only.this" } } } });
    let (status, patched) = call(
        &b,
        Method::PATCH,
        &format!("{TRIGGERS}/t"),
        "application/merge-patch+json",
        Some(&patch),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let on_a = ready_at(&a, "t", 2).await;
    assert_eq!(on_a["spec"]["filter"]["attributes"]["type"], "only.this");

    // A replica that was down catches up at start.
    b.kill9();
    let u = manifests::trigger("u", "default", "http://127.0.0.1:9/");
    let (status, _) = call(&a, Method::POST, TRIGGERS, "application/json", Some(&u)).await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &a,
        Method::DELETE,
        &format!("{TRIGGERS}/t"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(status, 200);
    b.restart().await;
    ready_at(&b, "u", 1).await;
    gone(&b, "t").await;

    // A delete through one replica removes it from the other.
    let (status, _) = call(
        &b,
        Method::DELETE,
        &format!("{TRIGGERS}/u"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(status, 200);
    gone(&a, "u").await;
    let (_, list) = call(&a, Method::GET, TRIGGERS, "application/json", None).await;
    assert_eq!(list["items"], json!([]));
}
