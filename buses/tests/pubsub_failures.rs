//! The Pub/Sub bus when things go wrong or get shared: the emulator frozen (`SIGSTOP`) during
//! publishing and delivery, the emulator killed and started again (it keeps nothing: the bus
//! recreates its topic and subscription), replicas sharing a group, a held delivery kept alive
//! past the ack deadline, and ordering keys on an ordered subscription. Each test runs its own
//! emulator.

#![cfg(feature = "pubsub")]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use herald_buses::contract::fixtures;
use herald_buses::pubsub::testing::PubsubEmulator;
use herald_buses::pubsub::{Endpoint, PubsubBus, PubsubConfig};
use herald_buses::{Bus, BusError, Delivery, Subscription};
use tokio::time::{Instant, timeout};

const TOPIC: &str = "knative-broker-default-failures";
const GROUP: &str = "knative-trigger-default-failures";
const WAIT: Duration = Duration::from_secs(30);

fn config(emulator: &PubsubEmulator) -> PubsubConfig {
    let mut config = PubsubConfig::new(
        "herald-test",
        Endpoint::Emulator {
            host: emulator.host(),
        },
    );
    config.publish_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(2);
    config.ack_deadline = Duration::from_secs(10);
    config
}

async fn connect(emulator: &PubsubEmulator) -> Arc<PubsubBus> {
    Arc::new(PubsubBus::connect(config(emulator)).await.unwrap())
}

fn id(d: &Delivery) -> u32 {
    d.event.id().parse().unwrap()
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    timeout(WAIT, sub.next())
        .await
        .expect("a delivery within 30 s")
        .expect("subscription stays healthy")
}

/// Reads until every id in `want` was delivered (acking each), resubscribing when the
/// subscription ends for good, as the broker's dispatcher does.
async fn read_all(bus: &PubsubBus, sub: &mut Box<dyn Subscription>, want: &HashSet<u32>) {
    let deadline = Instant::now() + WAIT;
    let mut seen = HashSet::new();
    while !want.is_subset(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let missing: Vec<_> = want.difference(&seen).take(10).collect();
        match timeout(left, sub.next()).await {
            Ok(Ok(d)) => {
                seen.insert(id(&d));
                d.ack();
            }
            Ok(Err(BusError::Closed { .. })) => {
                *sub = bus.subscribe(TOPIC, GROUP).await.unwrap();
            }
            Ok(Err(e)) => {
                assert!(e.is_retryable(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => panic!(
                "missing {} events, e.g. {missing:?}",
                want.len() - seen.len()
            ),
        }
    }
}

/// Runs a blocking harness step (start, restart) off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_emulator_fails_publishes_retryably_and_delivery_resumes_after_it_thaws() {
    let emulator = blocking(PubsubEmulator::start).await;
    let bus = connect(&emulator).await;
    let mut sub = bus.subscribe(TOPIC, GROUP).await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(1)]).await.unwrap();
    assert_eq!(id(&next(&mut sub).await), 1);

    emulator.pause();
    let started = Instant::now();
    let e = bus
        .publish(TOPIC, &[fixtures::event(2)])
        .await
        .expect_err("no acknowledgement from a frozen emulator");
    assert!(matches!(e, BusError::Unavailable { .. }), "{e}");
    assert!(
        e.is_retryable(),
        "the ingress answers 503 and the sender retries"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited the publish timeout"
    );
    // Readiness reports it (a probe every 5 s); pulls just wait.
    let deadline = Instant::now() + WAIT;
    while bus.unready_reason().is_none() {
        assert!(
            Instant::now() < deadline,
            "the frozen emulator never made the bus unready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emulator.resume();
    let deadline = Instant::now() + WAIT;
    while let Some(reason) = bus.unready_reason() {
        assert!(
            Instant::now() < deadline,
            "still unready after the thaw: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let batch: Vec<_> = (3..23).map(fixtures::event).collect();
    bus.publish(TOPIC, &batch).await.unwrap();
    read_all(&bus, &mut sub, &(3..23).collect()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_emulator_restart_the_same_bus_recreates_what_it_needs_and_delivers() {
    let emulator = blocking(PubsubEmulator::start).await;
    let bus = connect(&emulator).await;
    let mut sub = bus.subscribe(TOPIC, GROUP).await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(1)]).await.unwrap();
    next(&mut sub).await.ack();

    // The emulator keeps everything in memory: after a restart topic and subscription are gone.
    let emulator = blocking(move || {
        let mut emulator = emulator;
        emulator.restart();
        emulator
    })
    .await;
    // The first publish learns that the topic is gone (retryable); the next recreates it.
    let deadline = Instant::now() + WAIT;
    let sub_error = loop {
        match timeout(Duration::from_secs(5), sub.next()).await {
            Ok(Err(e)) => break Some(e),
            Ok(Ok(d)) => panic!("nothing to deliver from an empty emulator: {d:?}"),
            Err(_) => assert!(
                Instant::now() < deadline,
                "no error from a vanished subscription"
            ),
        }
    };
    assert!(
        matches!(sub_error, Some(BusError::Closed { .. })),
        "a deleted subscription ends the subscription: {sub_error:?}"
    );
    let mut sub = bus.subscribe(TOPIC, GROUP).await.unwrap();
    let mut published = HashSet::new();
    for n in 2..12 {
        for _ in 0..3 {
            if bus.publish(TOPIC, &[fixtures::event(n)]).await.is_ok() {
                published.insert(n);
                break;
            }
        }
    }
    assert_eq!(published.len(), 10, "every publish succeeds within a retry");
    read_all(&bus, &mut sub, &published).await;
    drop(emulator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_a_group_and_a_dropped_replica_hands_its_events_to_the_other() {
    let emulator = blocking(PubsubEmulator::start).await;
    let (a, b) = (connect(&emulator).await, connect(&emulator).await);
    let mut sub_a = a.subscribe(TOPIC, GROUP).await.unwrap();
    let mut sub_b = b.subscribe(TOPIC, GROUP).await.unwrap();
    let batch: Vec<_> = (0..40).map(fixtures::event).collect();
    a.publish(TOPIC, &batch).await.unwrap();
    // Replica A takes some events and goes away without acknowledging them.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(next(&mut sub_a).await);
    }
    drop(held);
    drop(sub_a);
    drop(a);
    read_all(&b, &mut sub_b, &(0..40).collect()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_delivery_outlives_the_ack_deadline_and_comes_back_once_dropped() {
    let emulator = blocking(PubsubEmulator::start).await;
    let bus = connect(&emulator).await;
    let mut holder = bus.subscribe(TOPIC, GROUP).await.unwrap();
    let mut other = bus.subscribe(TOPIC, GROUP).await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(7)]).await.unwrap();
    let held = next(&mut holder).await;
    // Past the 10 s deadline (extended every third of it) the other consumer of the group
    // has not received it: a sentinel published now reaches it first.
    let until = Instant::now() + Duration::from_secs(13);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bus.publish(TOPIC, &[fixtures::event(8)]).await.unwrap();
    let d = next(&mut other).await;
    assert_eq!(
        id(&d),
        8,
        "the held delivery was not redelivered behind its back"
    );
    d.ack();
    drop(held);
    drop(holder);
    assert_eq!(id(&next(&mut other).await), 7, "dropped, it comes back");
}

fn keyed(n: u32, key: &str) -> Event {
    EventBuilderV10::new()
        .id(n.to_string())
        .source("/herald/tests")
        .ty("dev.herald.test")
        .extension("partitionkey", key)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_partition_key_arrive_in_publish_order_on_an_ordered_subscription() {
    let emulator = blocking(PubsubEmulator::start).await;
    let bus = connect(&emulator).await;
    let mut sub = bus.subscribe(TOPIC, GROUP).await.unwrap();
    let keys = ["a", "b", "c"];
    for round in 0..10u32 {
        let batch: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(k, key)| keyed(round * 10 + k as u32, key))
            .collect();
        bus.publish(TOPIC, &batch).await.unwrap();
    }
    let mut per_key: HashMap<String, Vec<u32>> = HashMap::new();
    for _ in 0..30 {
        let d = next(&mut sub).await;
        let key = d.event.extension("partitionkey").unwrap().to_string();
        per_key.entry(key).or_default().push(id(&d));
        d.ack();
    }
    for (k, key) in keys.iter().enumerate() {
        let want: Vec<u32> = (0..10).map(|round| round * 10 + k as u32).collect();
        assert_eq!(per_key[*key], want, "key {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_an_ordered_subscription_earlier_is_refused_on_the_emulator_with_the_reason() {
    let emulator = blocking(PubsubEmulator::start).await;
    let bus = connect(&emulator).await;
    let e = match bus
        .subscribe_from(TOPIC, GROUP, herald_buses::StartPosition::Earliest)
        .await
    {
        Ok(_) => panic!("the emulator has no seek on ordered subscriptions"),
        Err(e) => e,
    };
    assert!(matches!(e, BusError::Rejected { .. }), "{e}");
    assert!(e.to_string().contains("message ordering"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_pubsub_limit_are_too_large() {
    let emulator = blocking(PubsubEmulator::start).await;
    let bus = connect(&emulator).await;
    let big = EventBuilderV10::new()
        .id("big")
        .source("/s")
        .ty("t")
        .data("application/octet-stream", vec![0u8; 10_000_001])
        .build()
        .unwrap();
    let e = bus.publish(TOPIC, &[big]).await.unwrap_err();
    assert!(
        matches!(
            e,
            BusError::TooLarge {
                limit: 10_000_000,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_a_cloudevent_is_reported_once_and_skipped() {
    let emulator = blocking(PubsubEmulator::start).await;
    let bus = connect(&emulator).await;
    let mut sub = bus.subscribe(TOPIC, GROUP).await.unwrap();
    // Another Pub/Sub client publishes a plain message (no `ce-` attributes).
    let url = format!(
        "http://{}/v1/projects/herald-test/topics/{TOPIC}:publish",
        emulator.host()
    );
    let out = blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-X", "POST", "-H", "content-type: application/json"])
            .args([
                "--data-binary",
                r#"{"messages":[{"data":"cGxhaW4="}]}"#,
                &url,
            ])
            .output()
            .expect("curl runs")
    })
    .await;
    assert!(out.status.success(), "{out:?}");
    bus.publish(TOPIC, &[fixtures::event(5)]).await.unwrap();
    let e = timeout(WAIT, sub.next()).await.unwrap().unwrap_err();
    assert!(matches!(e, BusError::Corrupt { .. }), "{e}");
    assert_eq!(
        id(&next(&mut sub).await),
        5,
        "the events around it are delivered"
    );
    drop(sub);
    // Acknowledged: a new subscription of the group does not see it again.
    let mut again = bus.subscribe(TOPIC, GROUP).await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(6)]).await.unwrap();
    let d = next(&mut again).await;
    assert!(id(&d) == 5 || id(&d) == 6, "{d:?}");
}
