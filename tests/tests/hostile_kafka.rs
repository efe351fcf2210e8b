//! Hostile records on the Kafka bus, black-box: records written straight to a broker's topic by
//! another producer, with a header name that has a multi-byte character at byte 2 (which once
//! panicked Herald's decoder and killed the trigger's subscription), sit between valid events
//! while a trigger runs. Herald stays up; a valid event carrying such a header is delivered; a
//! record that is no CloudEvent is skipped and counted in `herald_bus_corrupt_records_total`;
//! the events before and after are delivered. Needs `tansu` (`scripts/ensure-tansu`).

use std::time::Duration;

use herald_buses::kafka::testing::{Tansu, produce_raw};
use herald_tests::fixtures::structured;
use herald_tests::replicas::metric;
use herald_tests::{Client, Herald, HeraldOptions, Subscriber, eventually, manifests};

/// Deadline for what must happen: detects a hang, does not measure speed.
const WAIT: Duration = Duration::from_secs(60);
/// The topic of broker `default/default`.
const TOPIC: &str = "knative-broker-default-default";
/// `c`, `e`, then `é` (two bytes) starting at byte 2.
const BAD_KEY: &str = "ceé";

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_header_name_neither_panics_nor_stalls_the_trigger() {
    let tansu = tokio::task::spawn_blocking(Tansu::start).await.unwrap();
    let sub = Subscriber::start().await;
    let options = HeraldOptions {
        // One record per batch: tansu 0.6 cannot fetch from inside a batch.
        env: vec![(
            "HERALD_KAFKA_OPTIONS".into(),
            "producer.batch.num.messages=1".into(),
        )],
        ..Default::default()
    };
    let herald = Herald::start_with(
        &format!("kafka://{}", tansu.brokers()),
        &manifests::one_trigger(&sub.url("/hook")),
        options,
    )
    .await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");

    let r = client.post_structured(&url, &structured("before")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    // No CloudEvent: only the bad header and a value.
    produce_raw(&tansu.brokers(), TOPIC, &[(BAD_KEY, "x")], b"not an event").await;
    // A valid binary-mode event that also carries the bad header (a foreign header: ignored).
    produce_raw(
        &tansu.brokers(),
        TOPIC,
        &[
            ("ce_specversion", "1.0"),
            ("ce_id", "foreign"),
            ("ce_source", "/foreign"),
            ("ce_type", "t"),
            (BAD_KEY, "x"),
        ],
        b"data",
    )
    .await;
    let r = client.post_structured(&url, &structured("after")).await;
    assert_eq!(r.status, 202, "{}", r.text());

    let got = sub.wait_for(3, WAIT).await;
    let mut ids: Vec<_> = got.iter().map(|d| d.id()).collect();
    ids.sort();
    assert_eq!(ids, ["after", "before", "foreign"]);
    assert_eq!(client.get(&herald.url("/healthz")).await.status, 200);
    eventually(WAIT, "the corrupt record counted", || async {
        (metric(&herald, "herald_bus_corrupt_records_total").await >= 1).then_some(())
    })
    .await;
}
