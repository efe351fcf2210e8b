//! `kill -9` on the embedded bus: every event answered `202` is delivered after a restart.
//! Zero lost is the bar; duplicates are counted and printed (at-least-once allows them).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_tests::fixtures::{binary_body, binary_headers, borrow};
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::free_port;
use herald_tests::{Client, Herald, HeraldOptions, Recorded, Reply, Subscriber, eventually};
use serde_json::json;

/// Ids that got a `202`.
type Accepted = Arc<Mutex<BTreeSet<String>>>;

/// Publishes `p{publisher}-{n}` for n in 0..count, one at a time. A failed publish (herald
/// down, or not 202) is retried until `deadline`, so a kill in the middle only delays it.
async fn publisher(url: String, publisher: usize, count: usize, accepted: Accepted) {
    let client = Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for n in 0..count {
        let id = format!("p{publisher}-{n}");
        let headers = binary_headers(&id);
        loop {
            let r = client
                .try_request(
                    http::Method::POST,
                    &url,
                    &borrow(&headers),
                    binary_body(&id),
                    Duration::from_secs(5),
                )
                .await;
            if r.is_ok_and(|r| r.status == 202) {
                accepted.lock().unwrap().insert(id);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "publisher {publisher} could not publish {id} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until every accepted id was delivered; reports lost ids and duplicates.
async fn assert_all_delivered(sub: &Subscriber, accepted: &BTreeSet<String>, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let delivered: BTreeSet<String> = sub.requests().iter().map(Recorded::id).collect();
        let lost: Vec<&String> = accepted.difference(&delivered).collect();
        if lost.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{} of {} accepted events never delivered within {timeout:?}, e.g. {:?}",
                lost.len(),
                accepted.len(),
                &lost[..lost.len().min(20)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = sub
        .settle(Duration::from_millis(300), Duration::from_secs(10))
        .await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &requests {
        *counts.entry(r.id()).or_default() += 1;
    }
    let duplicates: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let unknown = counts.keys().filter(|id| !accepted.contains(*id)).count();
    eprintln!(
        "accepted {}, delivered {} distinct in {} requests, {} duplicated ids {:?}, {} delivered without a 202",
        accepted.len(),
        counts.len(),
        requests.len(),
        duplicates.len(),
        &duplicates[..duplicates.len().min(20)],
        unknown
    );
}

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
    let accepted: Accepted = Arc::default();
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
    let accepted: Accepted = Arc::default();
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
