//! Herald replicas sharing a Kafka consumer group, on their own `tansu`: each replica is a
//! separate `KafkaBus` (its own librdkafka clients), as two processes would be.

#![cfg(feature = "kafka")]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use herald_buses::kafka::KafkaBus;
use herald_buses::kafka::testing::Tansu;
use herald_buses::{Bus, Subscription};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

const TOPIC: &str = "knative-broker-default-shared";
const GROUP: &str = "knative-trigger-default-shared";

async fn replica(broker: &Tansu) -> Arc<KafkaBus> {
    let mut config = broker.config();
    config.partitions = 4;
    Arc::new(KafkaBus::connect(config).await.unwrap())
}

/// An event keyed by its id, so events spread over the partitions.
fn keyed(n: u32) -> Event {
    EventBuilderV10::new()
        .id(n.to_string())
        .source("/herald/tests")
        .ty("dev.herald.test")
        .extension("partitionkey", format!("key-{n}"))
        .build()
        .unwrap()
}

/// Reads `sub` in a task (so it takes part in rebalances), reporting every delivery's id and
/// whether it was acknowledged. `ack` decides; `stop` ends the task (dropping the subscription).
fn reader(
    mut sub: Box<dyn Subscription>,
    ack: fn(u32) -> bool,
    stop: Arc<AtomicBool>,
) -> (JoinHandle<()>, mpsc::UnboundedReceiver<(u32, bool)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let Ok(next) = timeout(Duration::from_millis(100), sub.next()).await else {
                continue;
            };
            let d = next.expect("subscription stays healthy");
            let n: u32 = d.event.id().parse().unwrap();
            let acked = ack(n);
            if acked {
                d.ack();
            } else {
                held.push(d); // in flight until the replica goes away
            }
            let _ = tx.send((n, acked));
        }
        drop(sub);
        drop(held);
    });
    (task, rx)
}

/// Ids from here on are probes, not counted by the tests.
const PROBE: u32 = 1_000_000;

/// What `rx` received so far, probes left out.
fn drain(rx: &mut mpsc::UnboundedReceiver<(u32, bool)>) -> Vec<(u32, bool)> {
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        if item.0 < PROBE {
            out.push(item);
        }
    }
    out
}

/// Publishes probes (keyed, so they spread over the partitions) until b received one and a
/// received one after that: b holds partitions only once the rebalance its joining started is
/// complete, so from then on the assignment is the final one.
async fn wait_until_both_hold_partitions(
    bus: &KafkaBus,
    rx_a: &mut mpsc::UnboundedReceiver<(u32, bool)>,
    rx_b: &mut mpsc::UnboundedReceiver<(u32, bool)>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut b_has, mut a_has) = (false, false);
    let mut probe = PROBE;
    while !(a_has && b_has) {
        assert!(
            Instant::now() < deadline,
            "the group never split (a: {a_has}, b: {b_has})"
        );
        publish(bus, probe..probe + 8).await;
        probe += 8;
        // Waits for the probes with a deadline rather than a fixed pause.
        let _ = timeout(Duration::from_millis(500), async {
            loop {
                tokio::select! {
                    Some(_) = rx_b.recv() => b_has = true,
                    Some(_) = rx_a.recv() => a_has |= b_has,
                    else => break,
                }
                if a_has && b_has {
                    break;
                }
            }
        })
        .await;
    }
}

async fn publish(bus: &KafkaBus, range: std::ops::Range<u32>) {
    let batch: Vec<_> = range.map(keyed).collect();
    bus.publish(TOPIC, &batch).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_in_one_group_split_the_partitions_and_each_event_goes_to_one() {
    let broker = Tansu::start();
    let (a, b) = (replica(&broker).await, replica(&broker).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (task_a, mut rx_a) = reader(
        a.subscribe(TOPIC, GROUP).await.unwrap(),
        |_| true,
        stop.clone(),
    );
    let (task_b, mut rx_b) = reader(
        b.subscribe(TOPIC, GROUP).await.unwrap(),
        |_| true,
        stop.clone(),
    );
    // b's joining rebalanced the group: wait until it is done.
    wait_until_both_hold_partitions(&a, &mut rx_a, &mut rx_b).await;
    publish(&a, 0..200).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    while got_a.len() + got_b.len() < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        got_a.extend(drain(&mut rx_a).into_iter().map(|(n, _)| n));
        got_b.extend(drain(&mut rx_b).into_iter().map(|(n, _)| n));
    }
    stop.store(true, Ordering::Release);
    task_a.await.unwrap();
    task_b.await.unwrap();
    let all: HashSet<u32> = got_a.iter().chain(&got_b).copied().collect();
    assert_eq!(
        all.len(),
        200,
        "a got {}, b got {}",
        got_a.len(),
        got_b.len()
    );
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "a got {}, b got {}",
        got_a.len(),
        got_b.len()
    );
    assert_eq!(got_a.len() + got_b.len(), 200, "no event delivered twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_going_away_hands_every_unacknowledged_event_to_the_other() {
    let broker = Tansu::start();
    let (a, b) = (replica(&broker).await, replica(&broker).await);
    let stop_a = Arc::new(AtomicBool::new(false));
    let stop_b = Arc::new(AtomicBool::new(false));
    let (task_a, mut rx_a) = reader(
        a.subscribe(TOPIC, GROUP).await.unwrap(),
        |_| true,
        stop_a.clone(),
    );
    // b acknowledges only even ids: the odd ones stay in flight, out of order, until b is gone.
    let (task_b, mut rx_b) = reader(
        b.subscribe(TOPIC, GROUP).await.unwrap(),
        |n| n % 2 == 0,
        stop_b.clone(),
    );
    wait_until_both_hold_partitions(&a, &mut rx_a, &mut rx_b).await;
    publish(&a, 0..200).await;

    let mut acked = HashSet::new();
    let mut b_held = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.len() + b_held.len() < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (n, ok) in drain(&mut rx_a).into_iter().chain(drain(&mut rx_b)) {
            if ok {
                acked.insert(n);
            } else {
                b_held.insert(n);
            }
        }
    }
    assert!(
        !b_held.is_empty(),
        "b held nothing: the group did not split"
    );

    // b goes away with its odd events unacknowledged; a takes over b's partitions.
    stop_b.store(true, Ordering::Release);
    task_b.await.unwrap();
    let flushed = b.flushed();
    drop(b);
    timeout(Duration::from_secs(30), flushed)
        .await
        .expect("b closes");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut redelivered = HashSet::new();
    while !b_held.is_subset(&redelivered) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (n, _) in drain(&mut rx_a) {
            acked.insert(n);
            redelivered.insert(n);
        }
    }
    stop_a.store(true, Ordering::Release);
    task_a.await.unwrap();
    let missing: Vec<_> = b_held.difference(&redelivered).collect();
    assert!(missing.is_empty(), "never handed to a: {missing:?}");
    assert_eq!(acked.len(), 200);
}
