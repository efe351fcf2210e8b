//! Sequence and Parallel: functions on loopback chained through internal channels and
//! subscriptions, each hop durable and retried on its own.

mod channels_common;

use std::time::Duration;

use channels_common::{append, function, publish, reference, sequence, steps, uri};
use herald_tests::manifests::{broker, fast_delivery, trigger, yaml};
use herald_tests::{Herald, Reply, Subscriber};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread")]
async fn a_three_step_sequence_transforms_the_event_and_its_last_reply_reaches_a_broker() {
    let (a, b, c) = (
        function("a").await,
        function("b").await,
        function("c").await,
    );
    let sink = Subscriber::start().await;
    let manifests = yaml(&[
        broker("results"),
        trigger("done", "results", &sink.url("/")),
        sequence(
            "pipeline",
            &[&a, &b, &c],
            reference("eventing.knative.dev/v1", "Broker", "results"),
        ),
    ]);
    let herald = Herald::start("embedded", &manifests).await;
    publish(&herald, "/flows/sequences/default/pipeline", "e-1").await;

    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(
        steps(&got[0]),
        ["a", "b", "c"],
        "each step saw its predecessor's reply"
    );
    assert_eq!(got[0].id(), "e-1");
    assert_eq!(got[0].attr("type").as_deref(), Some("dev.herald.c"));
    assert_eq!(got[0].attr("stepc").as_deref(), Some("done"));
    assert_eq!(
        got[0].attr("knativebrokerttl").as_deref(),
        Some("252"),
        "three reply hops from 255"
    );
    assert_eq!(steps(&b.requests()[0]), ["a"]);
    assert_eq!(steps(&c.requests()[0]), ["a", "b"]);
    let all = sink.settle(QUIET, WAIT).await;
    assert_eq!(all.len(), 1, "delivered once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_answering_without_an_event_ends_the_flow_for_that_event() {
    let a = function("a").await;
    let b = Subscriber::start().await;
    b.set_script(|r| match r.id().as_str() {
        "stop" => Reply::status(202),
        _ => append(r, "b"),
    });
    let c = function("c").await;
    let sink = Subscriber::start().await;
    let herald = Herald::start(
        "embedded",
        &yaml(&[sequence("flow", &[&a, &b, &c], uri(&sink.url("/")))]),
    )
    .await;
    publish(&herald, "/flows/sequences/default/flow", "stop").await;
    publish(&herald, "/flows/sequences/default/flow", "go").await;

    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got[0].id(), "go");
    assert_eq!(steps(&got[0]), ["a", "b", "c"]);
    let all = sink.settle(QUIET, WAIT).await;
    assert_eq!(all.len(), 1, "the stopped event never reached the reply");
    let c_ids: Vec<String> = c.requests().iter().map(|r| r.id()).collect();
    assert_eq!(c_ids, ["go"], "step c never saw the stopped event");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_is_retried_on_its_own_without_rerunning_earlier_steps() {
    let a = function("a").await;
    let b = Subscriber::start().await;
    b.push_n(Reply::status(503), 2);
    b.set_script(|r| append(r, "b"));
    let c = function("c").await;
    let sink = Subscriber::start().await;
    let herald = Herald::start(
        "embedded",
        &yaml(&[sequence("flaky", &[&a, &b, &c], uri(&sink.url("/")))]),
    )
    .await;
    publish(&herald, "/flows/sequences/default/flaky", "r-1").await;

    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(steps(&got[0]), ["a", "b", "c"]);
    sink.settle(QUIET, WAIT).await;
    assert_eq!(a.count(), 1, "step a ran once: its hop was done");
    assert_eq!(b.count(), 3, "step b failed twice, then succeeded");
    assert_eq!(c.count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sequence_is_a_triggers_subscriber_by_ref() {
    let (a, b) = (function("a").await, function("b").await);
    let sink = Subscriber::start().await;
    let mut to_flow = trigger("to-flow", "default", "http://unused.invalid/");
    to_flow["spec"]["subscriber"] = reference("flows.knative.dev/v1", "Sequence", "flow");
    let herald = Herald::start(
        "embedded",
        &yaml(&[
            broker("default"),
            to_flow,
            sequence("flow", &[&a, &b], uri(&sink.url("/"))),
        ]),
    )
    .await;
    publish(&herald, "/default/default", "via-trigger").await;
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got[0].id(), "via-trigger");
    assert_eq!(steps(&got[0]), ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parallel_sends_every_event_to_every_branch_and_filters_decide_per_branch() {
    // Branch 0's filter drops (2xx without an event), branch 1's passes the event on,
    // branch 2 has no filter.
    let drop_all = Subscriber::start().await;
    let pass_all = Subscriber::start().await;
    pass_all.set_script(|r| append(r, "filter"));
    let (s0, s1, s2) = (
        function("zero").await,
        function("one").await,
        function("two").await,
    );
    let sink = Subscriber::start().await;
    let parallel = json!({
        "apiVersion": "flows.knative.dev/v1",
        "kind": "Parallel",
        "metadata": { "name": "fan", "namespace": "default" },
        "spec": {
            "channelTemplate": { "apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel" },
            "branches": [
                { "filter": uri(&drop_all.url("/")), "subscriber": uri(&s0.url("/")) },
                { "filter": uri(&pass_all.url("/")), "subscriber": uri(&s1.url("/")) },
                { "subscriber": uri(&s2.url("/")), "delivery": fast_delivery() }
            ],
            "reply": uri(&sink.url("/"))
        }
    });
    let herald = Herald::start("embedded", &yaml(&[parallel])).await;
    publish(&herald, "/flows/parallels/default/fan", "p-1").await;

    sink.wait_for(2, WAIT).await;
    let got = sink.settle(QUIET, WAIT).await;
    let mut seen: Vec<Vec<String>> = got.iter().map(steps).collect();
    seen.sort();
    assert_eq!(seen, [vec!["filter", "one"], vec!["two"]]);
    assert_eq!(drop_all.count(), 1, "branch 0's filter saw the event");
    assert_eq!(s0.count(), 0, "branch 0's filter dropped it");
    let internal = herald_tests::Client::new()
        .post_structured(
            &herald.url("/channels/default/fan-kn-parallel"),
            &herald_tests::fixtures::structured("sneak"),
        )
        .await;
    assert_eq!(
        internal.status,
        404,
        "a flow's internal channel is not served: {}",
        internal.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_reload_adds_a_step_to_a_running_sequence() {
    let (a, b) = (function("a").await, function("b").await);
    let sink = Subscriber::start().await;
    let options = herald_tests::HeraldOptions {
        args: vec!["--config-poll-interval".into(), "100ms".into()],
        ..Default::default()
    };
    let before = yaml(&[sequence("grow", &[&a], uri(&sink.url("/")))]);
    let herald = Herald::start_with("embedded", &before, options).await;
    publish(&herald, "/flows/sequences/default/grow", "one-step").await;
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(steps(&got[0]), ["a"]);

    herald.rewrite_manifests(&yaml(&[sequence("grow", &[&a, &b], uri(&sink.url("/")))]));
    herald_tests::eventually(WAIT, "the edit applied", || async {
        let metrics = herald_tests::Client::new()
            .get(&herald.url("/metrics"))
            .await
            .text();
        metrics
            .lines()
            .any(|l| l.starts_with("herald_config_reloads_total{result=\"applied\"} 1"))
            .then_some(())
    })
    .await;
    publish(&herald, "/flows/sequences/default/grow", "two-steps").await;
    let got = sink.wait_for(2, WAIT).await;
    assert_eq!(got[1].id(), "two-steps");
    assert_eq!(steps(&got[1]), ["a", "b"], "the added step runs");
}
