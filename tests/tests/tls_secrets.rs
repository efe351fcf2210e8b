//! Secrets end to end with the built `herald` binary: a GitHubSource during a secret
//! rotation (`herald.dev/github.previousSecret`) accepts deliveries signed with either
//! secret and de-duplicates by signature as well as by delivery id; a `secretKeyRef` that
//! would leave `--secrets-dir` is refused at load, naming the field and never the value.

use std::path::Path;
use std::time::Duration;

use herald_tests::manifests::{broker, yaml};
use herald_tests::process::run_cli;
use herald_tests::{Client, Herald, HeraldOptions, Response, Subscriber};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

const CURRENT: &str = "the new secret, rotated in";
const PREVIOUS: &str = "the old secret, rotated out";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// A push delivery whose body names `n`, so distinct deliveries have distinct bodies.
fn body(n: u32) -> Vec<u8> {
    json!({
        "ref": format!("refs/heads/branch-{n}"),
        "compare": format!("https://github.com/octo-org/hello-world/compare/{n}"),
        "repository": { "name": "hello-world", "owner": { "login": "octo-org" } },
        "sender": { "login": "octocat" },
        "pusher": { "name": "octocat" }
    })
    .to_string()
    .into_bytes()
}

async fn deliver(herald: &Herald, id: &str, body: &[u8], signature: &str) -> Response {
    let headers = [
        ("content-type", "application/json"),
        ("x-github-event", "push"),
        ("x-github-delivery", id),
        ("x-hub-signature-256", signature),
    ];
    Client::new()
        .post(
            &herald.url("/sources/default/repo"),
            &headers,
            body.to_vec(),
        )
        .await
}

fn github_source(sink: &str, secret_key: &str, previous: Option<&str>) -> Value {
    let mut source = json!({
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "GitHubSource",
        "metadata": { "name": "repo", "namespace": "default" },
        "spec": {
            "ownerAndRepository": "octo-org/hello-world",
            "secretToken": { "secretKeyRef": { "name": "gh", "key": secret_key } },
            "sink": { "uri": sink }
        }
    });
    if let Some(previous) = previous {
        source["metadata"]["annotations"] = json!({ "herald.dev/github.previousSecret": previous });
    }
    source
}

fn secrets_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("gh")).unwrap();
    std::fs::write(dir.path().join("gh/current"), format!("{CURRENT}\n")).unwrap();
    std::fs::write(dir.path().join("gh/previous"), PREVIOUS).unwrap();
    dir
}

fn options(secrets: &Path) -> HeraldOptions {
    HeraldOptions {
        args: vec!["--secrets-dir".into(), secrets.display().to_string()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn during_a_rotation_both_secrets_are_accepted_and_replays_are_known_by_signature() {
    let sub = Subscriber::start().await;
    let secrets = secrets_dir();
    let manifests = yaml(&[github_source(
        &sub.url("/gh"),
        "current",
        Some("gh/previous"),
    )]);
    let herald = Herald::start_with("embedded", &manifests, options(secrets.path())).await;

    let new = deliver(&herald, "d-1", &body(1), &sign(CURRENT, &body(1))).await;
    assert_eq!(new.status, 202, "{}", new.text());
    let old = deliver(&herald, "d-2", &body(2), &sign(PREVIOUS, &body(2))).await;
    assert_eq!(old.status, 202, "{}", old.text());
    let neither = deliver(&herald, "d-3", &body(3), &sign("a guess", &body(3))).await;
    assert_eq!(neither.status, 401, "{}", neither.text());

    // The same id again (GitHub's redelivery), and the same signed body under a new id (a
    // replay): both answered 200, neither emitted.
    let redelivery = deliver(&herald, "d-1", &body(1), &sign(CURRENT, &body(1))).await;
    assert_eq!(redelivery.status, 200, "{}", redelivery.text());
    let replay = deliver(&herald, "d-4", &body(2), &sign(PREVIOUS, &body(2))).await;
    assert_eq!(replay.status, 200, "{}", replay.text());
    assert!(
        replay.text().contains("same signature"),
        "{}",
        replay.text()
    );

    // A URL sink is delivered before the 202: what arrived is final once answered.
    let got = sub.requests();
    let ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(ids, ["d-1", "d-2"]);
    let stderr = herald.stderr();
    for secret in [CURRENT, PREVIOUS] {
        assert!(!stderr.contains(secret), "a secret in the log: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_reference_out_of_the_secrets_dir_is_refused_at_load_naming_the_field() {
    let secrets = secrets_dir();
    // A secret that a `..` reference would reach: it must never be read or printed.
    std::fs::write(secrets.path().join("x"), "outside-value").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (source, field) in [
        (
            github_source("http://127.0.0.1:9/", "../x", None),
            "spec.secretToken.secretKeyRef.key",
        ),
        (
            github_source("http://127.0.0.1:9/", "current", Some("gh/../x")),
            "metadata.annotations.herald.dev/github.previousSecret",
        ),
    ] {
        let file = dir.path().join("manifests.yaml");
        std::fs::write(&file, yaml(&[broker("default"), source])).unwrap();
        let (file, secrets_arg) = (
            file.display().to_string(),
            secrets.path().display().to_string(),
        );
        let out = run_cli(
            &[
                "serve",
                "-f",
                &file,
                "--secrets-dir",
                &secrets_arg,
                "--bus",
                "memory",
                "--listen",
                "127.0.0.1:0",
            ],
            Duration::from_secs(30),
        )
        .await;
        assert!(!out.status.success(), "herald started: {}", out.stderr);
        assert!(
            out.stderr.contains(field),
            "{field} not named: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("outside-value"), "{}", out.stderr);
    }
}

#[test]
fn serve_help_does_not_print_the_kafka_options_from_the_environment() {
    let out = std::process::Command::new(herald_tests::binary::herald_bin())
        .args(["serve", "--help"])
        .env("HERALD_KAFKA_OPTIONS", "sasl.password=do-not-print-me")
        .output()
        .expect("run herald serve --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--kafka-option"), "{help}");
    assert!(!help.contains("do-not-print-me"), "{help}");
}
