//! SIGTERM: herald stops accepting, finishes or hands back in-flight deliveries, exits 0;
//! nothing accepted is lost across the restart.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_tests::fixtures::structured;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, Recorded, Reply, Subscriber};
use serde_json::json;

async fn publish_all(herald: &Herald, ids: &[String]) {
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    for id in ids {
        let r = client.post_structured(&url, &structured(id)).await;
        assert_eq!(r.status, 202, "{id}: {}", r.text());
    }
}

fn delivered(sub: &Subscriber) -> BTreeSet<String> {
    sub.requests().iter().map(Recorded::id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_on_an_idle_herald_exits_0_promptly() {
    let mut herald = Herald::start("embedded", &yaml(&[broker("default")])).await;
    let (status, took) = herald.terminate().await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        herald.stderr()
    );
    assert!(took < Duration::from_secs(3), "took {took:?} to exit");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_deliveries_and_loses_nothing() {
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(200).delay(Duration::from_millis(300)));
    let manifests = yaml(&[broker("default"), trigger("t", "default", &sub.url("/"))]);
    let mut herald = Herald::start("embedded", &manifests).await;
    let ids: Vec<String> = (0..50).map(|i| format!("term-{i}")).collect();
    publish_all(&herald, &ids).await;
    sub.wait_for(5, Duration::from_secs(10)).await;

    let (status, took) = herald.terminate().await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        herald.stderr()
    );
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to exit with 300 ms deliveries in flight"
    );

    let before = delivered(&sub);
    sub.set_script(|_| Reply::status(200));
    herald.restart().await;
    let expected: BTreeSet<String> = ids.into_iter().collect();
    herald_tests::eventually(Duration::from_secs(15), "all events delivered", || {
        let missing: Vec<String> = expected.difference(&delivered(&sub)).cloned().collect();
        async move { missing.is_empty().then_some(()) }
    })
    .await;
    // Deliveries that were in flight at SIGTERM finished (300 ms < the grace period) and
    // were acknowledged and flushed: a graceful stop redelivers none of them.
    let requests = sub
        .settle(Duration::from_millis(300), Duration::from_secs(10))
        .await;
    let again: Vec<String> = requests
        .iter()
        .skip(before.len())
        .map(Recorded::id)
        .filter(|id| before.contains(id))
        .collect();
    assert!(
        again.is_empty(),
        "{} of {} events delivered before SIGTERM came again after the restart: {again:?}",
        again.len(),
        before.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_long_backoff_exits_promptly_and_redelivers_after_restart() {
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(503));
    let mut t = trigger("t", "default", &sub.url("/"));
    t["spec"]["delivery"] = json!({"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT30S"});
    let mut herald = Herald::start("embedded", &yaml(&[broker("default"), t])).await;
    publish_all(&herald, &["backoff-1".to_owned()]).await;
    sub.wait_for(1, Duration::from_secs(10)).await;

    let (status, took) = herald.terminate().await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        herald.stderr()
    );
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to exit while waiting a 30 s backoff"
    );

    sub.set_script(|_| Reply::status(200));
    herald.restart().await;
    let got = sub.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        got[1].id(),
        "backoff-1",
        "the handed-back event is delivered again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_sigterm_no_event_is_accepted() {
    let mut herald = Herald::start("embedded", &yaml(&[broker("default")])).await;
    let url = herald.broker_url("default", "default");
    herald.terminate().await;
    let r = Client::new()
        .try_request(
            http::Method::POST,
            &url,
            &[("content-type", "application/cloudevents+json")],
            structured("late").to_string(),
            Duration::from_secs(2),
        )
        .await;
    assert!(r.is_err(), "a stopped herald answered: {r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_concurrent_publishing_loses_no_accepted_event() {
    use herald_tests::load::{Accepted, assert_all_delivered, publisher};
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(200).delay(Duration::from_millis(20)));
    let manifests = yaml(&[broker("default"), trigger("t", "default", &sub.url("/"))]);
    let mut herald = Herald::start("embedded", &manifests).await;
    let url = herald.broker_url("default", "default");
    let accepted: Accepted = Default::default();
    let tasks: Vec<_> = (0..4)
        .map(|p| tokio::spawn(publisher(url.clone(), p, 250, accepted.clone())))
        .collect();
    herald_tests::eventually(Duration::from_secs(30), "300 events accepted", || {
        let n = accepted.lock().unwrap().len();
        async move { (n >= 300).then_some(()) }
    })
    .await;
    let (status, took) = herald.terminate().await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        herald.stderr()
    );
    assert!(took < Duration::from_secs(12), "took {took:?} to exit");
    herald.restart().await;
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("publishers finish")
            .expect("publisher panicked");
    }
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1000);
    assert_all_delivered(&sub, &accepted, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_herald_like_sigterm() {
    let mut herald = Herald::start("embedded", &yaml(&[broker("default")])).await;
    let (status, took) = herald.signal("-INT").await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        herald.stderr()
    );
    assert!(took < Duration::from_secs(3), "took {took:?} to exit");
}
