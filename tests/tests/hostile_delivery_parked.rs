//! `herald parked list|show|redrive|purge` (issue 9): on a stopped Herald, on a running one
//! through the token-protected admin endpoints, and on NATS with the bus opened directly; a
//! redrive reaches its trigger only.

mod delivery_common;

use std::time::Duration;

use delivery_common::*;
use herald_tests::manifests::{broker, yaml};
use herald_tests::process::run_cli;
use herald_tests::{Client, Herald, HeraldOptions, Reply, Subscriber, eventually};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn herald_parked_on_a_stopped_herald_lists_shows_redrives_to_one_trigger_and_purges() {
    let (mut herald, sub1, sub2) = two_triggers(HeraldOptions::default()).await;
    publish(&herald, "poison-a", "t").await;
    publish(&herald, "poison-b", "t").await;
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/t1\"}",
        2,
    )
    .await;
    sub2.wait_for(2, WAIT).await;
    let (status, _) = herald.terminate().await;
    assert!(status.success());

    let listed = parked_cli(&herald, &["list", "--limit", "10"]).await;
    let events: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{listed}");
    assert_eq!(events[0]["id"], "poison-a");
    assert_eq!(events[0]["knativeerrorcode"], "400");
    assert!(
        events[0]["knativeerrordest"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1")
    );
    let limited = parked_cli(&herald, &["list", "--limit", "1"]).await;
    assert_eq!(limited.lines().count(), 1);
    let shown = parked_cli(&herald, &["show", "--id", "poison-b"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&shown).unwrap()["id"],
        "poison-b"
    );

    // Redrive poison-a (the subscriber now takes it), purge poison-b.
    sub1.set_script(|_| Reply::status(200));
    assert_eq!(
        parked_cli(&herald, &["redrive", "--id", "poison-a"])
            .await
            .trim(),
        "poison-a"
    );
    assert_eq!(
        parked_cli(&herald, &["purge", "--id", "poison-b"])
            .await
            .trim(),
        "poison-b"
    );
    assert_eq!(parked_cli(&herald, &["list"]).await, "", "the lot is empty");

    let before = ids_of(&sub1, "poison-a");
    herald.restart().await;
    eventually(WAIT, "the redriven event", || async {
        (ids_of(&sub1, "poison-a") > before).then_some(())
    })
    .await;
    sub1.settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    assert_eq!(
        ids_of(&sub1, "poison-b"),
        1,
        "the purged event never came back"
    );
    assert_eq!(
        ids_of(&sub2, "poison-a"),
        1,
        "redrive reached trigger t1 only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn herald_parked_on_a_running_herald_goes_through_the_token_protected_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-admin-token-for-tests\n").unwrap();
    let token_arg = token_file.to_string_lossy().into_owned();
    let options = HeraldOptions {
        args: vec!["--admin-token-file".into(), token_arg.clone()],
        ..HeraldOptions::default()
    };
    let (herald, sub1, sub2) = two_triggers(options).await;
    publish(&herald, "poison-r", "t").await;
    publish(&herald, "poison-p", "t").await;
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/t1\"}",
        2,
    )
    .await;

    let client = Client::new();
    let unauthenticated = client
        .get(&herald.url("/admin/triggers/default/t1/parked"))
        .await;
    assert_eq!(unauthenticated.status, 401);
    let url = herald.url("");
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = vec!["parked".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(
            [
                "--trigger",
                "default/t1",
                "--url",
                &url,
                "--admin-token-file",
                &token_arg,
            ]
            .map(String::from),
        );
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let out = run_cli(&refs, CLI).await;
            assert!(out.status.success(), "herald {all:?}: {}", out.stderr);
            out.stdout
        }
    };
    let listed = cli(&["list"]).await;
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("poison-r") && listed.contains("poison-p"));
    let shown = cli(&["show", "--id", "poison-p"]).await;
    assert!(shown.contains("\"knativeerrorcode\": \"400\""), "{shown}");

    sub1.set_script(|_| Reply::status(200));
    assert_eq!(
        cli(&["redrive", "--id", "poison-r"]).await.trim(),
        "poison-r"
    );
    eventually(WAIT, "the redriven event", || async {
        (ids_of(&sub1, "poison-r") == 2).then_some(())
    })
    .await;
    assert_eq!(cli(&["purge", "--all"]).await.trim(), "poison-p");
    assert_eq!(cli(&["list"]).await, "");
    sub1.settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    assert_eq!(
        ids_of(&sub2, "poison-r"),
        1,
        "redrive reached trigger t1 only"
    );
    assert_eq!(ids_of(&sub1, "poison-p"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_nats_parked_events_are_kept_listed_and_redriven_with_the_bus_opened_directly() {
    let nats = tokio::task::spawn_blocking(herald_buses::nats::testing::NatsServer::start)
        .await
        .unwrap();
    parked_events_are_listed_and_redriven_through_the_bus(&nats.url(), &[], 500).await;
}

/// A Kafka group that never committed starts at the end of its topic: the parking lot's
/// reader group is joined (and its start committed) when the trigger subscribes, so what is
/// parked later is listed and redriven by a CLI that joins the same group afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn on_kafka_parked_events_are_kept_listed_and_redriven_with_the_bus_opened_directly() {
    let tansu = tokio::task::spawn_blocking(herald_buses::kafka::testing::Tansu::start)
        .await
        .unwrap();
    // One record per batch: tansu 0.6 cannot fetch from inside a batch (see the Kafka bus
    // docs); a short session so a CLI's group membership settles fast.
    let options = "consumer.session.timeout.ms=6000,consumer.heartbeat.interval.ms=1000,\
                   producer.batch.num.messages=1";
    let bus = format!("kafka://{}", tansu.brokers());
    parked_events_are_listed_and_redriven_through_the_bus(&bus, &[options], 5000).await;
}

/// Parks one event of trigger t1 (t2 takes it), then lists, redrives and lists again with
/// `herald parked --bus BUS`, the bus opened by the CLI while Herald runs.
async fn parked_events_are_listed_and_redriven_through_the_bus(
    bus: &str,
    kafka_options: &[&str],
    wait_ms: u64,
) {
    let (sub1, sub2) = (Subscriber::start().await, Subscriber::start().await);
    refuse_poison(&sub1);
    let manifests = yaml(&[
        broker("default"),
        no_retry_trigger("t1", &sub1.url("/")),
        no_retry_trigger("t2", &sub2.url("/")),
    ]);
    let options = HeraldOptions {
        env: kafka_options
            .iter()
            .map(|o| ("HERALD_KAFKA_OPTIONS".to_owned(), (*o).to_owned()))
            .collect(),
        ..Default::default()
    };
    let herald = Herald::start_with(bus, &manifests, options).await;
    publish(&herald, "poison-n", "t").await;
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/t1\"}",
        1,
    )
    .await;
    let wait_ms = wait_ms.to_string();
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = vec!["parked".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(
            [
                "--trigger",
                "default/t1",
                "--bus",
                bus,
                "--wait-ms",
                &wait_ms,
            ]
            .map(String::from),
        );
        for option in kafka_options {
            all.extend(["--kafka-option".to_owned(), (*option).to_owned()]);
        }
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let out = run_cli(&refs, CLI).await;
            assert!(out.status.success(), "herald {all:?}: {}", out.stderr);
            out.stdout
        }
    };
    let listed = cli(&["list"]).await;
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("poison-n") && listed.contains("knativeerrorcode"));
    let parse = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert_eq!(
        parse(&cli(&["list"]).await),
        parse(&listed),
        "listing acknowledges nothing"
    );
    sub1.set_script(|_| Reply::status(200));
    assert_eq!(cli(&["redrive", "--all"]).await.trim(), "poison-n");
    eventually(WAIT, "the redriven event", || async {
        (ids_of(&sub1, "poison-n") == 2).then_some(())
    })
    .await;
    assert_eq!(cli(&["list"]).await, "");
    assert_eq!(
        ids_of(&sub2, "poison-n"),
        1,
        "redrive reached trigger t1 only"
    );
}
