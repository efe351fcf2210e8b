//! The Kafka bus when things go wrong: the broker down, hung or slow while publishing and while
//! delivering; records too large; the producer's effective settings. Tests that need the broker
//! to come back with its data use librdkafka's mock cluster (tansu's storage here is memory, lost
//! on kill); the others run on their own `tansu`.

#![cfg(feature = "kafka")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};
use herald_buses::contract::fixtures;
use herald_buses::kafka::testing::Tansu;
use herald_buses::kafka::{KafkaBus, KafkaConfig};
use herald_buses::{Bus, BusError, Delivery, Subscription};
use rdkafka::mocking::MockCluster;
use tokio::time::{Instant, timeout};

const TOPIC: &str = "knative-broker-default-failures";

fn config(brokers: String) -> KafkaConfig {
    let mut config = KafkaConfig::new(brokers);
    config
        .extra
        .insert("consumer.session.timeout.ms".into(), "6000".into());
    config.partitions = 2;
    config.publish_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(3);
    config
}

/// Deadline for a call that must fail rather than hang: far above the configured timeouts, so
/// that it detects a hang without measuring speed (a loaded machine is slow, not wrong).
const HANG: Duration = Duration::from_secs(60);

/// `fut`'s result; panics if it has not returned within [`HANG`].
async fn returns<T>(fut: impl Future<Output = T>) -> T {
    timeout(HANG, fut)
        .await
        .expect("returned instead of hanging")
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
        let d = match timeout(left, sub.next()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                assert!(e.is_retryable(), "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                let missing: Vec<_> = want.difference(&seen).take(10).collect();
                panic!(
                    "missing {} events, e.g. {missing:?}",
                    want.len() - seen.len()
                )
            }
        };
        seen.insert(id(&d));
        d.ack();
    }
}

#[test]
fn the_producer_is_acks_all_and_idempotent_whatever_extra_options_say() {
    let mut config = KafkaConfig::new("127.0.0.1:9");
    config.extra.insert("producer.linger.ms".into(), "7".into());
    // What librdkafka resolves for the producer Herald creates.
    let native = config.producer().create_native_config().unwrap();
    assert_eq!(native.get("acks").unwrap(), "-1", "acks=all");
    assert_eq!(native.get("enable.idempotence").unwrap(), "true");
    assert_eq!(native.get("message.timeout.ms").unwrap(), "5000");
    assert_eq!(native.get("linger.ms").unwrap(), "7");
    assert_eq!(native.get("partitioner").unwrap(), "murmur2");
    let native = config.consumer("g").create_native_config().unwrap();
    assert_eq!(native.get("enable.auto.offset.store").unwrap(), "false");
    assert_eq!(
        native.get("auto.offset.reset").unwrap(),
        "largest",
        "latest"
    );

    for reserved in [
        "acks",
        "producer.enable.idempotence",
        "consumer.enable.auto.commit",
    ] {
        let mut config = KafkaConfig::new("127.0.0.1:9");
        config.extra.insert(reserved.into(), "0".into());
        let err = block_on(KafkaBus::connect(config)).unwrap_err();
        assert!(
            matches!(err, BusError::Rejected { .. }),
            "{reserved}: {err}"
        );
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_broker_fails_retryably_within_the_request_timeout() {
    let mut config = config("127.0.0.1:1".into());
    config.request_timeout = Duration::from_secs(2);
    let err = returns(KafkaBus::connect(config)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_message_max_bytes_is_rejected_before_producing() {
    let broker = Tansu::start();
    let mut config = config(broker.brokers());
    config.max_message_bytes = 10_000;
    let bus = KafkaBus::connect(config).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    let big = EventBuilderV10::new()
        .id("big")
        .source("/s")
        .ty("t")
        .data("application/octet-stream", vec![7u8; 10_000])
        .build()
        .unwrap();
    let err = bus
        .publish(TOPIC, &[fixtures::event(1), big])
        .await
        .unwrap_err();
    assert!(
        matches!(err, BusError::TooLarge { limit: 10_000, size } if size > 10_000),
        "{err}"
    );
    assert!(!err.is_retryable());
    // Nothing of the batch was produced: the next event is the first one delivered.
    bus.publish(TOPIC, &[fixtures::event(2)]).await.unwrap();
    let d = timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id(&d), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_a_killed_broker_fails_retryably_within_the_publish_timeout() {
    let mut broker = Tansu::start();
    let bus = KafkaBus::connect(config(broker.brokers())).await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(1)]).await.unwrap();
    broker.kill();
    let err = returns(bus.publish(TOPIC, &[fixtures::event(2)]))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // Readiness follows within the background probe's interval.
    let deadline = Instant::now() + Duration::from_secs(20);
    while bus.unready_reason().is_none() {
        assert!(
            Instant::now() < deadline,
            "still ready 20 s after the broker was killed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_broker_fails_publishes_retryably_and_they_succeed_once_it_answers_again() {
    let broker = Tansu::start();
    let bus = KafkaBus::connect(config(broker.brokers())).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(1)]).await.unwrap();
    broker.pause();
    let result = timeout(HANG, bus.publish(TOPIC, &[fixtures::event(2)])).await;
    broker.resume();
    let err = result.expect("returned instead of hanging").unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // The broker answers again: publishing works, and nothing acknowledged is lost.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = bus.publish(TOPIC, &[fixtures::event(3)]).await {
        assert!(e.is_retryable() && Instant::now() < deadline, "{e}");
    }
    read_all(&mut sub, &HashSet::from([1, 3]), Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_goes_on_after_the_broker_hangs_mid_stream() {
    let broker = Tansu::start();
    let bus = KafkaBus::connect(config(broker.brokers())).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    let batch: Vec<_> = (0..40).map(fixtures::event).collect();
    bus.publish(TOPIC, &batch).await.unwrap();
    let mut seen = HashSet::new();
    for _ in 0..10 {
        let d = timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        seen.insert(id(&d));
        d.ack();
    }
    broker.pause();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.resume();
    let rest: HashSet<u32> = (0..40).filter(|n| !seen.contains(n)).collect();
    read_all(&mut sub, &rest, Duration::from_secs(60)).await;
}

/// librdkafka's mock cluster keeps its data while a broker is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_during_publish_and_delivery_loses_nothing_acknowledged() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, 2, 1).unwrap();
    let bus = Arc::new(
        KafkaBus::connect(config(mock.bootstrap_servers()))
            .await
            .unwrap(),
    );
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    let first: Vec<_> = (0..20).map(fixtures::event).collect();
    bus.publish(TOPIC, &first).await.unwrap();
    for _ in 0..5 {
        timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap()
            .ack();
    }

    mock.broker_down(1).unwrap();
    let err = returns(bus.publish(TOPIC, &[fixtures::event(100)]))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    mock.broker_up(1).unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let more: Vec<_> = (200..220).map(fixtures::event).collect();
    while let Err(e) = bus.publish(TOPIC, &more).await {
        assert!(e.is_retryable() && Instant::now() < deadline, "{e}");
    }
    // Everything acknowledged arrives (100 may or may not: its publish failed). Events
    // without key share a partition, so the five acknowledged first were 0..5.
    let rest: HashSet<u32> = (5..20).chain(200..220).collect();
    read_all(&mut sub, &rest, Duration::from_secs(60)).await;
}

/// A slow broker (500 ms per request): publishes still succeed, just later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_broker_slows_publishes_down_without_failing_them() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, 1, 1).unwrap();
    let bus = KafkaBus::connect(config(mock.bootstrap_servers()))
        .await
        .unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    mock.broker_round_trip_time(1, Duration::from_millis(500))
        .unwrap();
    let started = Instant::now();
    bus.publish(TOPIC, &(0..10).map(fixtures::event).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    read_all(&mut sub, &(0..10).collect(), Duration::from_secs(30)).await;
}
