//! Pausing a trigger: ingress keeps accepting, nothing is delivered, the position is kept
//! (across restarts); resuming delivers everything in order. By annotation and by command.

mod live_common;

use std::time::Duration;

use herald_tests::fixtures::structured;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::run_cli;
use herald_tests::{Client, Herald, HeraldOptions, Subscriber};
use live_common::{edit_manifests, wait_reloads};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "live-pause-admin-token-0123456789";

/// An ordered trigger (one lane: the events carry no partition key), paused or not.
fn held(uri: &str, paused: bool) -> Value {
    let mut t = trigger("held", "default", uri);
    t["metadata"]["annotations"] = serde_json::json!({
        "kafka.eventing.knative.dev/delivery.order": "ordered",
        "herald.dev/paused": if paused { "true" } else { "false" },
    });
    t
}

/// Publishes `{prefix}-{n}` for n in `range` in batches of 100 (in order).
async fn publish(herald: &Herald, prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let ids: Vec<String> = range.map(|n| format!("{prefix}-{n}")).collect();
    for chunk in ids.chunks(100) {
        let batch: Vec<Value> = chunk.iter().map(|id| structured(id)).collect();
        let r = Client::new()
            .post_batch(&herald.broker_url("default", "default"), &batch)
            .await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_trigger_holds_its_events_across_a_restart_and_resume_delivers_all_in_order() {
    let paused_sub = Subscriber::start().await;
    let witness = Subscriber::start().await;
    let docs = |paused| {
        yaml(&[
            broker("default"),
            held(&paused_sub.url("/"), paused),
            trigger("witness", "default", &witness.url("/")),
        ])
    };
    let options = HeraldOptions {
        args: vec!["--config-poll-interval".into(), "100ms".into()],
        ..Default::default()
    };
    let mut herald = Herald::start_with("embedded", &docs(true), options).await;
    let mut all = publish(&herald, "p", 0..1000).await;
    // The witness trigger on the same broker got everything: the paused one had its chance.
    witness.wait_for(1000, WAIT).await;
    assert_eq!(paused_sub.count(), 0, "a paused trigger delivered");
    let metrics = Client::new().get(&herald.url("/metrics")).await.text();
    assert!(
        metrics.contains(r#"herald_trigger_paused{trigger="default/held"} 1"#),
        "{metrics}"
    );

    herald.restart().await;
    all.extend(publish(&herald, "p", 1000..1001).await);
    witness.wait_for(1001, WAIT).await;
    assert_eq!(
        paused_sub.count(),
        0,
        "the pause did not survive the restart"
    );

    edit_manifests(&herald, &docs(false));
    wait_reloads(&herald, "applied", 1, WAIT).await;
    paused_sub.wait_for(all.len(), WAIT).await;
    let got: Vec<String> = paused_sub
        .settle(Duration::from_millis(300), WAIT)
        .await
        .iter()
        .map(|r| r.id())
        .collect();
    assert_eq!(got, all, "resume delivers every held event once, in order");
    let metrics = Client::new().get(&herald.url("/metrics")).await.text();
    assert!(metrics.contains(r#"herald_trigger_paused{trigger="default/held"} 0"#));
}

async fn cli(herald: &Herald, token: &std::path::Path, args: &[&str]) -> (bool, String) {
    let url = herald.url("");
    let token = token.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--url", &url, "--admin-token-file", &token]);
    let out = run_cli(&all, WAIT).await;
    (
        out.status.success(),
        format!("{}{}", out.stdout, out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_and_resume_by_command_survive_a_restart_and_keep_the_order() {
    let sub = Subscriber::start().await;
    let witness = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("token file");
    let options = HeraldOptions {
        args: vec!["--admin-token-file".into(), token.display().to_string()],
        ..Default::default()
    };
    let docs = yaml(&[
        broker("default"),
        held(&sub.url("/"), false),
        trigger("witness", "default", &witness.url("/")),
    ]);
    let mut herald = Herald::start_with("embedded", &docs, options).await;
    let mut all = publish(&herald, "c", 0..1).await;
    sub.wait_for(1, WAIT).await;

    let (ok, out) = cli(&herald, &token, &["pause", "trigger", "default/held"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("paused"), "{out}");
    all.extend(publish(&herald, "c", 1..300).await);
    witness.wait_for(300, WAIT).await;
    // A graceful restart: a kill -9 would lose the last second of acknowledgements (c-0's
    // among them) and deliver them again, as Herald promises after a crash.
    let (status, _) = herald.terminate().await;
    assert!(status.success(), "{}", herald.stderr());
    herald.start_again().await;
    all.extend(publish(&herald, "c", 300..301).await);
    witness.wait_for(301, WAIT).await;
    assert_eq!(
        sub.count(),
        1,
        "the command's pause did not hold across the restart"
    );

    let (ok, out) = cli(&herald, &token, &["pause", "trigger", "default/nope"]).await;
    assert!(
        !ok && out.contains("404"),
        "an unknown trigger is refused: {out}"
    );
    let (ok, out) = cli(&herald, &token, &["resume", "trigger", "default/held"]).await;
    assert!(ok, "{out}");
    sub.wait_for(all.len(), WAIT).await;
    let got: Vec<String> = sub
        .settle(Duration::from_millis(300), WAIT)
        .await
        .iter()
        .map(|r| r.id())
        .collect();
    assert_eq!(got, all, "resume delivers every held event once, in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_paused_by_annotation_is_not_resumed_by_command() {
    let sub = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("token file");
    let options = HeraldOptions {
        args: vec!["--admin-token-file".into(), token.display().to_string()],
        ..Default::default()
    };
    let docs = yaml(&[broker("default"), held(&sub.url("/"), true)]);
    let herald = Herald::start_with("embedded", &docs, options).await;
    let (ok, out) = cli(&herald, &token, &["resume", "trigger", "default/held"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("409") && out.contains("herald.dev/paused"),
        "{out}"
    );
}
