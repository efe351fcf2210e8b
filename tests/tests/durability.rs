//! `kill -9` on the embedded bus: every event answered `202` is delivered after a restart.
//! Zero lost is the bar; duplicates are counted and printed (at-least-once allows them).

use std::time::Duration;

use herald_tests::load::{Accepted, assert_all_delivered, publisher};
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::free_port;
use herald_tests::{Herald, HeraldOptions, Reply, Subscriber, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_event_survives_kill_9_during_ingest_and_delivery() {
    let sub = Subscriber::start().await;
    // A slow subscriber (16 in flight, 40 ms each: ~400/s), so a backlog exists at the kill.
    sub.set_script(|_| Reply::status(200).delay(Duration::from_millis(40)));
    let options = HeraldOptions {
        args: vec!["--delivery-window".into(), "16".into()],
        ..Default::default()
    };
    let manifests = yaml(&[broker("default"), trigger("t", "default", &sub.url("/"))]);
    let mut herald = Herald::start_with("embedded", &manifests, options).await;
    let url = herald.broker_url("default", "default");
    let accepted: Accepted = Default::default();
    let (publishers, per_publisher) = (4, 500);
    let tasks: Vec<_> = (0..publishers)
        .map(|p| tokio::spawn(publisher(url.clone(), p, per_publisher, accepted.clone())))
        .collect();

    let half = publishers * per_publisher / 2;
    eventually(
        Duration::from_secs(60),
        "half of the events accepted",
        || {
            let n = accepted.lock().unwrap().len();
            async move { (n >= half).then_some(()) }
        },
    )
    .await;
    let delivered_before = sub.count();
    herald.kill9();
    eprintln!(
        "killed with {} accepted and {delivered_before} delivered",
        accepted.lock().unwrap().len()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    herald.restart().await;

    for task in tasks {
        tokio::time::timeout(Duration::from_secs(90), task)
            .await
            .expect("publishers finish")
            .expect("publisher panicked");
    }
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), publishers * per_publisher);
    assert_all_delivered(&sub, &accepted, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_accepted_while_the_subscriber_is_down_survive_kill_9() {
    let port = free_port();
    let mut t = trigger("t", "default", &format!("http://127.0.0.1:{port}/"));
    t["spec"]["delivery"] =
        json!({"retry": 1000, "backoffPolicy": "linear", "backoffDelay": "PT0.05S"});
    let mut herald = Herald::start("embedded", &yaml(&[broker("default"), t])).await;
    let url = herald.broker_url("default", "default");
    let accepted: Accepted = Default::default();
    let tasks: Vec<_> = (0..3)
        .map(|p| tokio::spawn(publisher(url.clone(), p, 200, accepted.clone())))
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("publishers finish")
            .expect("publisher panicked");
    }
    herald.kill9();

    let sub = Subscriber::start_on(port).await;
    herald.restart().await;
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 600);
    assert_all_delivered(&sub, &accepted, Duration::from_secs(30)).await;
}
