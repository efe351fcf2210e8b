//! A trigger's lag keeps growing while it takes nothing: paused (its backlog waits on the
//! bus) or stuck (its window full of retrying deliveries), and falls to 0 once it caught up.

use std::time::Duration;

use herald_tests::fixtures::structured;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::subscriber::Reply;
use herald_tests::{Client, Herald, HeraldOptions, Subscriber};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn paused(uri: &str, paused: bool) -> Value {
    let mut t = trigger("held", "default", uri);
    t["metadata"]["annotations"] =
        serde_json::json!({ "herald.dev/paused": if paused { "true" } else { "false" } });
    t
}

/// A gauge of `trigger` (`herald_{name}{trigger="..."}`) now, if exported.
async fn gauge(herald: &Herald, name: &str, trigger: &str) -> Option<f64> {
    let text = Client::new().get(&herald.url("/metrics")).await.text();
    let prefix = format!("herald_{name}{{trigger=\"{trigger}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().expect("gauge value"))
}

/// Waits until the gauge satisfies `ok`; returns its value then.
async fn wait_gauge(
    herald: &Herald,
    name: &str,
    trigger: &str,
    what: &str,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = gauge(herald, name, trigger).await;
        if let Some(v) = now
            && ok(v)
        {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "herald_{name}{{trigger={trigger:?}}} is {now:?}, expected {what}, after {WAIT:?}\n{}",
            herald.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publish(herald: &Herald, n: usize) {
    let batch: Vec<Value> = (0..n).map(|i| structured(&format!("e-{i}"))).collect();
    let r = Client::new()
        .post_batch(&herald.broker_url("default", "default"), &batch)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_triggers_lag_grows_with_its_backlog_and_falls_to_zero_on_resume() {
    paused_lag_grows_and_falls("embedded").await;
}

/// On NATS the backlog is the consumer's `num_pending + num_ack_pending`.
#[tokio::test(flavor = "multi_thread")]
async fn on_nats_a_paused_triggers_lag_grows_with_its_backlog_and_falls_to_zero_on_resume() {
    let nats = tokio::task::spawn_blocking(herald_buses::nats::testing::NatsServer::start)
        .await
        .unwrap();
    paused_lag_grows_and_falls(&nats.url()).await;
}

async fn paused_lag_grows_and_falls(bus: &str) {
    let sub = Subscriber::start().await;
    let docs = |p| yaml(&[broker("default"), paused(&sub.url("/"), p)]);
    let options = HeraldOptions {
        args: vec![
            "--config-poll-interval".into(),
            "100ms".into(),
            "--lag-probe-interval".into(),
            "100ms".into(),
        ],
        ..Default::default()
    };
    let herald = Herald::start_with(bus, &docs(true), options).await;
    publish(&herald, 20).await;
    let t = "default/held";
    wait_gauge(&herald, "trigger_backlog_events", t, "20", |v| v == 20.0).await;
    let first = wait_gauge(&herald, "trigger_lag_seconds", t, "> 0.5", |v| v > 0.5).await;
    wait_gauge(&herald, "trigger_lag_seconds", t, "growing", |v| {
        v > first + 0.5
    })
    .await;
    assert_eq!(sub.count(), 0, "a paused trigger delivered");

    herald.rewrite_manifests(&docs(false));
    sub.wait_for(20, WAIT).await;
    wait_gauge(&herald, "trigger_backlog_events", t, "0", |v| v == 0.0).await;
    wait_gauge(&herald, "trigger_lag_seconds", t, "0", |v| v == 0.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_triggers_lag_grows_while_its_window_is_full_of_retries() {
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(503));
    let mut t = trigger("stuck", "default", &sub.url("/"));
    t["spec"]["delivery"] = serde_json::json!({
        "retry": 1000, "backoffPolicy": "linear", "backoffDelay": "PT0.05S",
    });
    let options = HeraldOptions {
        args: vec![
            "--delivery-window".into(),
            "1".into(),
            "--lag-probe-interval".into(),
            "100ms".into(),
        ],
        ..Default::default()
    };
    let herald = Herald::start_with("embedded", &yaml(&[broker("default"), t]), options).await;
    publish(&herald, 5).await;
    sub.wait_for(2, WAIT).await;
    let name = "default/stuck";
    let first = wait_gauge(&herald, "trigger_lag_seconds", name, "> 0.5", |v| v > 0.5).await;
    wait_gauge(&herald, "trigger_lag_seconds", name, "growing", |v| {
        v > first + 0.5
    })
    .await;

    sub.set_script(|_| Reply::status(200));
    wait_gauge(&herald, "trigger_backlog_events", name, "0", |v| v == 0.0).await;
    wait_gauge(&herald, "trigger_lag_seconds", name, "0", |v| v == 0.0).await;
}
