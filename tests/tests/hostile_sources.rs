//! Sources under hostile input and damaged state, end to end with the built `herald` binary:
//! a GitHub payload whose branch name carries control characters is still emitted (encoded),
//! and damaged or orphaned state files at start neither stop Herald nor go unreported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, HeraldOptions, Response, Subscriber, eventually};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use tempfile::TempDir;

const SECRET: &str = "It's a Secret to Everybody";

fn fixture(event: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sources/tests/fixtures/github");
    std::fs::read(dir.join(format!("{event}.json"))).expect("fixture exists")
}

fn sign(body: &[u8]) -> String {
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

async fn deliver(herald: &Herald, event: &str, id: &str, body: &[u8]) -> Response {
    let signature = sign(body);
    let headers = [
        ("content-type", "application/json"),
        ("x-github-event", event),
        ("x-github-delivery", id),
        ("x-hub-signature-256", signature.as_str()),
    ];
    Client::new()
        .post(
            &herald.url("/sources/default/repo"),
            &headers,
            body.to_vec(),
        )
        .await
}

fn secrets() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("gh-secret")).unwrap();
    std::fs::write(dir.path().join("gh-secret/token"), SECRET).unwrap();
    dir
}

fn github_source(sink: Value) -> Value {
    json!({
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "GitHubSource",
        "metadata": { "name": "repo", "namespace": "default" },
        "spec": {
            "ownerAndRepository": "octo-org/hello-world",
            "secretToken": { "secretKeyRef": { "name": "gh-secret", "key": "token" } },
            "sink": sink
        }
    })
}

fn options(secrets: &Path) -> HeraldOptions {
    HeraldOptions {
        args: vec!["--secrets-dir".into(), secrets.display().to_string()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_branch_name_with_control_characters_is_emitted_percent_encoded_and_values_cut() {
    let sub = Subscriber::start().await;
    let secrets = secrets();
    let broker_ref = json!({ "ref": { "apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default" } });
    let manifests = yaml(&[
        broker("default"),
        trigger("t", "default", &sub.url("/")),
        github_source(broker_ref),
    ]);
    let mut opts = options(secrets.path());
    opts.args
        .extend(["--source-attribute-max-bytes".into(), "200".into()]);
    let herald = Herald::start_with("embedded", &manifests, opts).await;
    let mut payload: Value = serde_json::from_slice(&fixture("push")).unwrap();
    payload["ref"] = json!("refs/heads/x\n\u{0}forged\u{1b}[31m\u{85}");
    payload["sender"]["login"] = json!("a".repeat(100_000));
    let body = serde_json::to_vec(&payload).unwrap();

    let response = deliver(&herald, "push", "hostile-1", &body).await;
    assert_eq!(response.status, 202, "{}", response.text());
    let got = sub.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].attr("ref").as_deref(),
        Some("refs/heads/x%0A%00forged%1B[31m%C2%85")
    );
    // Cut to the configured length; the data keeps the whole login.
    assert_eq!(got[0].attr("sender").map(|s| s.len()), Some(200));
    assert_eq!(got[0].body, body, "the payload is the data, unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_and_orphaned_source_state_at_start_is_reported_and_herald_serves() {
    let sub = Subscriber::start().await;
    let secrets = secrets();
    let manifests = yaml(&[github_source(json!({ "uri": sub.url("/github") }))]);
    let mut herald = Herald::start_with("embedded", &manifests, options(secrets.path())).await;
    // Distinct deliveries have distinct bodies (the same body under a new id is a replay,
    // recognised by its signature): trailing white space makes each body its own.
    let body_of = |n: usize| [fixture("issues"), vec![b' '; n]].concat();
    let ids = ["first-1", "second-2", "third-3", "fourth-4"];
    for (n, id) in ids.iter().enumerate().take(3) {
        assert_eq!(
            deliver(&herald, "issues", id, &body_of(n)).await.status,
            202
        );
    }
    let state = herald.data_dir().join("sources");
    let log = state.join("github/default_repo.deliveries");
    // One flipped bit in each line of `second-2` (its id and its signature); a Ping progress
    // file of a source that no longer exists; garbage where an ApiServerSource's state was.
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.windows(8).position(|w| w == b"second-2").unwrap() + 1;
    bytes[at] ^= 0x04;
    let signature = sign(&body_of(1));
    let at = bytes
        .windows(signature.len())
        .position(|w| w == signature.as_bytes())
        .unwrap()
        + 10;
    bytes[at] ^= 0x04;
    std::fs::write(&log, &bytes).unwrap();
    std::fs::create_dir_all(state.join("ping")).unwrap();
    std::fs::write(state.join("ping/default_removed.json"), b"\0\0garbage").unwrap();

    herald.restart().await;
    // Herald serves; the damaged file is kept and the log line names it.
    assert_eq!(
        std::fs::read(state.join("github/default_repo.deliveries.corrupt")).unwrap(),
        bytes
    );
    assert!(!state.join("ping/default_removed.json").exists());
    let stderr = herald.stderr();
    assert!(
        stderr.contains("delivery log has corrupt lines")
            && stderr.contains("default_repo.deliveries"),
        "{stderr}"
    );
    assert!(
        stderr.contains("removed the state of a source that is no longer configured"),
        "{stderr}"
    );
    // The intact ids are still known; the damaged one is emitted again (a duplicate, not a
    // loss); new deliveries flow.
    for (n, id, status) in [
        (0, ids[0], 200),
        (2, ids[2], 200),
        (1, ids[1], 202),
        (3, ids[3], 202),
    ] {
        assert_eq!(
            deliver(&herald, "issues", id, &body_of(n)).await.status,
            status,
            "{id}"
        );
    }
    let sub = &sub;
    eventually(Duration::from_secs(10), "five deliveries", || async move {
        (sub.count() == 5).then_some(())
    })
    .await;
}
