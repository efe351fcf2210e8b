//! Sources end to end: the real `herald` binary with GitHubSource, PingSource and
//! ApiServerSource manifests, events flowing through a Herald broker and a trigger to a real
//! subscriber.
//!
//! GitHub deliveries are the fixture payloads of `sources/tests/fixtures/github`, signed the way
//! GitHub signs them. The Kubernetes API server is the sources crate's fake list/watch server
//! (no real one can run here), reached through a `KUBECONFIG` as a real cluster would be.

#[path = "../../sources/tests/common/fake_apiserver.rs"]
#[allow(dead_code)]
mod fake_apiserver;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fake_apiserver::FakeApiServer;
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

/// POSTs a delivery as GitHub does; `signature` overrides the correct one (`Some("")`: none).
async fn deliver(
    herald: &Herald,
    event: &str,
    id: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Response {
    let good = sign(SECRET, body);
    let signature = signature.unwrap_or(&good);
    let mut headers = vec![
        ("content-type", "application/json"),
        ("user-agent", "GitHub-Hookshot/044aadd"),
        ("x-github-event", event),
        ("x-github-delivery", id),
        ("x-github-hook-id", "109948940"),
    ];
    if !signature.is_empty() {
        headers.push(("x-hub-signature-256", signature));
    }
    Client::new()
        .post(
            &herald.url("/sources/default/repo"),
            &headers,
            body.to_vec(),
        )
        .await
}

/// A secrets dir holding `gh-secret/token`, as Kubernetes mounts a secret.
fn secrets() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("gh-secret")).unwrap();
    std::fs::write(dir.path().join("gh-secret/token"), format!("{SECRET}\n")).unwrap();
    dir
}

fn github_source(event_types: &[&str]) -> Value {
    json!({
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "GitHubSource",
        "metadata": { "name": "repo", "namespace": "default" },
        "spec": {
            "ownerAndRepository": "octo-org/hello-world",
            "eventTypes": event_types,
            "secretToken": { "secretKeyRef": { "name": "gh-secret", "key": "token" } },
            "sink": { "ref": { "apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default" } }
        }
    })
}

fn secrets_args(dir: &Path) -> HeraldOptions {
    HeraldOptions {
        args: vec!["--secrets-dir".into(), dir.display().to_string()],
        ..Default::default()
    }
}

async fn github_herald(sub: &Subscriber, event_types: &[&str], secrets: &Path) -> Herald {
    let manifests = yaml(&[
        broker("default"),
        trigger("t", "default", &sub.url("/")),
        github_source(event_types),
    ]);
    Herald::start_with("embedded", &manifests, secrets_args(secrets)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_delivery_is_202_and_reaches_the_subscriber_with_the_knative_attributes() {
    let sub = Subscriber::start().await;
    let secrets = secrets();
    let herald = github_herald(&sub, &[], secrets.path()).await;
    let body = fixture("push");
    let id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let response = deliver(&herald, "push", id, &body, None).await;
    assert_eq!(response.status, 202, "{}", response.text());

    let got = sub.wait_for(1, Duration::from_secs(10)).await;
    let r = &got[0];
    let payload: Value = serde_json::from_slice(&body).unwrap();
    let compare = payload["compare"].as_str().unwrap();
    let expected = [
        ("id", id),
        ("type", "dev.knative.source.github.push"),
        ("source", "https://github.com/octo-org/hello-world"),
        ("subject", compare.rsplit('/').next().unwrap()),
        (
            "owner",
            payload["repository"]["owner"]["login"].as_str().unwrap(),
        ),
        (
            "repository",
            payload["repository"]["name"].as_str().unwrap(),
        ),
        ("sender", payload["sender"]["login"].as_str().unwrap()),
        ("pusher", payload["pusher"]["name"].as_str().unwrap()),
        ("ref", payload["ref"].as_str().unwrap()),
    ];
    for (name, value) in expected {
        assert_eq!(r.attr(name).as_deref(), Some(value), "attribute {name}");
    }
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(r.attr("time").is_some(), "time is the receive time");
    assert_eq!(r.body, body, "the raw body is the data, unchanged");

    let metrics = Client::new().get(&herald.url("/metrics")).await.text();
    assert!(
        metrics.contains(
            r#"herald_source_events_emitted_total{source="default/repo",kind="GitHubSource"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_unsigned_deliveries_are_401_and_emit_nothing() {
    let sub = Subscriber::start().await;
    let secrets = secrets();
    let herald = github_herald(&sub, &[], secrets.path()).await;
    let body = fixture("issues");
    let forged = sign("not the secret", &body);
    let response = deliver(&herald, "issues", "forged-1", &body, Some(&forged)).await;
    assert_eq!(response.status, 401);
    assert!(
        response.error().contains("signature"),
        "{}",
        response.text()
    );
    let response = deliver(&herald, "issues", "unsigned-1", &body, Some("")).await;
    assert_eq!(response.status, 401);
    // A body changed after signing is a forgery too.
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let response = deliver(
        &herald,
        "issues",
        "tampered-1",
        &tampered,
        Some(&sign(SECRET, &body)),
    )
    .await;
    assert_eq!(response.status, 401);

    let got = sub
        .settle(Duration::from_millis(500), Duration::from_secs(5))
        .await;
    assert!(got.is_empty(), "nothing emitted: {got:?}");
    let metrics = Client::new().get(&herald.url("/metrics")).await.text();
    assert!(
        metrics.contains(r#"reason="wrong_signature"} 2"#)
            && metrics.contains(r#"reason="missing_signature"} 1"#),
        "{metrics}"
    );
}

/// The sink here is the subscriber's URL, not a broker: with a broker in between, a `kill -9`
/// may make its trigger redeliver (at-least-once), which would hide what this checks.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_delivery_is_2xx_and_emitted_once_even_across_a_kill_9() {
    let sub = Subscriber::start().await;
    let secrets = secrets();
    let mut source = github_source(&[]);
    source["spec"]["sink"] = json!({ "uri": sub.url("/github") });
    let manifests = yaml(&[source]);
    let mut herald = Herald::start_with("embedded", &manifests, secrets_args(secrets.path())).await;
    let body = fixture("pull_request");
    let id = "replayed-delivery-1";
    assert_eq!(
        deliver(&herald, "pull_request", id, &body, None)
            .await
            .status,
        202
    );
    let again = deliver(&herald, "pull_request", id, &body, None).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(sub.count(), 1, "a URL sink is delivered before the 202");

    herald.restart().await;
    let after = deliver(&herald, "pull_request", id, &body, None).await;
    assert_eq!(
        after.status,
        200,
        "remembered across a kill -9: {}",
        after.text()
    );
    // A new delivery (new id, new body: the same body again is a replay, known by its
    // signature) is still emitted after the restart.
    let fresh = [body.as_slice(), b"\n"].concat();
    assert_eq!(
        deliver(&herald, "pull_request", "fresh-2", &fresh, None)
            .await
            .status,
        202
    );
    let got = sub
        .settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    let ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(ids, [id, "fresh-2"]);
    assert_eq!(got[0].path, "/github");
    assert_eq!(
        got[0].attr("type").as_deref(),
        Some("dev.knative.source.github.pull_request")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn event_types_choose_what_is_emitted() {
    let sub = Subscriber::start().await;
    let secrets = secrets();
    let herald = github_herald(&sub, &["pull_request", "ping"], secrets.path()).await;
    let push = deliver(&herald, "push", "p-1", &fixture("push"), None).await;
    assert_eq!(
        push.status, 204,
        "push is not listed: answered, not emitted"
    );
    let ping = deliver(&herald, "ping", "ping-1", &fixture("ping"), None).await;
    assert_eq!(ping.status, 202);
    let pr = deliver(
        &herald,
        "pull_request",
        "pr-1",
        &fixture("pull_request"),
        None,
    )
    .await;
    assert_eq!(pr.status, 202);
    let got = sub
        .settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    let mut types: Vec<String> = got.iter().map(|r| r.attr("type").unwrap()).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "dev.knative.source.github.ping",
            "dev.knative.source.github.pull_request"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_source_whose_secret_is_missing_fails_the_load_naming_the_field() {
    let empty = tempfile::tempdir().unwrap();
    let manifests = yaml(&[broker("default"), github_source(&[])]);
    let file = empty.path().join("m.yaml");
    std::fs::write(&file, manifests).unwrap();
    let out = herald_tests::process::run_cli(
        &[
            "serve",
            "-f",
            file.to_str().unwrap(),
            "--secrets-dir",
            empty.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("document 2, field spec.secretToken.secretKeyRef"),
        "{}",
        out.stderr
    );
}

fn api_server_source(ns: &str) -> Value {
    json!({
        "apiVersion": "sources.knative.dev/v1",
        "kind": "ApiServerSource",
        "metadata": { "name": "cms", "namespace": ns },
        "spec": {
            "resources": [{ "apiVersion": "v1", "kind": "ConfigMap" }],
            "sink": { "ref": { "kind": "Broker", "name": "default", "namespace": "default" } }
        }
    })
}

fn kube_env(kubeconfig: &Path) -> Vec<(String, String)> {
    vec![
        ("KUBECONFIG".into(), kubeconfig.display().to_string()),
        // Never pick up a real in-cluster config where these tests run.
        ("KUBERNETES_SERVICE_HOST".into(), String::new()),
    ]
}

/// PingSource: a one-minute schedule is too slow to wait for here; its events are checked
/// under paused time in the broker's unit tests. This checks the binary loads it and runs it
/// next to an ApiServerSource that has no cluster to talk to, without either stopping Herald.
#[tokio::test(flavor = "multi_thread")]
async fn ping_and_clusterless_apiserver_sources_start_and_herald_stays_ready() {
    let sub = Subscriber::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ping = json!({
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": { "name": "tick", "namespace": "default" },
        "spec": {
            "schedule": "0 0 1 1 *",
            "timezone": "Europe/Paris",
            "data": "{\"hello\": \"world\"}",
            "contentType": "application/json",
            "sink": { "ref": { "kind": "Broker", "name": "default" } }
        }
    });
    let manifests = yaml(&[
        broker("default"),
        trigger("t", "default", &sub.url("/")),
        ping,
        api_server_source("default"),
    ]);
    let options = HeraldOptions {
        env: kube_env(&dir.path().join("no-such-kubeconfig")),
        ..Default::default()
    };
    let herald = Herald::start_with("embedded", &manifests, options).await;
    eventually(
        Duration::from_secs(10),
        "the watcher to report it has no cluster",
        || {
            let stderr = herald.stderr();
            async move { stderr.contains("no kubernetes client").then_some(()) }
        },
    )
    .await;
    assert!(herald.stderr().contains("ping source started"));
    let ready = Client::new().get(&herald.url("/readyz")).await;
    assert_eq!(ready.status, 200);
    // The broker keeps working next to them.
    let event = json!({"specversion": "1.0", "id": "x", "type": "t", "source": "/s"});
    let response = Client::new()
        .post_structured(&herald.broker_url("default", "default"), &event)
        .await;
    assert_eq!(response.status, 202);
    sub.wait_for(1, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apiserver_source_emits_changes_and_those_made_while_herald_was_down() {
    let api = FakeApiServer::start().await;
    api.apply("existing", "0");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let sub = Subscriber::start().await;
    let manifests = yaml(&[
        broker("default"),
        trigger("t", "default", &sub.url("/")),
        api_server_source("ns"),
    ]);
    let options = HeraldOptions {
        env: kube_env(&kubeconfig),
        ..Default::default()
    };
    let mut herald = Herald::start_with("embedded", &manifests, options).await;
    let watching = || {
        let api = api.clone();
        async move { (api.open_watches() > 0).then_some(()) }
    };
    eventually(Duration::from_secs(20), "the watcher to watch", watching).await;

    api.apply("created", "1");
    let got = sub.wait_for(1, Duration::from_secs(10)).await;
    let r = &got[0];
    assert_eq!(
        r.attr("type").as_deref(),
        Some("dev.knative.apiserver.ref.add")
    );
    assert_eq!(r.attr("source").as_deref(), Some(api.url.as_str()));
    assert_eq!(
        r.attr("subject").as_deref(),
        Some("/apis/v1/namespaces/ns/configmaps/created")
    );
    assert_eq!(r.attr("kind").as_deref(), Some("ConfigMap"));
    assert_eq!(
        r.json(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "created", "namespace": "ns"})
    );

    // Killed right after the add reached the subscriber, so possibly before the watcher
    // confirmed it: it journals a change before its sink call, so the object is known after the
    // restart and its delete made while Herald is down is still emitted (Knative loses it).
    herald.kill9();
    eventually(Duration::from_secs(10), "the watch to close", || {
        let api = api.clone();
        async move { (api.open_watches() == 0).then_some(()) }
    })
    .await;
    api.apply("existing", "changed");
    api.delete("created");
    herald.restart().await;
    // The trigger may redeliver what it had not acknowledged at the kill (at-least-once);
    // the ids are stable (`{uid}/{resourceVersion}` and the change), so distinct ids count.
    let distinct = || {
        let mut seen: Vec<(String, String, String)> = sub
            .requests()
            .iter()
            .map(|r| (r.id(), r.attr("type").unwrap(), r.attr("name").unwrap()))
            .collect();
        seen.sort();
        seen.dedup();
        seen
    };
    eventually(Duration::from_secs(20), "the missed changes", || {
        let n = distinct().len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    sub.settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    let mut changes: Vec<(String, String)> = distinct()
        .into_iter()
        .map(|(_, ty, name)| (ty, name))
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            ("dev.knative.apiserver.ref.add".into(), "created".into()),
            ("dev.knative.apiserver.ref.delete".into(), "created".into()),
            ("dev.knative.apiserver.ref.update".into(), "existing".into()),
        ],
        "each change once, by id"
    );
}
