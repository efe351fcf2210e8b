//! `herald send` against a running herald, and `--help`.

use std::time::Duration;

use herald_tests::process::run_cli;
use herald_tests::{Herald, Subscriber, manifests};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn herald_send_publishes_and_prints_202() {
    let sub = Subscriber::start().await;
    let herald = Herald::start("embedded", &manifests::one_trigger(&sub.url("/"))).await;
    let url = herald.broker_url("default", "default");
    let out = run_cli(
        &[
            "send",
            &url,
            "--type",
            "dev.herald.cli",
            "--source",
            "/cli",
            "--id",
            "cli-1",
            "--data",
            r#"{"hello": "world"}"#,
            "--ext",
            "myext=some value",
        ],
        WAIT,
    )
    .await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("202"), "stdout: {}", out.stdout);

    let got = sub.wait_for(1, WAIT).await;
    let d = &got[0];
    assert_eq!(d.id(), "cli-1");
    assert_eq!(d.attr("type").as_deref(), Some("dev.herald.cli"));
    assert_eq!(d.attr("source").as_deref(), Some("/cli"));
    assert_eq!(d.attr("myext").as_deref(), Some("some value"));
    assert!(d.attr("time").is_some(), "send sets time");
    assert_eq!(d.json(), json!({"hello": "world"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn herald_send_structured_mode_and_data_from_a_file() {
    let sub = Subscriber::start().await;
    let herald = Herald::start("embedded", &manifests::one_trigger(&sub.url("/"))).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data.json");
    std::fs::write(&data, r#"{"from": "file"}"#).expect("write");
    let at_file = format!("@{}", data.display());
    let url = herald.broker_url("default", "default");
    let out = run_cli(
        &[
            "send",
            &url,
            "--type",
            "t",
            "--source",
            "/cli",
            "--id",
            "cli-2",
            "--mode",
            "structured",
            "--data",
            &at_file,
        ],
        WAIT,
    )
    .await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("202"), "stdout: {}", out.stdout);
    let got = sub.wait_for(1, WAIT).await;
    assert_eq!(got[0].id(), "cli-2");
    assert_eq!(got[0].json(), json!({"from": "file"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn herald_send_to_an_unknown_broker_fails_and_prints_404() {
    let herald = Herald::start("memory", "").await;
    let url = herald.broker_url("default", "missing");
    let out = run_cli(&["send", &url, "--type", "t", "--source", "/s"], WAIT).await;
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(out.stdout.contains("404"), "stdout: {}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_explains_serve_and_send_flags() {
    let out = run_cli(&["serve", "--help"], WAIT).await;
    assert!(out.status.success());
    for flag in ["--listen", "--bus", "--data-dir", "--max-body", "-f"] {
        assert!(
            out.stdout.contains(flag),
            "serve --help lacks {flag}:\n{}",
            out.stdout
        );
    }
    let out = run_cli(&["send", "--help"], WAIT).await;
    assert!(out.status.success());
    for flag in ["--type", "--source", "--id", "--data", "--ext", "--mode"] {
        assert!(
            out.stdout.contains(flag),
            "send --help lacks {flag}:\n{}",
            out.stdout
        );
    }
}
