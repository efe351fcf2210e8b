//! The API over an in-memory [`Apply`] fake, through its router (no listener).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::registry::Registry;
use super::store::DirStore;
use super::{ApiOptions, router};
use crate::config::ConfigError;
use crate::live::{ApiDocument, Apply, Condition, FileDocument, ResourceStatus};

pub(super) const TOKEN: &str = "0123456789abcdef-token";

/// Accepts any document whose Trigger names `spec.broker`; every applied document is Ready.
#[derive(Default)]
pub(crate) struct FakeApply {
    pub(crate) applied: Mutex<Vec<ApiDocument>>,
    files: Vec<FileDocument>,
}

#[async_trait]
impl Apply for FakeApply {
    async fn set_api_documents(&self, documents: Vec<ApiDocument>) -> Result<(), ConfigError> {
        self.validate(&documents)?;
        *self.applied.lock().unwrap() = documents;
        Ok(())
    }

    fn validate(&self, documents: &[ApiDocument]) -> Result<(), ConfigError> {
        for (index, d) in documents.iter().enumerate() {
            if d["kind"] == "Trigger" && !d["spec"]["broker"].is_string() {
                return Err(ConfigError {
                    file: "api".into(),
                    document: index + 1,
                    field: "spec.broker".into(),
                    message: "a trigger needs a broker".into(),
                });
            }
        }
        Ok(())
    }

    fn file_documents(&self) -> Vec<FileDocument> {
        self.files.clone()
    }

    fn status(&self) -> Vec<ResourceStatus> {
        let applied = self.applied.lock().unwrap().clone();
        let files = self.files.iter().map(|f| f.value.clone());
        applied
            .into_iter()
            .chain(files)
            .map(|d| ResourceStatus {
                group: d["apiVersion"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .into(),
                kind: d["kind"].as_str().unwrap().into(),
                namespace: d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .into(),
                name: d["metadata"]["name"].as_str().unwrap().into(),
                conditions: vec![Condition {
                    kind: "Ready".into(),
                    status: "True".into(),
                    reason: None,
                    message: None,
                }],
                address: (d["kind"] == "Broker").then(|| "http://herald/ns/b".to_owned()),
            })
            .collect()
    }
}

pub(super) struct Harness {
    pub(super) app: axum::Router,
    pub(super) apply: Arc<FakeApply>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn harness_with(files: Vec<FileDocument>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let apply = Arc::new(FakeApply {
        files,
        ..FakeApply::default()
    });
    let store = Arc::new(DirStore::open(dir.path()).await.unwrap());
    let registry = Arc::new(Registry::open(apply.clone(), store).await.unwrap());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let options = ApiOptions {
        max_body: 4096,
        ..ApiOptions::default()
    };
    Harness {
        app: router(TOKEN.into(), registry, options, stop_rx),
        apply,
        _dir: dir,
        _stop: stop,
    }
}

pub(super) async fn harness() -> Harness {
    harness_with(Vec::new()).await
}

const TRIGGERS: &str = "/apis/eventing.knative.dev/v1/namespaces/shop/triggers";

fn trigger(name: &str) -> Value {
    json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": { "name": name },
        "spec": { "broker": "default", "subscriber": { "uri": "http://127.0.0.1:9/" } },
    })
}

impl Harness {
    pub(super) async fn call(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", content_type)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    pub(super) async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, uri, "application/json", body).await
    }
}

#[tokio::test]
async fn discovery_describes_triggers_with_their_verbs() {
    let h = harness().await;
    let (status, groups) = h.send(Method::GET, "/apis", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(groups["kind"], "APIGroupList");
    let (status, list) = h
        .send(Method::GET, "/apis/eventing.knative.dev/v1", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let triggers = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "triggers")
        .unwrap();
    assert_eq!(triggers["kind"], "Trigger");
    assert_eq!(triggers["namespaced"], true);
    assert!(
        triggers["verbs"]
            .as_array()
            .unwrap()
            .contains(&json!("watch"))
    );
    let (status, _) = h
        .send(Method::GET, "/apis/sources.knative.dev/v1alpha1", None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_request_without_the_token_gets_an_unauthorized_status() {
    let h = harness().await;
    let request = Request::builder()
        .uri(TRIGGERS)
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let status: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
}

#[tokio::test]
async fn a_created_trigger_has_metadata_status_and_is_applied() {
    let h = harness().await;
    let (status, created) = h.send(Method::POST, TRIGGERS, Some(trigger("t"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let meta = &created["metadata"];
    assert_eq!(meta["namespace"], "shop");
    assert_eq!(meta["generation"], 1);
    assert!(meta["uid"].as_str().unwrap().len() == 36);
    assert!(meta["creationTimestamp"].is_string());
    assert_eq!(created["status"]["observedGeneration"], 1);
    assert_eq!(created["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(created["status"]["conditions"][0]["status"], "True");
    assert_eq!(h.apply.applied.lock().unwrap().len(), 1);

    let (status, got) = h.send(Method::GET, &format!("{TRIGGERS}/t"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["metadata"]["uid"], meta["uid"]);
    let (status, list) = h
        .send(Method::GET, "/apis/eventing.knative.dev/v1/triggers", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["kind"], "TriggerList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, again) = h.send(Method::POST, TRIGGERS, Some(trigger("t"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["reason"], "AlreadyExists");
}

#[tokio::test]
async fn a_broker_reports_its_address() {
    let h = harness().await;
    let broker = json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "b"}, "spec": {}});
    let (status, created) = h
        .send(
            Method::POST,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers",
            Some(broker),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"]["address"]["url"], "http://herald/ns/b");
}

#[tokio::test]
async fn a_stale_resource_version_is_a_conflict_and_changes_nothing() {
    let h = harness().await;
    let (_, created) = h.send(Method::POST, TRIGGERS, Some(trigger("t"))).await;
    let old_version = created["metadata"]["resourceVersion"].clone();
    let mut first = created.clone();
    first["spec"]["filter"] = json!({"attributes": {"type": "a"}});
    let (status, updated) = h
        .send(Method::PUT, &format!("{TRIGGERS}/t"), Some(first))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_ne!(updated["metadata"]["resourceVersion"], old_version);

    let mut stale = created.clone();
    stale["spec"]["filter"] = json!({"attributes": {"type": "b"}});
    let (status, conflict) = h
        .send(Method::PUT, &format!("{TRIGGERS}/t"), Some(stale))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(conflict["kind"], "Status");
    assert_eq!(conflict["reason"], "Conflict");
    let (_, now) = h.send(Method::GET, &format!("{TRIGGERS}/t"), None).await;
    assert_eq!(now["spec"]["filter"]["attributes"]["type"], "a");
}

#[tokio::test]
async fn a_merge_patch_bumps_generation_only_for_spec_changes() {
    let h = harness().await;
    h.send(Method::POST, TRIGGERS, Some(trigger("t"))).await;
    let uri = format!("{TRIGGERS}/t");
    let labels = json!({"metadata": {"labels": {"team": "a"}}});
    let (status, patched) = h
        .call(
            Method::PATCH,
            &uri,
            "application/merge-patch+json",
            Some(labels),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["metadata"]["labels"]["team"], "a");
    assert_eq!(patched["metadata"]["generation"], 1);
    let spec = json!({"spec": {"subscriber": {"uri": "http://127.0.0.1:10/"}}});
    let (_, patched) = h
        .call(
            Method::PATCH,
            &uri,
            "application/merge-patch+json",
            Some(spec),
        )
        .await;
    assert_eq!(patched["metadata"]["generation"], 2);
    assert_eq!(patched["spec"]["broker"], "default");
    assert_eq!(patched["status"]["observedGeneration"], 2);

    let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"broker": "x"}});
    let (status, _) = h
        .call(
            Method::PATCH,
            &uri,
            "application/merge-patch+json",
            Some(stale),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn unsupported_patch_types_get_415_naming_what_works() {
    let h = harness().await;
    h.send(Method::POST, TRIGGERS, Some(trigger("t"))).await;
    let uri = format!("{TRIGGERS}/t");
    let (status, body) = h
        .call(
            Method::PATCH,
            &uri,
            "application/apply-patch+yaml",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("server-side apply")
    );
    let directive = json!({"spec": {"$patch": "replace"}});
    let (status, _) = h
        .call(
            Method::PATCH,
            &uri,
            "application/strategic-merge-patch+json",
            Some(directive),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let plain = json!({"metadata": {"labels": {"x": "y"}}});
    let (status, _) = h
        .call(
            Method::PATCH,
            &uri,
            "application/strategic-merge-patch+json",
            Some(plain),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_invalid_trigger_is_refused_with_422_naming_the_field_and_not_stored() {
    let h = harness().await;
    let mut bad = trigger("bad");
    bad["spec"] = json!({"subscriber": {"uri": "http://127.0.0.1:9/"}});
    let (status, body) = h.send(Method::POST, TRIGGERS, Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(body["details"]["causes"][0]["field"], "spec.broker");
    let (status, _) = h.send(Method::GET, &format!("{TRIGGERS}/bad"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut bad_name = trigger("Bad_Name");
    bad_name["metadata"]["name"] = json!("Bad_Name");
    let (status, body) = h.send(Method::POST, TRIGGERS, Some(bad_name)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    let mut elsewhere = trigger("t");
    elsewhere["metadata"]["namespace"] = json!("other");
    let (status, _) = h.send(Method::POST, TRIGGERS, Some(elsewhere)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn creating_beyond_the_object_cap_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DirStore::open(dir.path()).await.unwrap());
    let registry = Registry::open(Arc::new(FakeApply::default()), store)
        .await
        .unwrap()
        .with_max_objects(1);
    let kind = super::kinds::by_plural("eventing.knative.dev", "v1", "triggers").unwrap();
    registry.create(kind, "shop", trigger("a")).await.unwrap();
    let refused = registry
        .create(kind, "shop", trigger("b"))
        .await
        .unwrap_err();
    assert_eq!(refused.code, StatusCode::FORBIDDEN);
    assert!(
        refused.message.contains("--api-max-objects"),
        "{}",
        refused.message
    );
    // Changing what exists is still allowed.
    let mut a = registry.get(kind, "shop", "a").unwrap();
    a["metadata"]["labels"] = json!({"x": "y"});
    registry.replace(kind, "shop", "a", a).await.unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let h = harness().await;
    let mut big = trigger("big");
    big["metadata"]["annotations"] = json!({"x": "y".repeat(5000)});
    let (status, body) = h.send(Method::POST, TRIGGERS, Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["kind"], "Status");
}

#[tokio::test]
async fn a_file_resource_is_listed_read_only() {
    let file = FileDocument {
        path: "/etc/herald/triggers.yaml".into(),
        index: 2,
        value: {
            let mut t = trigger("from-file");
            t["metadata"]["namespace"] = json!("shop");
            t
        },
    };
    let h = harness_with(vec![file]).await;
    let (_, list) = h.send(Method::GET, TRIGGERS, None).await;
    let item = &list["items"][0];
    assert_eq!(
        item["metadata"]["annotations"]["herald.dev/source-file"],
        "/etc/herald/triggers.yaml, document 2"
    );
    assert_eq!(item["status"]["conditions"][0]["status"], "True");
    let uri = format!("{TRIGGERS}/from-file");
    let (status, body) = h
        .call(
            Method::PATCH,
            &uri,
            "application/merge-patch+json",
            Some(json!({"spec": {"broker": "x"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"].as_str().unwrap().contains("edit the file"),
        "{body}"
    );
    let (status, _) = h.send(Method::DELETE, &uri, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = h
        .send(Method::POST, TRIGGERS, Some(trigger("from-file")))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn delete_answers_a_status_and_the_trigger_is_gone() {
    let h = harness().await;
    h.send(Method::POST, TRIGGERS, Some(trigger("t"))).await;
    let (status, body) = h.send(Method::DELETE, &format!("{TRIGGERS}/t"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "Success");
    assert!(h.apply.applied.lock().unwrap().is_empty());
    let (status, body) = h.send(Method::DELETE, &format!("{TRIGGERS}/t"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], "NotFound");
}

/// Reads watch lines from `body` until `count` arrived (or the deadline passed).
async fn watch_lines(body: Body, count: usize) -> Vec<Value> {
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while lines.len() < count {
        let chunk = tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut stream))
            .await
            .expect("watch lines within the deadline")
            .expect("the watch stays open")
            .unwrap();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(serde_json::from_slice(&line).unwrap());
        }
    }
    lines
}

async fn open_watch(h: &Harness, query: &str) -> Body {
    let request = Request::builder()
        .uri(format!("{TRIGGERS}?watch=true{query}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body()
}

#[tokio::test]
async fn a_watch_streams_changes_and_resumes_from_a_resource_version() {
    let h = harness().await;
    let (_, first) = h.send(Method::POST, TRIGGERS, Some(trigger("a"))).await;
    let body = open_watch(&h, "").await;
    h.send(Method::POST, TRIGGERS, Some(trigger("b"))).await;
    h.send(Method::DELETE, &format!("{TRIGGERS}/a"), None).await;
    let lines = watch_lines(body, 3).await;
    let seen: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["type"].as_str().unwrap().into(),
                l["object"]["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ADDED".into(), "a".into()),
            ("ADDED".into(), "b".into()),
            ("DELETED".into(), "a".into())
        ]
    );
    assert_eq!(
        lines[1]["object"]["status"]["conditions"][0]["status"],
        "True"
    );

    // Resuming after the first object's version replays what followed it.
    let since = first["metadata"]["resourceVersion"].as_str().unwrap();
    let body = open_watch(
        &h,
        &format!("&resourceVersion={since}&fieldSelector=metadata.name%3Da"),
    )
    .await;
    let lines = watch_lines(body, 1).await;
    assert_eq!(lines[0]["type"], "DELETED");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "a");
}

#[tokio::test]
async fn api_resources_survive_a_restart_and_are_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let store = Arc::new(DirStore::open(dir.path()).await.unwrap());
    let registry = Arc::new(
        Registry::open(Arc::new(FakeApply::default()), store)
            .await
            .unwrap(),
    );
    let kind = super::kinds::by_plural("eventing.knative.dev", "v1", "triggers").unwrap();
    let created = registry.create(kind, "shop", trigger("t")).await.unwrap();
    drop(registry);

    let apply = Arc::new(FakeApply::default());
    let store = Arc::new(DirStore::open(dir.path()).await.unwrap());
    let registry = Arc::new(Registry::open(apply.clone(), store).await.unwrap());
    assert_eq!(apply.applied.lock().unwrap().len(), 1);
    let again = registry.get(kind, "shop", "t").unwrap();
    assert_eq!(again["metadata"]["uid"], created["metadata"]["uid"]);
    // The next change gets a newer resource version than any stored one.
    let (_, revision) = registry.list(kind, None);
    let next = registry.create(kind, "shop", trigger("u")).await.unwrap();
    let next: u64 = next["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next > revision);
    drop((stop, stop_rx));
}
