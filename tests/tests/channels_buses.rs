//! The same Sequence on the embedded, NATS and Kafka buses, and `kill -9` in the middle of a
//! Sequence under load losing nothing. NATS and Kafka cases need `nats-server`
//! (`scripts/ensure-nats-server`) and `tansu`; they fail, never skip, without them.

mod channels_common;

use std::collections::BTreeMap;
use std::time::Duration;

use channels_common::{append, function, publish, sequence, steps, uri};
use herald_buses::kafka::testing::Tansu;
use herald_buses::nats::testing::NatsServer;
use herald_tests::manifests::yaml;
use herald_tests::{Herald, HeraldOptions, Recorded, Subscriber};

const WAIT: Duration = Duration::from_secs(60);
const EVENTS: usize = 30;

/// How many times each id reached the sink.
fn counts(got: &[Recorded]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in got {
        assert_eq!(steps(r), ["a", "b", "c"], "event {} skipped a step", r.id());
        *counts.entry(r.id()).or_insert(0) += 1;
    }
    counts
}

/// Publishes [`EVENTS`] events to a 3-step Sequence on `bus` and checks each reaches the end
/// through every step, exactly once.
async fn three_steps_on(bus: &str, options: HeraldOptions) {
    let (a, b, c) = (
        function("a").await,
        function("b").await,
        function("c").await,
    );
    let sink = Subscriber::start().await;
    let manifests = yaml(&[sequence("flow", &[&a, &b, &c], uri(&sink.url("/")))]);
    let herald = Herald::start_with(bus, &manifests, options).await;
    for n in 0..EVENTS {
        publish(&herald, "/flows/sequences/default/flow", &format!("e-{n}")).await;
    }
    sink.wait_for(EVENTS, WAIT).await;
    let got = sink.settle(Duration::from_millis(500), WAIT).await;
    let counts = counts(&got);
    assert_eq!(counts.len(), EVENTS, "every event reached the end");
    assert!(
        counts.values().all(|n| *n == 1),
        "no duplicates without failures: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sequence_runs_on_the_embedded_bus() {
    three_steps_on("embedded", HeraldOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sequence_runs_on_nats() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    three_steps_on(&nats.url(), HeraldOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sequence_runs_on_kafka() {
    let tansu = tokio::task::spawn_blocking(Tansu::start).await.unwrap();
    // One record per batch: tansu 0.6 cannot fetch from inside a batch (see the Kafka bus docs).
    let options = HeraldOptions {
        env: vec![(
            "HERALD_KAFKA_OPTIONS".into(),
            "consumer.session.timeout.ms=6000,consumer.heartbeat.interval.ms=1000,\
             producer.batch.num.messages=1"
                .into(),
        )],
        ..Default::default()
    };
    three_steps_on(&format!("kafka://{}", tansu.brokers()), options).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_in_the_middle_of_a_sequence_loses_nothing() {
    const LOAD: usize = 200;
    let (a, b, c) = (
        function("a").await,
        function("b").await,
        function("c").await,
    );
    // Step b takes 10 ms and the flow is ordered (one event at a time per hop): the load
    // takes seconds to go through, so the kill lands in the middle of it.
    b.set_script(|r| append(r, "b").delay(Duration::from_millis(10)));
    let sink = Subscriber::start().await;
    let mut flow = sequence("flow", &[&a, &b, &c], uri(&sink.url("/")));
    flow["metadata"]["annotations"] =
        serde_json::json!({"kafka.eventing.knative.dev/delivery.order": "ordered"});
    let manifests = yaml(&[flow]);
    let mut herald = Herald::start("embedded", &manifests).await;
    for n in 0..LOAD {
        publish(&herald, "/flows/sequences/default/flow", &format!("k-{n}")).await;
    }
    // Killed while the steps are working through the load (every event was accepted, so
    // each is durable on a channel of the flow).
    sink.wait_for(20, WAIT).await;
    herald.kill9();
    let reached_before = sink.count();
    assert!(
        reached_before < LOAD,
        "the kill came after the flow finished"
    );
    herald.restart().await;
    herald_tests::eventually(WAIT, "every event reached the end", || async {
        (counts(&sink.requests()).len() == LOAD).then_some(())
    })
    .await;
    let got = sink.settle(Duration::from_millis(500), WAIT).await;
    let counts = counts(&got);
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 after {reached_before} of {LOAD} events reached the end: \
         all {LOAD} arrived, {duplicates} duplicates"
    );
    assert_eq!(counts.len(), LOAD);
}
