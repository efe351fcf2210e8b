//! `herald serve -f bad.yaml` exits non-zero with an error naming file, document and field.

use std::time::Duration;

use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::run_cli;
use serde_json::json;

/// Runs `herald serve -f <file with manifests>`; asserts it fails and that stderr contains
/// every one of `expect`; returns stderr.
async fn serve_fails(case: &str, manifests: &str, expect: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, manifests).expect("write");
    let data = dir.path().join("data");
    let out = run_cli(
        &[
            "serve",
            "-f",
            file.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--bus",
            "memory",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(15),
    )
    .await;
    assert!(
        !out.status.success(),
        "{case}: herald accepted the manifests\n{}",
        out.stderr
    );
    let mut expect = expect.to_vec();
    let path = file.display().to_string();
    expect.push(&path);
    for word in expect {
        assert!(
            out.stderr.contains(word),
            "{case}: stderr does not mention {word:?}:\n{}",
            out.stderr
        );
    }
    out.stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_field_is_named_with_file_and_document() {
    let mut t = trigger("t", "default", "http://127.0.0.1:9/");
    t["spec"]["filterz"] = json!({"attributes": {"type": "x"}});
    serve_fails(
        "unknown field",
        &yaml(&[broker("default"), t]),
        &["document 2", "filterz"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_duration_is_named_with_its_field_path() {
    let mut t = trigger("t", "default", "http://127.0.0.1:9/");
    t["spec"]["delivery"]["backoffDelay"] = json!("0.2S");
    serve_fails(
        "bad duration",
        &yaml(&[broker("default"), t]),
        &["document 2", "spec.delivery.backoffDelay", "0.2S"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_on_an_undefined_broker_is_refused() {
    serve_fails(
        "unknown broker",
        &yaml(&[
            broker("default"),
            trigger("t", "nope", "http://127.0.0.1:9/"),
        ]),
        &["document 2", "spec.broker", "nope"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_kind_is_refused() {
    let mut b = broker("default");
    b["kind"] = json!("Brokr");
    serve_fails(
        "unknown kind",
        &yaml(&[b]),
        &["document 1", "kind", "Brokr"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_ref_to_an_undefined_broker_is_refused() {
    let mut t = trigger("t", "default", "http://127.0.0.1:9/");
    t["spec"]["delivery"]["deadLetterSink"] = json!({"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "ghost"}});
    serve_fails(
        "dead letter to undefined broker",
        &yaml(&[broker("default"), t]),
        &["document 2", "deadLetterSink"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_values_name_their_fields() {
    let cases = [
        (
            "backoffPolicy",
            json!("sometimes"),
            "spec.delivery.backoffPolicy",
        ),
        ("format", json!("xml"), "spec.delivery.format"),
        ("retry", json!(-1), "spec.delivery.retry"),
        ("timeout", json!("PT0S"), "spec.delivery.timeout"),
    ];
    for (field, value, path) in cases {
        let mut t = trigger("t", "default", "http://127.0.0.1:9/");
        t["spec"]["delivery"][field] = value;
        serve_fails(field, &yaml(&[broker("default"), t]), &["document 2", path]).await;
    }
    let mut t = trigger("t", "default", "not a url");
    t["metadata"]["name"] = json!("t");
    serve_fails(
        "subscriber uri",
        &yaml(&[broker("default"), t]),
        &["document 2", "spec.subscriber.uri"],
    )
    .await;
    let mut t = trigger("t", "default", "http://127.0.0.1:9/");
    t["metadata"]["annotations"] = json!({"kafka.eventing.knative.dev/delivery.order": "random"});
    serve_fails(
        "delivery order",
        &yaml(&[broker("default"), t]),
        &["document 2", "delivery.order"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_manifest_file_is_named() {
    let out = run_cli(
        &[
            "serve",
            "-f",
            "/nonexistent/herald-manifests.yaml",
            "--listen",
            "127.0.0.1:0",
            "--bus",
            "memory",
        ],
        Duration::from_secs(15),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("/nonexistent/herald-manifests.yaml"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_yaml_is_named_with_file_and_document() {
    let text = format!("{}\n---\nkind: [unclosed\n", yaml(&[broker("default")]));
    serve_fails("invalid yaml", &text, &["document 2"]).await;
}
