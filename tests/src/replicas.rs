//! The two-replica scenario shared by the network buses: two Herald processes on one bus share
//! a trigger, then one is killed while it holds events and nothing accepted is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::load::{Accepted, assert_all_delivered, publisher};
use crate::manifests::{broker, trigger, yaml};
use crate::{Client, Herald, HeraldOptions, Reply, Subscriber, eventually};

/// The sum of a metric's samples whose line starts with `prefix`, on one Herald.
pub async fn metric(herald: &Herald, prefix: &str) -> u64 {
    let metrics = Client::new().get(&herald.url("/metrics")).await.text();
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn publish_all(
    url: &str,
    publishers: std::ops::Range<usize>,
    count: usize,
    accepted: &Accepted,
) {
    let tasks: Vec<_> = publishers
        .map(|p| tokio::spawn(publisher(url.to_owned(), p, count, accepted.clone())))
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(90), task)
            .await
            .expect("publishers finish")
            .expect("publisher panicked");
    }
}

/// What happens to the killed replica after `kill -9`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterKill {
    /// It stays down: the other replica must take over what it held.
    StaysDown,
    /// It is restarted at once.
    Restarts,
}

/// Runs the scenario on `bus` (`nats://…`, `kafka://…`) with `options` for both replicas.
pub async fn two_replicas_share_a_trigger_and_lose_nothing(
    bus: &str,
    options: impl Fn() -> HeraldOptions,
    after_kill: AfterKill,
) {
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(200).delay(Duration::from_millis(20)));
    // Enough retries that no event exhausts them while the subscriber fails below (an
    // exhausted event would be parked, and this scenario is about events held in flight).
    let mut shared = trigger("shared", "default", &sub.url("/"));
    shared["spec"]["delivery"] = serde_json::json!({"retry": 10000, "backoffPolicy": "linear",
        "backoffDelay": "PT0.05S", "timeout": "PT5S"});
    shared["metadata"]["annotations"] =
        serde_json::json!({"herald.dev/delivery.backoffCap": "PT1S"});
    let manifests = yaml(&[broker("default"), shared]);
    let mut a = Herald::start_with(bus, &manifests, options()).await;
    let b = Herald::start_with(bus, &manifests, options()).await;

    // Both replicas take part, and without failures no event is delivered twice.
    let accepted: Accepted = Default::default();
    publish_all(&a.broker_url("default", "default"), 0..2, 150, &accepted).await;
    publish_all(&b.broker_url("default", "default"), 2..4, 150, &accepted).await;
    let first = accepted.lock().unwrap().clone();
    assert_all_delivered(&sub, &first, Duration::from_secs(30)).await;
    assert_eq!(sub.count(), first.len(), "no duplicates without a failure");
    let delivered = "herald_deliveries_total{trigger=\"default/shared\",outcome=\"delivered\"";
    let (by_a, by_b) = (metric(&a, delivered).await, metric(&b, delivered).await);
    assert!(
        by_a > 0 && by_b > 0,
        "both replicas delivered: a {by_a}, b {by_b}"
    );

    // Kill one while it holds events: the subscriber fails every attempt, so both replicas
    // hold what they took; after the kill the subscriber recovers, and every accepted event
    // must still get a successful delivery, including those the killed replica held.
    sub.set_script(|_| Reply::status(500));
    let second: Accepted = Default::default();
    publish_all(&b.broker_url("default", "default"), 10..14, 150, &second).await;
    eventually(Duration::from_secs(30), "replica a holds events", || {
        let a = &a;
        async move { (metric(a, "herald_trigger_in_flight_events").await > 0).then_some(()) }
    })
    .await;
    let held_by_a = metric(&a, "herald_trigger_in_flight_events").await;
    a.kill9();
    if after_kill == AfterKill::Restarts {
        a.restart().await;
    }
    let recovered_at = tokio::time::Instant::now();
    sub.set_script(|_| Reply::status(200));
    let second = second.lock().unwrap().clone();
    eventually(
        Duration::from_secs(90),
        "every accepted event delivered after the kill",
        || {
            let (sub, second) = (&sub, &second);
            async move {
                let ok: BTreeSet<String> = sub
                    .requests()
                    .iter()
                    .filter(|r| r.at >= recovered_at)
                    .map(|r| r.id())
                    .collect();
                second.is_subset(&ok).then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "replica a held {held_by_a} events at the kill; all {} delivered after {:?}",
        second.len(),
        recovered_at.elapsed()
    );
}
