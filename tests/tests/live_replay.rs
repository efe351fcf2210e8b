//! Start position of a new trigger (`herald.dev/startFrom`) and replay of a time window to one
//! trigger (`herald replay trigger`).

mod live_common;

use std::collections::BTreeSet;
use std::time::Duration;

use herald_tests::fixtures::structured;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::run_cli;
use herald_tests::{Client, Herald, HeraldOptions, Subscriber};
use live_common::{edit_manifests, ids_once, wait_reloads};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "live-replay-admin-token-0123456789";

async fn publish(herald: &Herald, prefix: &str, n: usize) -> BTreeSet<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let batch: Vec<Value> = ids.iter().map(|id| structured(id)).collect();
    let r = Client::new()
        .post_batch(&herald.broker_url("default", "default"), &batch)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    ids.into_iter().collect()
}

/// A time strictly between what was published before and what is published after: the
/// clock is let run past the last arrival, and past the boundary, by a margin.
async fn boundary() -> String {
    let margin = chrono::Duration::milliseconds(30);
    let start = chrono::Utc::now();
    while chrono::Utc::now() < start + margin {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at = chrono::Utc::now();
    while chrono::Utc::now() < at + margin {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn starting(name: &str, uri: &str, from: &str) -> Value {
    let mut t = trigger(name, "default", uri);
    t["metadata"]["annotations"] = serde_json::json!({ "herald.dev/startFrom": from });
    t
}

async fn settled_ids(sub: &Subscriber) -> (BTreeSet<String>, Vec<String>) {
    ids_once(&sub.settle(Duration::from_millis(500), WAIT).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_trigger_starts_at_the_earliest_event_or_at_a_time() {
    let witness = Subscriber::start().await;
    let early = Subscriber::start().await;
    let since = Subscriber::start().await;
    let first = [
        broker("default"),
        trigger("witness", "default", &witness.url("/")),
    ];
    let options = HeraldOptions {
        args: vec!["--config-poll-interval".into(), "100ms".into()],
        ..Default::default()
    };
    let herald = Herald::start_with("embedded", &yaml(&first), options).await;
    let before = publish(&herald, "a", 10).await;
    witness.wait_for(10, WAIT).await;
    let at = boundary().await;
    let after = publish(&herald, "b", 10).await;
    witness.wait_for(20, WAIT).await;

    let mut docs = first.to_vec();
    docs.push(starting("early", &early.url("/"), "earliest"));
    docs.push(starting("since", &since.url("/"), &at));
    edit_manifests(&herald, &yaml(&docs));
    wait_reloads(&herald, "applied", 1, WAIT).await;
    early.wait_for(20, WAIT).await;
    since.wait_for(10, WAIT).await;
    let all: BTreeSet<String> = before.union(&after).cloned().collect();
    assert_eq!(
        settled_ids(&early).await,
        (all, vec![]),
        "earliest: everything kept, once"
    );
    assert_eq!(
        settled_ids(&since).await,
        (after, vec![]),
        "from {at}: exactly what arrived since"
    );
}

async fn replay(herald: &Herald, token: &std::path::Path, args: &[&str]) -> String {
    let url = herald.url("");
    let token = token.display().to_string();
    let mut all = vec!["replay", "trigger", "default/target"];
    all.extend_from_slice(args);
    all.extend(["--url", &url, "--admin-token-file", &token]);
    let out = run_cli(&all, WAIT).await;
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_delivers_exactly_the_window_to_one_trigger_marked_and_filtered() {
    let target = Subscriber::start().await;
    let bystander = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("token file");
    let options = HeraldOptions {
        args: vec!["--admin-token-file".into(), token.display().to_string()],
        ..Default::default()
    };
    let docs = [
        broker("default"),
        trigger("target", "default", &target.url("/")),
        trigger("bystander", "default", &bystander.url("/")),
    ];
    let herald = Herald::start_with("embedded", &yaml(&docs), options).await;
    publish(&herald, "before", 10).await;
    let from = boundary().await;
    let window = publish(&herald, "in", 10).await;
    let to = boundary().await;
    publish(&herald, "after", 10).await;
    target.wait_for(30, WAIT).await;
    bystander.wait_for(30, WAIT).await;

    let out = replay(&herald, &token, &["--from", &from, "--to", &to]).await;
    assert!(out.contains("10 of"), "{out}");
    target.wait_for(40, WAIT).await;
    let requests = target.settle(Duration::from_millis(500), WAIT).await;
    let replayed: Vec<_> = requests[30..].to_vec();
    let ids: BTreeSet<String> = replayed.iter().map(|r| r.id()).collect();
    assert_eq!(ids, window, "exactly the window, each once");
    let marks: BTreeSet<Option<String>> = replayed.iter().map(|r| r.attr("heraldreplay")).collect();
    assert_eq!(
        marks.len(),
        1,
        "one replay id on every replayed event: {marks:?}"
    );
    assert!(
        marks.iter().all(Option::is_some),
        "replayed events are marked"
    );
    assert!(
        requests[..30]
            .iter()
            .all(|r| r.attr("heraldreplay").is_none())
    );

    let out = replay(
        &herald,
        &token,
        &["--from", &from, "--to", &to, "--filter", "id = 'in-3'"],
    )
    .await;
    assert!(out.contains("1 of"), "{out}");
    target.wait_for(41, WAIT).await;
    let requests = target.settle(Duration::from_millis(500), WAIT).await;
    assert_eq!(requests.len(), 41);
    assert_eq!(requests[40].id(), "in-3");
    // The other trigger of the broker got nothing again.
    assert_eq!(
        bystander
            .settle(Duration::from_millis(300), WAIT)
            .await
            .len(),
        30
    );
}
