//! Channels and Subscriptions: channel ingress like a broker's, every event to every
//! subscription, replies to a channel, a broker or nowhere, retries and dead letters, and a
//! subscription added by hot reload.

mod channels_common;

use std::time::Duration;

use channels_common::{channel, function, publish, reference, subscription, uri};
use herald_tests::fixtures::{binary_body, binary_headers, borrow, structured};
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::run_cli;
use herald_tests::{Client, Herald, HeraldOptions, Reply, Subscriber, eventually};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_answers_like_a_broker_and_every_subscription_gets_every_event() {
    let (one, two) = (Subscriber::start().await, Subscriber::start().await);
    let manifests = yaml(&[
        channel("InMemoryChannel", "orders"),
        subscription("first", "orders", uri(&one.url("/"))),
        subscription("second", "orders", uri(&two.url("/"))),
    ]);
    let herald = Herald::start("embedded", &manifests).await;
    let url = herald.url("/channels/default/orders");
    let client = Client::new();

    let r = client.post_structured(&url, &structured("s-1")).await;
    assert_eq!(r.status, 202, "structured: {}", r.text());
    let r = client
        .post(&url, &borrow(&binary_headers("b-1")), binary_body("b-1"))
        .await;
    assert_eq!(r.status, 202, "binary: {}", r.text());
    let r = client
        .post_batch(&url, &[structured("batch-1"), structured("batch-2")])
        .await;
    assert_eq!(r.status, 202, "batch: {}", r.text());
    let r = client
        .post_structured(&url, &json!({"id": "no-specversion"}))
        .await;
    assert_eq!(r.status, 400, "an invalid event: {}", r.text());
    let r = client.get(&url).await;
    assert_eq!(r.status, 405, "GET: {}", r.text());
    let r = client
        .post_structured(&herald.url("/channels/default/nowhere"), &structured("x"))
        .await;
    assert_eq!(r.status, 404, "an undefined channel: {}", r.text());
    assert!(
        r.text().contains("/channels/{namespace}/{name}"),
        "{}",
        r.text()
    );

    for s in [&one, &two] {
        s.wait_for(4, WAIT).await;
        let mut ids: Vec<String> = s.settle(QUIET, WAIT).await.iter().map(|r| r.id()).collect();
        ids.sort();
        assert_eq!(ids, ["b-1", "batch-1", "batch-2", "s-1"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_go_to_another_channel_or_a_broker_and_without_reply_are_dropped() {
    let replier = function("r").await;
    let (from_channel, from_broker) = (Subscriber::start().await, Subscriber::start().await);
    let mut to_channel = subscription("to-channel", "in", uri(&replier.url("/")));
    to_channel["spec"]["reply"] = reference("messaging.knative.dev/v1", "Channel", "out");
    let mut to_broker = subscription("to-broker", "in", uri(&replier.url("/")));
    to_broker["spec"]["reply"] = reference("eventing.knative.dev/v1", "Broker", "results");
    // A third subscription's reply has nowhere to go: dropped, as Knative does.
    let dropped = subscription("dropped", "in", uri(&replier.url("/")));
    let mut out = channel("Channel", "out");
    out["spec"]["channelTemplate"] =
        json!({"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"});
    let manifests = yaml(&[
        channel("InMemoryChannel", "in"),
        out,
        broker("results"),
        to_channel,
        to_broker,
        dropped,
        subscription("read-out", "out", uri(&from_channel.url("/"))),
        trigger("read-results", "results", &from_broker.url("/")),
    ]);
    let herald = Herald::start("embedded", &manifests).await;
    publish(&herald, "/channels/default/in", "q-1").await;

    for sink in [&from_channel, &from_broker] {
        sink.wait_for(1, WAIT).await;
        let got = sink.settle(QUIET, WAIT).await;
        assert_eq!(got.len(), 1, "one reply each, the dropped one nowhere");
        assert_eq!(got[0].attr("type").as_deref(), Some("dev.herald.r"));
        assert_eq!(got[0].attr("knativebrokerttl").as_deref(), Some("254"));
    }
    assert_eq!(replier.settle(QUIET, WAIT).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_retries_then_dead_letters_with_the_channels_delivery_as_default() {
    let flaky = Subscriber::start().await;
    flaky.push_n(Reply::status(503), 2);
    let broken = Subscriber::start().await;
    broken.set_script(|_| Reply::status(500).body("broken"));
    let dls = Subscriber::start().await;
    let mut orders = channel("KafkaChannel", "orders");
    orders["spec"] = json!({
        "numPartitions": 3,
        "replicationFactor": 1,
        "delivery": {
            "retry": 2,
            "backoffPolicy": "linear",
            "backoffDelay": "PT0.05S",
            "deadLetterSink": { "uri": dls.url("/dls") }
        }
    });
    let mut flaky_sub = subscription("flaky", "orders", uri(&flaky.url("/")));
    let mut broken_sub = subscription("broken", "orders", uri(&broken.url("/")));
    // No delivery of their own: the channel's applies.
    flaky_sub["spec"]
        .as_object_mut()
        .unwrap()
        .remove("delivery");
    broken_sub["spec"]
        .as_object_mut()
        .unwrap()
        .remove("delivery");
    let herald = Herald::start("embedded", &yaml(&[orders, flaky_sub, broken_sub])).await;
    publish(&herald, "/channels/default/orders", "d-1").await;

    let dead = dls.wait_for(1, WAIT).await;
    assert_eq!(dead[0].id(), "d-1");
    assert_eq!(dead[0].attr("knativeerrorcode").as_deref(), Some("500"));
    assert_eq!(
        broken.settle(QUIET, WAIT).await.len(),
        3,
        "1 attempt + 2 retries"
    );
    let got = flaky.settle(QUIET, WAIT).await;
    assert_eq!(got.len(), 3, "two 503s, then delivered");
    assert_eq!(
        dls.settle(QUIET, WAIT).await.len(),
        1,
        "only the broken one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_reload_adds_a_subscription() {
    let sink = Subscriber::start().await;
    let before = yaml(&[channel("InMemoryChannel", "live")]);
    let options = HeraldOptions {
        args: vec!["--config-poll-interval".into(), "100ms".into()],
        ..Default::default()
    };
    let herald = Herald::start_with("embedded", &before, options).await;
    publish(&herald, "/channels/default/live", "before").await;
    let after = yaml(&[
        channel("InMemoryChannel", "live"),
        subscription("added", "live", uri(&sink.url("/"))),
    ]);
    herald.rewrite_manifests(&after);
    eventually(WAIT, "the edit applied", || async {
        let metrics = Client::new().get(&herald.url("/metrics")).await.text();
        metrics
            .lines()
            .any(|l| l.starts_with("herald_config_reloads_total{result=\"applied\"} 1"))
            .then_some(())
    })
    .await;
    publish(&herald, "/channels/default/live", "after").await;
    sink.wait_for(1, WAIT).await;
    let ids: Vec<String> = sink
        .settle(QUIET, WAIT)
        .await
        .iter()
        .map(|r| r.id())
        .collect();
    assert_eq!(
        ids,
        ["after"],
        "a new subscription starts at the latest event"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriptions_parked_event_is_listed_and_redriven_to_that_subscription_only() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-admin-token-for-tests\n").unwrap();
    let token = token_file.to_string_lossy().into_owned();
    let (failing, other) = (Subscriber::start().await, Subscriber::start().await);
    // A 400 is not retried: the event is parked at once (no dead-letter sink).
    failing.set_script(|_| Reply::status(400));
    let options = HeraldOptions {
        args: vec!["--admin-token-file".into(), token.clone()],
        ..Default::default()
    };
    let manifests = yaml(&[
        channel("InMemoryChannel", "orders"),
        subscription("failing", "orders", uri(&failing.url("/"))),
        subscription("other", "orders", uri(&other.url("/"))),
    ]);
    let herald = Herald::start_with("embedded", &manifests, options).await;
    publish(&herald, "/channels/default/orders", "poison").await;
    eventually(WAIT, "the event parked", || async {
        let metrics = Client::new().get(&herald.url("/metrics")).await.text();
        metrics
            .lines()
            .any(|l| {
                l.starts_with(
                    "herald_parked_events_total{trigger=\"subscriptions/default/failing\"} 1",
                )
            })
            .then_some(())
    })
    .await;
    let url = herald.url("");
    let cli = |action: &[&str]| {
        let mut args: Vec<String> = vec!["parked".into()];
        args.extend(action.iter().map(|a| a.to_string()));
        args.extend(
            [
                "--subscription",
                "default/failing",
                "--url",
                &url,
                "--admin-token-file",
                &token,
            ]
            .map(String::from),
        );
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run_cli(&refs, Duration::from_secs(30)).await;
            assert!(out.status.success(), "herald {args:?}: {}", out.stderr);
            out.stdout
        }
    };
    let listed = cli(&["list"]).await;
    assert!(listed.contains("poison"), "{listed}");
    failing.set_script(|_| Reply::status(200));
    assert_eq!(cli(&["redrive", "--all"]).await.trim(), "poison");
    eventually(WAIT, "the redriven event", || async {
        (failing.count() == 2).then_some(())
    })
    .await;
    let others = other.settle(QUIET, WAIT).await;
    assert_eq!(
        others.len(),
        1,
        "the redrive reached the parked subscription only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_its_uri_refuses_goes_to_the_dead_letter_sink_and_is_not_lost() {
    let replier = function("r").await;
    let refusing = Subscriber::start().await;
    refusing.set_script(|_| Reply::status(500));
    let dls = Subscriber::start().await;
    let mut sub = subscription("replies", "in", uri(&replier.url("/")));
    sub["spec"]["reply"] = uri(&refusing.url("/reply"));
    sub["spec"]["delivery"]["retry"] = json!(1);
    sub["spec"]["delivery"]["deadLetterSink"] = uri(&dls.url("/dls"));
    let herald = Herald::start("embedded", &yaml(&[channel("InMemoryChannel", "in"), sub])).await;
    publish(&herald, "/channels/default/in", "x-1").await;

    let dead = dls.wait_for(1, WAIT).await;
    assert_eq!(
        dead[0].attr("type").as_deref(),
        Some("dev.herald.r"),
        "the reply, not the event"
    );
    assert_eq!(
        dead[0].attr("knativeerrordest"),
        Some(refusing.url("/reply")),
        "names the reply destination"
    );
    assert_eq!(
        refusing.settle(QUIET, WAIT).await.len(),
        2,
        "1 attempt + 1 retry"
    );
    assert_eq!(replier.count(), 1, "the delivery itself succeeded once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_is_paused_and_resumed_by_command_keeping_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-admin-token-for-tests\n").unwrap();
    let token = token_file.to_string_lossy().into_owned();
    let sink = Subscriber::start().await;
    let options = HeraldOptions {
        args: vec!["--admin-token-file".into(), token.clone()],
        ..Default::default()
    };
    let manifests = yaml(&[
        channel("InMemoryChannel", "orders"),
        subscription("held", "orders", uri(&sink.url("/"))),
    ]);
    let herald = Herald::start_with("embedded", &manifests, options).await;
    let url = herald.url("");
    let command = |verb: &str| {
        let args: Vec<String> = [verb, "subscription", "default/held", "--url", &url]
            .into_iter()
            .chain(["--admin-token-file", &token])
            .map(String::from)
            .collect();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run_cli(&refs, Duration::from_secs(30)).await;
            assert!(out.status.success(), "herald {args:?}: {}", out.stderr);
            out.stdout
        }
    };
    assert_eq!(
        command("pause").await.trim(),
        "subscription default/held paused"
    );
    publish(&herald, "/channels/default/orders", "held-1").await;
    assert!(
        sink.settle(QUIET, WAIT).await.is_empty(),
        "nothing is delivered while paused"
    );
    assert_eq!(
        command("resume").await.trim(),
        "subscription default/held resumed"
    );
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].id(),
        "held-1",
        "the event waited for the subscription"
    );
}
