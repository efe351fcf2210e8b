//! Destinations that are Herald's own brokers (`ref: {kind: Broker}`), and the bounded
//! in-flight window of unordered delivery.

use std::time::Duration;

use herald_tests::fixtures::structured;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, HeraldOptions, Reply, Subscriber};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn broker_ref(name: &str) -> serde_json::Value {
    json!({"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": name}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_can_forward_to_another_broker() {
    let sub = Subscriber::start().await;
    let mut forward = trigger("forward", "default", "http://unused.invalid/");
    forward["spec"]["subscriber"] = broker_ref("second");
    let deliver = trigger("deliver", "second", &sub.url("/second"));
    let docs = [broker("default"), broker("second"), forward, deliver];
    let herald = Herald::start("embedded", &yaml(&docs)).await;
    let r = Client::new()
        .post_structured(
            &herald.broker_url("default", "default"),
            &structured("fwd-1"),
        )
        .await;
    assert_eq!(r.status, 202);
    let got = sub.wait_for(1, WAIT).await;
    assert_eq!(got[0].id(), "fwd-1");
    assert_eq!(got[0].path, "/second");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_sink_can_be_a_broker() {
    let sub = Subscriber::start().await;
    let dlq = Subscriber::start().await;
    sub.set_script(|_| Reply::status(422).body("nope"));
    let mut t = trigger("t", "default", &sub.url("/"));
    t["spec"]["delivery"]["deadLetterSink"] = broker_ref("dlq");
    let drain = trigger("drain", "dlq", &dlq.url("/dlq"));
    let docs = [broker("default"), broker("dlq"), t, drain];
    let herald = Herald::start("embedded", &yaml(&docs)).await;
    let r = Client::new()
        .post_structured(
            &herald.broker_url("default", "default"),
            &structured("dl-1"),
        )
        .await;
    assert_eq!(r.status, 202);
    let got = dlq.wait_for(1, WAIT).await;
    assert_eq!(got[0].id(), "dl-1");
    assert_eq!(got[0].attr("knativeerrorcode").as_deref(), Some("422"));
    assert_eq!(got[0].attr("knativeerrordata").as_deref(), Some("bm9wZQ=="));
}

#[tokio::test(flavor = "multi_thread")]
async fn unordered_delivery_keeps_at_most_the_window_in_flight() {
    let sub = Subscriber::start().await;
    let answer = Duration::from_millis(200);
    sub.set_script(move |_| Reply::status(200).delay(answer));
    let options = HeraldOptions {
        args: vec!["--delivery-window".into(), "4".into()],
        ..Default::default()
    };
    let manifests = yaml(&[broker("default"), trigger("t", "default", &sub.url("/"))]);
    let herald = Herald::start_with("embedded", &manifests, options).await;
    let batch: Vec<_> = (0..16).map(|i| structured(&format!("w-{i}"))).collect();
    let r = Client::new()
        .post_batch(&herald.broker_url("default", "default"), &batch)
        .await;
    assert_eq!(r.status, 202);
    let got = sub.wait_for(16, WAIT).await;
    // In flight when request i arrived: those that arrived less than `answer` before it.
    let most = got
        .iter()
        .map(|r| {
            got.iter()
                .filter(|o| o.at <= r.at && r.at < o.at + answer)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        (2..=4).contains(&most),
        "{most} deliveries in flight at once with --delivery-window 4"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loop_between_brokers_is_stopped_by_the_ttl() {
    // a -> b -> a -> ... through broker-ref subscribers: each forward is a hop
    // (the README's delivery contract: knativebrokerttl is decremented per hop, dropped at 0).
    let watch = Subscriber::start().await;
    let mut ab = trigger("a-to-b", "a", "http://unused.invalid/");
    ab["spec"]["subscriber"] = broker_ref("b");
    let mut ba = trigger("b-to-a", "b", "http://unused.invalid/");
    ba["spec"]["subscriber"] = broker_ref("a");
    let seen = trigger("watch", "a", &watch.url("/a"));
    let docs = [broker("a"), broker("b"), ab, ba, seen];
    let herald = Herald::start("embedded", &yaml(&docs)).await;
    let mut event = structured("looping");
    event["knativebrokerttl"] = json!(4);
    let r = Client::new()
        .post_structured(&herald.broker_url("default", "a"), &event)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    watch.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = watch.count();
    assert!(
        seen <= 4,
        "the event went around the broker loop {seen} times in 2 s with knativebrokerttl 4"
    );
}
