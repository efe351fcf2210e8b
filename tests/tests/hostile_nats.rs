//! Hostile messages on the NATS bus, black-box: messages that are not CloudEvents, published
//! straight to a broker's stream by any NATS client, sit between valid events while a trigger
//! runs. Herald stays up, delivers the events before and after them, and counts them in
//! `herald_bus_corrupt_records_total`. Needs a real `nats-server` (`scripts/ensure-nats-server`).

use std::time::Duration;

use herald_buses::nats::config::TopicNames;
use herald_buses::nats::testing::NatsServer;
use herald_tests::fixtures::structured;
use herald_tests::replicas::metric;
use herald_tests::{Client, Herald, Subscriber, eventually, manifests};

/// Deadline for what must happen: detects a hang, does not measure speed.
const WAIT: Duration = Duration::from_secs(30);
/// The stream of broker `default/default`.
const TOPIC: &str = "knative-broker-default-default";

async fn publish_raw(nats: &NatsServer, headers: async_nats::HeaderMap, payload: &'static [u8]) {
    let client = async_nats::connect(nats.url()).await.expect("connecting");
    let js = async_nats::jetstream::new(client);
    let subject = TopicNames::new(TOPIC).unwrap().subject;
    js.publish_with_headers(subject, headers, payload.into())
        .await
        .expect("publishing")
        .await
        .expect("stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_messages_between_events_are_skipped_counted_and_the_events_delivered() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let sub = Subscriber::start().await;
    let herald = Herald::start(&nats.url(), &manifests::one_trigger(&sub.url("/hook"))).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");

    let r = client.post_structured(&url, &structured("before")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    // No CloudEvents headers at all, then a ce-id that is not UTF-8 once percent-decoded.
    publish_raw(&nats, async_nats::HeaderMap::new(), b"not an event").await;
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "%FF%FE"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
    ] {
        headers.insert(name, value);
    }
    publish_raw(&nats, headers, b"x").await;
    let r = client.post_structured(&url, &structured("after")).await;
    assert_eq!(r.status, 202, "{}", r.text());

    let got = sub.wait_for(2, WAIT).await;
    let mut ids: Vec<_> = got.iter().map(|d| d.id()).collect();
    ids.sort();
    assert_eq!(ids, ["after", "before"]);
    assert_eq!(client.get(&herald.url("/healthz")).await.status, 200);
    eventually(WAIT, "both corrupt messages counted", || async {
        (metric(&herald, "herald_bus_corrupt_records_total").await >= 2).then_some(())
    })
    .await;
    // Terminated, not redelivered: later events flow and nothing is delivered twice.
    let r = client.post_structured(&url, &structured("later")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = sub.wait_for(3, WAIT).await;
    assert_eq!(got[2].id(), "later");
}
