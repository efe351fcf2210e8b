//! Hostile records on the Kafka bus (librdkafka's mock cluster, in-process): records of another
//! producer that are not CloudEvents, one with a header name that has a multi-byte character at
//! byte 2 (it once panicked the decoder), sit between Herald's events. Each is reported once as
//! `Corrupt` with its offset, its offset counts as acknowledged, and the events around it are
//! delivered; a valid event carrying such a header is delivered.

#![cfg(feature = "kafka")]

use std::time::Duration;

use cloudevents::AttributesReader;
use herald_buses::contract::fixtures;
use herald_buses::kafka::testing::produce_raw;
use herald_buses::kafka::{KafkaBus, KafkaConfig};
use herald_buses::{Bus, BusError, Delivery, Subscription};
use rdkafka::mocking::MockCluster;
use tokio::time::timeout;

const TOPIC: &str = "knative-broker-default-hostile";
/// Deadline for a delivery that must come: detects a hang, does not measure speed.
const WAIT: Duration = Duration::from_secs(30);

/// A mock cluster on a thread of its own (its handle is not `Send`), alive until the sender is
/// dropped.
fn mock_cluster() -> (String, std::sync::mpsc::Sender<()>) {
    let (keep, alive) = std::sync::mpsc::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic(TOPIC, 1, 1).expect("topic");
        tx.send(cluster.bootstrap_servers()).unwrap();
        let _ = alive.recv();
    });
    (rx.recv().expect("mock cluster started"), keep)
}

async fn next(sub: &mut Box<dyn Subscription>) -> Result<Delivery, BusError> {
    timeout(WAIT, sub.next()).await.expect("next returns")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_are_no_cloudevents_are_reported_once_and_passed() {
    let (brokers, _keep) = mock_cluster();
    let mut config = KafkaConfig::new(&brokers);
    config
        .extra
        .insert("consumer.session.timeout.ms".into(), "6000".into());
    let bus = KafkaBus::connect(config).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();

    bus.publish(TOPIC, &[fixtures::event(1)]).await.unwrap();
    produce_raw(&brokers, TOPIC, &[("ceé", "x")], b"not an event").await;
    produce_raw(&brokers, TOPIC, &[("ce_specversion", "9.9")], b"x").await;
    produce_raw(
        &brokers,
        TOPIC,
        &[
            ("ce_specversion", "1.0"),
            ("ce_id", "foreign"),
            ("ce_source", "/s"),
            ("ce_type", "t"),
            ("ceé", "x"),
        ],
        b"x",
    )
    .await;
    bus.publish(TOPIC, &[fixtures::event(2)]).await.unwrap();

    let mut delivered = Vec::new();
    let mut corrupt = Vec::new();
    while delivered.len() < 3 {
        match next(&mut sub).await {
            Ok(d) => {
                delivered.push(d.event.id().to_owned());
                d.ack();
            }
            Err(BusError::Corrupt { position, reason }) => corrupt.push((position, reason)),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(delivered, ["1", "foreign", "2"]);
    let offsets: Vec<_> = corrupt.iter().map(|(p, _)| *p).collect();
    assert_eq!(offsets, [1, 2], "{corrupt:?}");

    // Their offsets counted as acknowledged: the group's next subscription starts after them.
    drop(sub);
    bus.publish(TOPIC, &[fixtures::event(3)]).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    let d = next(&mut sub).await.expect("no corrupt record again");
    assert_eq!(d.event.id(), "3");
}
