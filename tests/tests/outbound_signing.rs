//! Signed deliveries: `herald.dev/delivery.signingSecret` adds Standard Webhooks headers that
//! the official `standardwebhooks` Python library accepts, one signature per secret during a
//! rotation, on subscriber and dead-letter deliveries alike; the secrets never reach the log.

mod outbound_common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::run_cli;
use herald_tests::{Herald, HeraldOptions, Reply, Subscriber};
use outbound_common::*;
use serde_json::json;

fn secret(byte: u8) -> String {
    format!("whsec_{}", STANDARD.encode([byte; 32]))
}

struct Secrets {
    dir: tempfile::TempDir,
}

impl Secrets {
    /// `{dir}/hooks/current` holds one secret, `{dir}/hooks/next` another.
    fn new() -> Secrets {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("hooks")).unwrap();
        std::fs::write(dir.path().join("hooks/current"), secret(1)).unwrap();
        std::fs::write(dir.path().join("hooks/next"), format!("{}\n", secret(2))).unwrap();
        Secrets { dir }
    }

    fn options(&self) -> HeraldOptions {
        HeraldOptions {
            args: vec![
                "--secrets-dir".into(),
                self.dir.path().to_str().unwrap().into(),
            ],
            ..HeraldOptions::default()
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_verify_with_the_standardwebhooks_library_for_each_rotated_secret() {
    let secrets = Secrets::new();
    // The receiver checks each secret on its own, and a third it was never given.
    let receiver = Receiver::start(&[
        "--secret",
        &secret(1),
        "--secret",
        &secret(2),
        "--secret",
        &secret(3),
    ]);
    let failing = Subscriber::start().await;
    failing.set_script(|_| Reply::status(400));
    let url = format!("http://127.0.0.1:{}/", receiver.port);
    let mut signed = trigger("signed", "default", &url);
    let mut dead = trigger("dead", "default", &failing.url("/"));
    for t in [&mut signed, &mut dead] {
        t["metadata"]["annotations"] =
            json!({"herald.dev/delivery.signingSecret": "hooks/current, hooks/next"});
    }
    dead["spec"]["delivery"]["deadLetterSink"] = json!({"uri": format!("{url}dead-letter")});
    let docs = [broker("default"), signed, dead];
    let herald = Herald::start_with("embedded", &yaml(&docs), secrets.options()).await;
    publish(&herald, "signed-1").await;
    let requests = receiver.wait_for(2).await;
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        assert_eq!(request["verified"], json!([true, true, false]), "{request}");
        let headers = &request["headers"];
        assert_eq!(headers["webhook-id"], "signed-1");
        assert_eq!(headers["webhook-id"], headers["ce-id"]);
        let signatures = headers["webhook-signature"].as_str().unwrap();
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    }
    let paths: Vec<_> = requests
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"/dead-letter") && paths.contains(&"/"),
        "{paths:?}"
    );
    // The dead-lettered copy reached the receiver after the subscriber's 400: it is signed too.
    assert_eq!(failing.count(), 1);
    let log = herald.stderr();
    for byte in [1, 2] {
        let encoded = secret(byte);
        assert!(!log.contains(&encoded[6..]), "a secret reached the log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_reference_that_leaves_the_secrets_dir_fails_the_start_naming_the_field() {
    let secrets = Secrets::new();
    let mut t = trigger("t", "default", "http://127.0.0.1:9/");
    t["metadata"]["annotations"] = json!({"herald.dev/delivery.signingSecret": "../hooks/current"});
    let manifests = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifests.path(), yaml(&[broker("default"), t])).unwrap();
    let out = run_cli(
        &[
            "serve",
            "-f",
            manifests.path().to_str().unwrap(),
            "--secrets-dir",
            secrets.dir.path().to_str().unwrap(),
            "--bus",
            "memory",
            "--listen",
            "127.0.0.1:0",
        ],
        WAIT,
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("metadata.annotations.herald.dev/delivery.signingSecret")
            && out.stderr.contains("leave the secrets directory"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_sink_gets_the_signature_and_the_sources_own_token() {
    let secrets = Secrets::new();
    let receiver = Receiver::start(&["--secret", &secret(1)]);
    let ping = json!({
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": {
            "name": "tick",
            "namespace": "default",
            "annotations": {"herald.dev/delivery.signingSecret": "hooks/current"}
        },
        "spec": {
            "schedule": "@every 1s",
            "data": "{}",
            "contentType": "application/json",
            "sink": {
                "uri": format!("http://127.0.0.1:{}/ping", receiver.port),
                "audience": "ping-receiver"
            }
        }
    });
    let _herald = Herald::start_with(
        "embedded",
        &yaml(&[broker("default"), ping]),
        secrets.options(),
    )
    .await;
    let request = receiver.wait_for(1).await.remove(0);
    assert_eq!(request["verified"], json!([true]), "{request}");
    let token = request["headers"]["authorization"]
        .as_str()
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("a bearer token");
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["sub"],
        "system:serviceaccount:default:herald-pingsource-tick"
    );
    assert_eq!(claims["aud"], "ping-receiver");
}
