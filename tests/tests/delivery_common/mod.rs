//! Helpers shared by the hostile delivery tests (`hostile_delivery*.rs`).
#![allow(dead_code)] // each test file uses its own part

use std::time::Duration;

use herald_tests::fixtures::structured_with;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::run_cli;
use herald_tests::replicas::metric;
use herald_tests::{Client, Herald, HeraldOptions, Reply, Subscriber, eventually};
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(20);
pub const CLI: Duration = Duration::from_secs(60);

pub async fn publish(herald: &Herald, id: &str, ty: &str) {
    let r = Client::new()
        .post_structured(
            &herald.broker_url("default", "default"),
            &structured_with(id, ty, &json!({})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

/// Trigger `default/{name}` with no retries (a poison event is parked at once).
pub fn no_retry_trigger(name: &str, uri: &str) -> Value {
    let mut t = trigger(name, "default", uri);
    t["spec"]["delivery"] = json!({"retry": 0, "timeout": "PT5S"});
    t
}

/// 400 for events whose id starts with `poison`, 200 for the others.
pub fn refuse_poison(sub: &Subscriber) {
    sub.set_script(|r| {
        if r.attr("id").is_some_and(|id| id.starts_with("poison")) {
            Reply::status(400).body("no")
        } else {
            Reply::status(200)
        }
    });
}

pub async fn wait_metric(herald: &Herald, prefix: &str, at_least: u64) {
    eventually(WAIT, prefix, || async {
        (metric(herald, prefix).await >= at_least).then_some(())
    })
    .await;
}

/// Broker `default`, trigger `t1` (refuses poison) and trigger `t2` (takes everything).
pub async fn two_triggers(options: HeraldOptions) -> (Herald, Subscriber, Subscriber) {
    let (sub1, sub2) = (Subscriber::start().await, Subscriber::start().await);
    refuse_poison(&sub1);
    let manifests = yaml(&[
        broker("default"),
        no_retry_trigger("t1", &sub1.url("/")),
        no_retry_trigger("t2", &sub2.url("/")),
    ]);
    let herald = Herald::start_with("embedded", &manifests, options).await;
    (herald, sub1, sub2)
}

pub fn ids_of(sub: &Subscriber, id: &str) -> usize {
    sub.requests().iter().filter(|r| r.id() == id).count()
}

pub async fn parked_cli(herald: &Herald, args: &[&str]) -> String {
    let data_dir = herald.data_dir().to_string_lossy().into_owned();
    let mut all = vec!["parked"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--trigger",
        "default/t1",
        "--data-dir",
        &data_dir,
        "--wait-ms",
        "300",
    ]);
    let out = run_cli(&all, CLI).await;
    assert!(out.status.success(), "herald {all:?}: {}", out.stderr);
    out.stdout
}
