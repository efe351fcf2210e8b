//! With `--oidc-issuer`, a GitHubSource's endpoint keeps its HMAC check and needs no token:
//! the source publishes to its broker as its own identity, authorized like any sender.

mod oidc_common;

use std::path::PathBuf;
use std::time::Duration;

use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, HeraldOptions, Subscriber};
use hmac::{Hmac, KeyInit, Mac};
use oidc_common::Keys;
use serde_json::json;

const SECRET: &str = "a webhook secret";

fn signature(body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_delivery_needs_its_hmac_and_no_token_and_passes_the_default_mode() {
    let keys = Keys::new();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(secrets.path().join("gh")).unwrap();
    std::fs::write(secrets.path().join("gh/token"), SECRET).unwrap();
    let sub = Subscriber::start().await;
    let source = json!({
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "GitHubSource",
        "metadata": {"name": "repo", "namespace": "default"},
        "spec": {
            "ownerAndRepository": "octo-org/hello-world",
            "eventTypes": [],
            "secretToken": {"secretKeyRef": {"name": "gh", "key": "token"}},
            "sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}
        }
    });
    let docs = [
        broker("default"),
        trigger("t", "default", &sub.url("/")),
        source,
    ];
    let mut args = keys.issuer_flag();
    args.extend(["--secrets-dir".into(), secrets.path().display().to_string()]);
    let herald = Herald::start_with(
        "memory",
        &yaml(&docs),
        HeraldOptions {
            args,
            ..Default::default()
        },
    )
    .await;
    let body = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../sources/tests/fixtures/github/push.json"),
    )
    .unwrap();
    let url = herald.url("/sources/default/repo");
    let client = Client::new();
    let post = |signature: Option<String>, id: &'static str| {
        let (client, url, body) = (&client, url.clone(), body.clone());
        async move {
            let mut headers = vec![
                ("content-type", "application/json".to_owned()),
                ("x-github-event", "push".to_owned()),
                ("x-github-delivery", id.to_owned()),
            ];
            if let Some(s) = signature {
                headers.push(("x-hub-signature-256", s));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            client.post(&url, &headers, body).await
        }
    };
    assert_eq!(post(None, "d-unsigned").await.status, 401);
    let answer = post(Some(signature(&body)), "d-signed").await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    let got = sub.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].id(), "d-signed");
    // The broker itself still wants a token.
    let direct = client
        .post(
            &herald.broker_url("default", "default"),
            &[
                ("content-type", "application/json"),
                ("ce-specversion", "1.0"),
                ("ce-id", "x"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
            ],
            "{}",
        )
        .await;
    assert_eq!(direct.status, 401);
}
