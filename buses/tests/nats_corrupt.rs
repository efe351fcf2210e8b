//! Hostile and oversize messages on the NATS bus: a message in a Herald stream that is not a
//! CloudEvent is reported once as `Corrupt` and terminated, the events around it are delivered;
//! a record over the server's `max_payload` is refused as `TooLarge` before it is sent.

#![cfg(feature = "nats")]

use std::time::Duration;

use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};
use herald_buses::contract::fixtures;
use herald_buses::nats::config::TopicNames;
use herald_buses::nats::testing::NatsServer;
use herald_buses::nats::{NatsBus, NatsConfig};
use herald_buses::{Bus, BusError, Delivery, Subscription};
use tokio::time::timeout;

const TOPIC: &str = "knative-broker-default-hostile";

/// Deadline for a delivery that must come: detects a hang, does not measure speed.
const WAIT: Duration = Duration::from_secs(30);

fn config(server: &NatsServer) -> NatsConfig {
    let mut config = NatsConfig::new(server.url());
    config.ack_wait = Duration::from_secs(2);
    config
}

async fn next(sub: &mut Box<dyn Subscription>) -> Result<Delivery, BusError> {
    timeout(WAIT, sub.next()).await.expect("next returns")
}

/// Publishes a message straight to the stream's subject, as any NATS client may.
async fn publish_raw(server: &NatsServer, headers: async_nats::HeaderMap, payload: &'static [u8]) {
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let subject = TopicNames::new(TOPIC).unwrap().subject;
    js.publish_with_headers(subject, headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_is_reported_once_and_the_events_around_it_are_delivered() {
    let server = NatsServer::start();
    let bus = NatsBus::connect(config(&server)).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(1)]).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("ce-specversion", "1.0");
    headers.insert("ce-id", "%FF%FE"); // not UTF-8 once decoded
    publish_raw(&server, headers, b"garbage").await;
    publish_raw(&server, async_nats::HeaderMap::new(), b"no headers at all").await;
    bus.publish(TOPIC, &[fixtures::event(2)]).await.unwrap();

    let first = next(&mut sub).await.unwrap();
    assert_eq!(first.event.id(), "1");
    first.ack();
    for _ in 0..2 {
        match next(&mut sub).await {
            Err(BusError::Corrupt { position, reason }) => {
                assert!(position > 1, "stream sequence {position}");
                assert!(!reason.is_empty());
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    let second = next(&mut sub).await.unwrap();
    assert_eq!(second.event.id(), "2");
    second.ack();

    // Terminated, not held: the group's next subscription starts after them.
    drop(sub);
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    bus.publish(TOPIC, &[fixtures::event(3)]).await.unwrap();
    let third = next(&mut sub).await.unwrap();
    assert_eq!(third.event.id(), "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_max_payload_is_too_large_and_nothing_of_its_batch_is_sent() {
    let server = NatsServer::start();
    let bus = NatsBus::connect(config(&server)).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    // nats-server's default max_payload is 1 MiB.
    let big = EventBuilderV10::new()
        .id("big")
        .source("/s")
        .ty("t")
        .data("application/octet-stream", vec![7u8; 1 << 20])
        .build()
        .unwrap();
    let err = bus
        .publish(TOPIC, &[fixtures::event(1), big])
        .await
        .unwrap_err();
    assert!(
        matches!(err, BusError::TooLarge { size, limit } if size > limit && limit == 1 << 20),
        "{err}"
    );
    bus.publish(TOPIC, &[fixtures::event(2)]).await.unwrap();
    assert_eq!(next(&mut sub).await.unwrap().event.id(), "2");
}
