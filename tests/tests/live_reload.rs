//! Hot reload of the `-f` file: edits applied while events flow, invalid edits refused,
//! `SIGHUP`, triggers and brokers added and removed live.

mod live_common;

use std::collections::BTreeSet;
use std::time::Duration;

use herald_tests::fixtures::structured;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, HeraldOptions, Subscriber};
use live_common::{edit_manifests, hangup, ids_once, publish_paced, reloads, wait_reloads};

/// `text` without ANSI colour sequences (herald colours field names in its log).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

const WAIT: Duration = Duration::from_secs(20);
/// 500 events a second.
const PACE: Duration = Duration::from_millis(2);

fn polling(interval: &str) -> HeraldOptions {
    HeraldOptions {
        args: vec!["--config-poll-interval".into(), interval.into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_under_load_switches_the_changed_trigger_and_leaves_the_other_untouched() {
    edit_under_load("embedded").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_under_load_on_nats_loses_and_doubles_nothing() {
    let nats = tokio::task::spawn_blocking(herald_buses::nats::testing::NatsServer::start)
        .await
        .unwrap();
    edit_under_load(&nats.url()).await;
}

/// 2,000 events at 500/s to two triggers; the file is edited after 700 to change one of them.
async fn edit_under_load(bus: &str) {
    let steady = Subscriber::start().await;
    let old = Subscriber::start().await;
    let new = Subscriber::start().await;
    let before = [
        broker("default"),
        trigger("steady", "default", &steady.url("/")),
        trigger("moving", "default", &old.url("/")),
    ];
    let herald = Herald::start_with(bus, &yaml(&before), polling("100ms")).await;
    let url = herald.broker_url("default", "default");
    let mut published = publish_paced(&url, "e", 0..700, PACE).await;
    let after = [
        broker("default"),
        trigger("steady", "default", &steady.url("/")),
        trigger("moving", "default", &new.url("/")),
    ];
    edit_manifests(&herald, &yaml(&after));
    // The reload happens while these flow.
    published.extend(publish_paced(&url, "e", 700..1500, PACE).await);
    wait_reloads(&herald, "applied", 1, WAIT).await;
    let late = publish_paced(&url, "e", 1500..2000, PACE).await;
    published.extend(late.iter().cloned());
    let all: BTreeSet<String> = published.into_iter().collect();

    // The unchanged trigger: every event exactly once.
    steady.wait_for(all.len(), WAIT).await;
    let (got, twice) = ids_once(&steady.settle(Duration::from_millis(300), WAIT).await);
    assert_eq!(got, all, "the unchanged trigger lost events");
    assert!(
        twice.is_empty(),
        "the unchanged trigger got duplicates: {twice:?}"
    );

    // The changed trigger: old subscriber then new, nothing lost, nothing twice. On NATS an
    // event the server was still sending to the old subscription's pull when it closed comes
    // back after AckWait (30 s): later, not lost.
    let handover = if bus.starts_with("nats://") {
        Duration::from_secs(60)
    } else {
        WAIT
    };
    let deadline = tokio::time::Instant::now() + handover;
    while old.count() + new.count() < all.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the changed trigger delivered {} + {} of {}",
            old.count(),
            new.count(),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut both = old.settle(Duration::from_millis(300), handover).await;
    both.extend(new.settle(Duration::from_millis(300), WAIT).await);
    let (got, twice) = ids_once(&both);
    assert_eq!(got, all, "the changed trigger lost events");
    assert!(
        twice.is_empty(),
        "the changed trigger delivered twice: {twice:?}"
    );
    let (at_new, _) = ids_once(&new.requests());
    let (at_old, _) = ids_once(&old.requests());
    assert!(
        late.iter()
            .all(|id| at_new.contains(id) && !at_old.contains(id)),
        "events published after the reload must go to the new subscriber only"
    );
    assert!(
        at_old.contains("e-0"),
        "the old subscriber had the first events"
    );
    assert_eq!(reloads(&herald, "invalid").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_edit_is_refused_whole_logged_and_counted_and_the_old_configuration_runs() {
    let sub = Subscriber::start().await;
    let other = Subscriber::start().await;
    let good = [broker("default"), trigger("t", "default", &sub.url("/"))];
    let herald = Herald::start_with("embedded", &yaml(&good), polling("100ms")).await;
    // Valid first document, and a new trigger with one bad field: nothing of it applies.
    let mut bad = trigger("t2", "default", &other.url("/"));
    bad["spec"]["delivery"]["backoffDelay"] = "soon".into();
    let redirected = trigger("t", "default", &other.url("/"));
    edit_manifests(&herald, &yaml(&[broker("default"), redirected, bad]));
    wait_reloads(&herald, "invalid", 1, WAIT).await;

    let r = Client::new()
        .post_structured(
            &herald.broker_url("default", "default"),
            &structured("still-old"),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(sub.wait_for(1, WAIT).await[0].id(), "still-old");
    let log = plain(&herald.stderr());
    let line = log
        .lines()
        .find(|l| l.contains("configuration change refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    let file = herald.manifest_path().display().to_string();
    assert!(line.contains(&file), "the file is named: {line}");
    assert!(line.contains("document=3"), "the document is named: {line}");
    assert!(
        line.contains("spec.delivery.backoffDelay"),
        "the field is named: {line}"
    );
    // Polling does not count the same refused content again; a later valid edit applies.
    assert_eq!(reloads(&herald, "applied").await, 0);
    let fixed = [broker("default"), trigger("t", "default", &other.url("/"))];
    edit_manifests(&herald, &yaml(&fixed));
    wait_reloads(&herald, "applied", 1, WAIT).await;
    assert_eq!(reloads(&herald, "invalid").await, 1);
    let r = Client::new()
        .post_structured(&herald.broker_url("default", "default"), &structured("new"))
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(other.wait_for(1, WAIT).await[0].id(), "new");
    assert_eq!(sub.count(), 1, "the old subscriber no longer receives");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_when_polling_is_off() {
    let sub = Subscriber::start().await;
    let herald = Herald::start_with("embedded", &yaml(&[broker("default")]), polling("0s")).await;
    edit_manifests(
        &herald,
        &yaml(&[broker("default"), trigger("t", "default", &sub.url("/"))]),
    );
    hangup(&herald);
    wait_reloads(&herald, "applied", 1, WAIT).await;
    let r = Client::new()
        .post_structured(&herald.broker_url("default", "default"), &structured("hup"))
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(sub.wait_for(1, WAIT).await[0].id(), "hup");
}

#[tokio::test(flavor = "multi_thread")]
async fn triggers_and_brokers_are_added_and_removed_live() {
    let first = Subscriber::start().await;
    let second = Subscriber::start().await;
    let one = [broker("default"), trigger("a", "default", &first.url("/"))];
    let herald = Herald::start_with("embedded", &yaml(&one), polling("100ms")).await;
    let client = Client::new();
    let extra_url = herald.broker_url("default", "extra");
    assert_eq!(
        client
            .post_structured(&extra_url, &structured("x0"))
            .await
            .status,
        404
    );

    // Add a broker and a trigger on it.
    let two = [
        broker("default"),
        broker("extra"),
        trigger("a", "default", &first.url("/")),
        trigger("b", "extra", &second.url("/")),
    ];
    edit_manifests(&herald, &yaml(&two));
    wait_reloads(&herald, "applied", 1, WAIT).await;
    assert_eq!(
        client
            .post_structured(&extra_url, &structured("x1"))
            .await
            .status,
        202
    );
    assert_eq!(second.wait_for(1, WAIT).await[0].id(), "x1");

    // Remove trigger a: events on default no longer reach it; removing the broker: 404.
    edit_manifests(&herald, &yaml(&[broker("default")]));
    wait_reloads(&herald, "applied", 2, WAIT).await;
    assert_eq!(
        client
            .post_structured(&extra_url, &structured("x2"))
            .await
            .status,
        404
    );
    let default_url = herald.broker_url("default", "default");
    assert_eq!(
        client
            .post_structured(&default_url, &structured("d1"))
            .await
            .status,
        202
    );
    // Re-adding `a` starts a new group at the end: d1 (published while it was removed) is
    // not delivered, d2 is.
    edit_manifests(&herald, &yaml(&one));
    wait_reloads(&herald, "applied", 3, WAIT).await;
    assert_eq!(
        client
            .post_structured(&default_url, &structured("d2"))
            .await
            .status,
        202
    );
    let got = first.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].id(),
        "d2",
        "the removed trigger's cursor was forgotten"
    );
    let log = herald.stderr();
    assert!(
        log.contains("forgot the cursor of a removed trigger"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_added_live_is_served_and_removed_live_is_gone() {
    let secrets = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(secrets.path().join("gh-secret")).unwrap();
    std::fs::write(secrets.path().join("gh-secret/token"), "s3cret\n").unwrap();
    let mut options = polling("100ms");
    options
        .args
        .extend(["--secrets-dir".into(), secrets.path().display().to_string()]);
    let herald = Herald::start_with("embedded", &yaml(&[broker("default")]), options).await;
    let hook = herald.url("/sources/default/repo");
    let post = || async {
        Client::new()
            .post(&hook, &[("content-type", "application/json")], "{}")
            .await
            .status
    };
    assert_eq!(post().await, 404);
    let source = serde_json::json!({
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "GitHubSource",
        "metadata": { "name": "repo", "namespace": "default" },
        "spec": {
            "ownerAndRepository": "octo-org/hello-world",
            "secretToken": { "secretKeyRef": { "name": "gh-secret", "key": "token" } },
            "sink": { "ref": { "apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default" } }
        }
    });
    edit_manifests(&herald, &yaml(&[broker("default"), source]));
    wait_reloads(&herald, "applied", 1, WAIT).await;
    let unsigned = post().await;
    assert!(
        unsigned != 404 && (400..500).contains(&unsigned),
        "the new source answers (an unsigned delivery is refused), not 404: {unsigned}"
    );
    edit_manifests(&herald, &yaml(&[broker("default")]));
    wait_reloads(&herald, "applied", 2, WAIT).await;
    assert_eq!(post().await, 404, "the removed source is gone");
}
