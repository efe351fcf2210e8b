//! Reply events: a 200/201 answer carrying a CloudEvent is published back to the broker,
//! and the `knativebrokerttl` loop guard stops endless reply loops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use herald_tests::fixtures::{binary_headers, borrow, structured_with};
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, Reply, Subscriber};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// Trigger `requests` (type `req`) to `replier`, trigger `replies` (type `dev.herald.reply`)
/// to `sink`.
fn two_triggers(replier: &Subscriber, sink: &Subscriber) -> String {
    let mut requests = trigger("requests", "default", &replier.url("/"));
    requests["spec"]["filter"] = json!({"attributes": {"type": "req"}});
    let mut replies = trigger("replies", "default", &sink.url("/"));
    replies["spec"]["filter"] = json!({"attributes": {"type": "dev.herald.reply"}});
    yaml(&[broker("default"), requests, replies])
}

async fn publish_request(herald: &Herald, id: &str) {
    let r = Client::new()
        .post_structured(
            &herald.broker_url("default", "default"),
            &structured_with(id, "req", &json!({})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binary_reply_is_published_to_the_broker_and_reaches_another_trigger() {
    let replier = Subscriber::start().await;
    let sink = Subscriber::start().await;
    replier.push(Reply::binary_event(
        "reply-1",
        "dev.herald.reply",
        "/replier",
        &json!({"ok": true}),
    ));
    let herald = Herald::start("embedded", &two_triggers(&replier, &sink)).await;
    publish_request(&herald, "req-1").await;

    let got = sink.wait_for(1, WAIT).await;
    let reply = &got[0];
    assert_eq!(reply.id(), "reply-1");
    assert_eq!(reply.attr("source").as_deref(), Some("/replier"));
    assert_eq!(reply.json(), json!({"ok": true}));
    assert_eq!(
        reply.attr("knativebrokerttl").as_deref(),
        Some("254"),
        "one hop from the default 255"
    );
    assert!(reply.attr("knativearrivaltime").is_some());
    let requests = replier
        .settle(Duration::from_millis(300), Duration::from_secs(5))
        .await;
    assert_eq!(requests.len(), 1, "the replier saw only the request");
    assert_eq!(requests[0].attr("knativebrokerttl").as_deref(), Some("255"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_structured_reply_is_published_to_the_broker_too() {
    let replier = Subscriber::start().await;
    let sink = Subscriber::start().await;
    replier.push(Reply::structured_event(&json!({
        "specversion": "1.0",
        "id": "reply-s",
        "type": "dev.herald.reply",
        "source": "/replier",
        "myext": "carried",
        "datacontenttype": "application/json",
        "data": {"n": 1}
    })));
    let herald = Herald::start("embedded", &two_triggers(&replier, &sink)).await;
    publish_request(&herald, "req-s").await;
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got[0].id(), "reply-s");
    assert_eq!(got[0].attr("myext").as_deref(), Some("carried"));
    assert_eq!(got[0].json(), json!({"n": 1}));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_200_and_201_answers_are_replies() {
    let replier = Subscriber::start().await;
    let sink = Subscriber::start().await;
    let reply = |status: u16, id: &str| {
        let mut r = Reply::binary_event(id, "dev.herald.reply", "/replier", &json!({}));
        r.status = status;
        r
    };
    replier.set_script(move |r| match r.id().as_str() {
        "a" => reply(201, "reply-201"),
        "b" => reply(202, "reply-202"),
        "c" => reply(204, "reply-204").body(""),
        _ => Reply::status(200),
    });
    let herald = Herald::start("embedded", &two_triggers(&replier, &sink)).await;
    for id in ["a", "b", "c"] {
        publish_request(&herald, id).await;
    }
    sink.wait_for(1, WAIT).await;
    replier.wait_for(3, WAIT).await;
    let got = sink
        .settle(Duration::from_millis(400), Duration::from_secs(5))
        .await;
    let ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(ids, ["reply-201"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ttl_loop_guard_stops_a_reply_loop_after_the_allowed_hops() {
    let looper = Subscriber::start().await;
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    looper.set_script(move |_| {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        Reply::binary_event(&format!("loop-{i}"), "loop", "/looper", &json!({"i": i}))
    });
    let mut t = trigger("loop", "default", &looper.url("/"));
    t["spec"]["filter"] = json!({"attributes": {"type": "loop"}});
    let herald = Herald::start("embedded", &yaml(&[broker("default"), t])).await;
    let mut headers = binary_headers("origin");
    for (k, v) in headers.iter_mut() {
        if k == "ce-type" {
            *v = "loop".into();
        }
    }
    headers.push(("ce-knativebrokerttl".into(), "3".into()));
    let r = Client::new()
        .post(
            &herald.broker_url("default", "default"),
            &borrow(&headers),
            "{}",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());

    looper.wait_for(3, WAIT).await;
    let got = looper
        .settle(Duration::from_millis(500), Duration::from_secs(5))
        .await;
    let hops: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.id(), r.attr("knativebrokerttl").unwrap_or_default()))
        .collect();
    assert_eq!(
        hops,
        [
            ("origin".to_owned(), "3".to_owned()),
            ("loop-0".to_owned(), "2".to_owned()),
            ("loop-1".to_owned(), "1".to_owned()),
        ],
        "ttl 3 allows exactly 3 deliveries; the reply to the last is dropped"
    );
    let metrics = Client::new().get(&herald.url("/metrics")).await.text();
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("herald_ttl_dropped_total"))
        .unwrap_or_else(|| panic!("no herald_ttl_dropped_total:\n{metrics}"));
    assert!(dropped.ends_with(" 1"), "{dropped}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_cannot_raise_its_own_ttl() {
    let looper = Subscriber::start().await;
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    looper.set_script(move |_| {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        Reply::binary_event(&format!("loop-{i}"), "loop", "/looper", &json!({"i": i}))
            .header("ce-knativebrokerttl", "255")
    });
    let mut t = trigger("loop", "default", &looper.url("/"));
    t["spec"]["filter"] = json!({"attributes": {"type": "loop"}});
    let herald = Herald::start("embedded", &yaml(&[broker("default"), t])).await;
    let mut headers = binary_headers("origin");
    for (k, v) in headers.iter_mut() {
        if k == "ce-type" {
            *v = "loop".into();
        }
    }
    headers.push(("ce-knativebrokerttl".into(), "2".into()));
    let r = Client::new()
        .post(
            &herald.broker_url("default", "default"),
            &borrow(&headers),
            "{}",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    looper.wait_for(2, WAIT).await;
    let got = looper
        .settle(Duration::from_millis(500), Duration::from_secs(5))
        .await;
    assert_eq!(
        got.len(),
        2,
        "ttl 2 allows 2 deliveries even if replies claim ttl 255"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_reply_is_ignored_and_the_event_counts_as_delivered() {
    let replier = Subscriber::start().await;
    let sink = Subscriber::start().await;
    // ce-specversion says "reply", but the event has no id.
    replier.push(
        Reply::status(200)
            .header("ce-specversion", "1.0")
            .header("ce-type", "dev.herald.reply")
            .header("ce-source", "/replier"),
    );
    let herald = Herald::start("embedded", &two_triggers(&replier, &sink)).await;
    publish_request(&herald, "req-bad-reply").await;
    replier.wait_for(1, WAIT).await;
    let got = replier
        .settle(Duration::from_millis(400), Duration::from_secs(5))
        .await;
    assert_eq!(
        got.len(),
        1,
        "a 200 is a delivery even if its reply is invalid"
    );
    assert_eq!(sink.count(), 0, "the invalid reply is not published");
}
