//! The NATS bus when things go wrong: the server restarted or frozen, Herald replicas sharing a
//! group and one of them killed. Each test runs its own `nats-server` (file store synced on every
//! write).

#![cfg(feature = "nats")]

use std::collections::HashSet;
use std::time::Duration;

use cloudevents::AttributesReader;
use herald_buses::contract::fixtures;
use herald_buses::nats::testing::NatsServer;
use herald_buses::nats::{NatsBus, NatsConfig};
use herald_buses::{Bus, Delivery, Subscription};
use tokio::time::{Instant, timeout};

const TOPIC: &str = "knative-broker-default-failures";

fn config(server: &NatsServer) -> NatsConfig {
    let mut config = NatsConfig::new(server.url());
    config.ack_wait = Duration::from_secs(2);
    config.publish_timeout = Duration::from_secs(2);
    config
}

fn id(d: &Delivery) -> u32 {
    d.event.id().parse().unwrap()
}

/// Reads until every id in `want` was delivered (acking each), or panics after `limit`.
async fn read_all(sub: &mut Box<dyn Subscription>, want: &HashSet<u32>, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut seen = HashSet::new();
    while !want.is_subset(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let missing: Vec<_> = want.difference(&seen).take(10).collect();
        let d = match timeout(left, sub.next()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                // Transient while NATS comes back; the broker retries the same way.
                assert!(e.is_retryable(), "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => panic!(
                "missing {} events, e.g. {missing:?}",
                want.len() - seen.len()
            ),
        };
        seen.insert(id(&d));
        d.ack();
    }
}

/// Restarts the server off the runtime's workers (start-up blocks while it waits).
async fn restart(server: NatsServer) -> NatsServer {
    tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.restart();
        server
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_publish_survives_server_restarts_during_publishing() {
    let mut server = NatsServer::start();
    let bus = std::sync::Arc::new(NatsBus::connect(config(&server)).await.unwrap());
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    let publisher = tokio::spawn({
        let bus = bus.clone();
        async move {
            let mut acknowledged = HashSet::new();
            for n in 0..400u32 {
                match bus.publish(TOPIC, &[fixtures::event(n)]).await {
                    Ok(()) => {
                        acknowledged.insert(n);
                    }
                    Err(e) => {
                        assert!(e.is_retryable(), "{e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            acknowledged
        }
    });
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server = restart(server).await;
    }
    let acknowledged = publisher.await.unwrap();
    assert!(
        acknowledged.len() > 100,
        "only {} publishes succeeded",
        acknowledged.len()
    );
    read_all(&mut sub, &acknowledged, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_events_are_delivered_after_a_server_restart_during_delivery() {
    let server = NatsServer::start();
    let bus = NatsBus::connect(config(&server)).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    let batch: Vec<_> = (0..50).map(fixtures::event).collect();
    bus.publish(TOPIC, &batch).await.unwrap();
    let mut want = HashSet::new();
    for _ in 0..20 {
        let d = timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        if id(&d).is_multiple_of(2) {
            d.ack();
        } else {
            want.insert(id(&d)); // held across the restart, then dropped unacknowledged
        }
    }
    let _server = restart(server).await;
    want.extend(20..50);
    // The same bus and subscription carry on once NATS is back.
    read_all(&mut sub, &want, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_fails_publishes_retryably_in_bounded_time_and_the_bus_recovers() {
    let server = NatsServer::start();
    let bus = NatsBus::connect(config(&server)).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(1)]).await.unwrap();

    server.pause();
    for n in 2..4 {
        // A deadline far above `publish_timeout`: it detects a hang without measuring speed.
        let result = timeout(
            Duration::from_secs(60),
            bus.publish(TOPIC, &[fixtures::event(n)]),
        )
        .await
        .expect("publish returns while the server is frozen");
        let e = result.expect_err("a frozen server acknowledges nothing");
        assert!(e.is_retryable(), "{e}");
    }
    server.resume();

    // The same instance publishes again without being recreated.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = bus.publish(TOPIC, &[fixtures::event(4)]).await {
        assert!(Instant::now() < deadline, "still failing after resume: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // 2 and 3 may have been stored although their publish failed (at-least-once); 1 and 4
    // must arrive.
    read_all(&mut sub, &HashSet::from([1, 4]), Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_of_a_group_split_the_events() {
    let server = NatsServer::start();
    let mut config = config(&server);
    config.max_ack_pending = 4;
    let (a, b) = (
        NatsBus::connect(config.clone()).await.unwrap(),
        NatsBus::connect(config).await.unwrap(),
    );
    let sub_a = a.subscribe(TOPIC, "g").await.unwrap();
    let sub_b = b.subscribe(TOPIC, "g").await.unwrap();
    let batch: Vec<_> = (0..60).map(fixtures::event).collect();
    a.publish(TOPIC, &batch).await.unwrap();
    let consume = |mut sub: Box<dyn Subscription>| {
        tokio::spawn(async move {
            let mut got = vec![];
            while let Ok(Ok(d)) = timeout(Duration::from_secs(1), sub.next()).await {
                got.push(id(&d));
                tokio::time::sleep(Duration::from_millis(5)).await; // "delivering"
                d.ack();
            }
            got
        })
    };
    let (got_a, got_b) = (consume(sub_a), consume(sub_b));
    let (got_a, got_b) = (got_a.await.unwrap(), got_b.await.unwrap());
    let (set_a, set_b): (HashSet<_>, HashSet<_>) = (
        got_a.iter().copied().collect(),
        got_b.iter().copied().collect(),
    );
    assert!(
        set_a.is_disjoint(&set_b),
        "delivered to both: {:?}",
        set_a.intersection(&set_b)
    );
    assert_eq!(
        got_a.len() + got_b.len(),
        60,
        "each event once: {got_a:?} {got_b:?}"
    );
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "{got_a:?} {got_b:?}"
    );
}

/// A replica killed with deliveries in hand: its runtime (connection, keep-alives) vanishes
/// without handing anything back, like a process killed with `kill -9`.
#[test]
fn events_held_by_a_killed_replica_are_redelivered_to_the_other() {
    let server = NatsServer::start();
    let mut config = config(&server);
    config.max_ack_pending = 4;
    let runtime = |name| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    };
    let (survivor, doomed) = (runtime("survivor"), runtime("doomed"));
    let held = doomed.block_on(async {
        let bus = NatsBus::connect(config.clone()).await.unwrap();
        let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
        let batch: Vec<_> = (0..20).map(fixtures::event).collect();
        bus.publish(TOPIC, &batch).await.unwrap();
        let mut held = vec![];
        for _ in 0..3 {
            held.push(
                timeout(Duration::from_secs(10), sub.next())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        (bus, sub, held)
    });
    let held_ids: Vec<u32> = held.2.iter().map(id).collect();
    doomed.shutdown_background(); // the "process" dies holding three deliveries
    survivor.block_on(async {
        let bus = NatsBus::connect(config.clone()).await.unwrap();
        let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
        let want: HashSet<u32> = (0..20).collect();
        read_all(&mut sub, &want, Duration::from_secs(30)).await;
    });
    drop(held); // outside any runtime: nothing is handed back
    assert_eq!(held_ids.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_refuses_publishes_as_overloaded_and_drops_nothing() {
    let server = NatsServer::start();
    let mut config = config(&server);
    config.max_bytes = Some(8 * 1024);
    let bus = NatsBus::connect(config).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    let mut stored = HashSet::new();
    let error = loop {
        let n = stored.len() as u32;
        assert!(n < 1000, "an 8 KiB stream took 1000 events");
        match bus.publish(TOPIC, &[fixtures::event(n)]).await {
            Ok(()) => stored.insert(n),
            Err(e) => break e,
        };
    };
    assert!(
        matches!(error, herald_buses::BusError::Overloaded { .. }),
        "{error}"
    );
    assert!(error.is_retryable());
    read_all(&mut sub, &stored, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_delivery_is_kept_alive_past_ack_wait() {
    let server = NatsServer::start();
    let mut config = config(&server);
    config.ack_wait = Duration::from_secs(1);
    let bus = NatsBus::connect(config).await.unwrap();
    let mut first = bus.subscribe(TOPIC, "g").await.unwrap();
    let mut second = bus.subscribe(TOPIC, "g").await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(7)]).await.unwrap();
    let (held, mut other) = tokio::select! {
        d = first.next() => (d.unwrap(), second),
        d = second.next() => (d.unwrap(), first),
    };
    // Three AckWaits pass while the broker is still working on the event.
    let again = timeout(Duration::from_secs(3), other.next()).await;
    assert!(again.is_err(), "redelivered while held: {again:?}");
    held.ack();
}
