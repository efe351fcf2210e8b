//! Hostile subscribers and poison events (issue 9, delivery rows): replies cannot amplify,
//! poison events are parked instead of blocking their key or the window, readiness names
//! unsubscribed triggers and a deleted NATS consumer is re-created. `herald parked` is in
//! `hostile_delivery_parked.rs`.

mod delivery_common;

use std::time::Duration;

use delivery_common::*;
use herald_tests::fixtures::structured_with;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::replicas::metric;
use herald_tests::{Client, Herald, Reply, Subscriber, eventually};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_reply_is_refused_so_one_event_is_one_delivery() {
    let sub = Subscriber::start().await;
    let batch = json!([
        {"specversion": "1.0", "id": "r1", "source": "/loop", "type": "amplify"},
        {"specversion": "1.0", "id": "r2", "source": "/loop", "type": "amplify"}
    ]);
    sub.set_script(move |_| {
        Reply::status(200)
            .header("content-type", "application/cloudevents-batch+json")
            .body(batch.to_string())
    });
    let herald = Herald::start(
        "embedded",
        &yaml(&[broker("default"), trigger("t", "default", &sub.url("/"))]),
    )
    .await;
    publish(&herald, "seed", "amplify").await;
    wait_metric(
        &herald,
        "herald_replies_rejected_total{trigger=\"default/t\",reason=\"batch\"}",
        1,
    )
    .await;
    let got = sub
        .settle(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    assert_eq!(
        got.len(),
        1,
        "exactly one delivery: {:?}",
        got.iter().map(|r| r.id()).collect::<Vec<_>>()
    );
    assert_eq!(
        metric(
            &herald,
            "herald_deliveries_total{trigger=\"default/t\",outcome=\"delivered\"}"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ordered_trigger_parks_a_poison_event_and_delivers_the_rest_of_its_key() {
    let sub = Subscriber::start().await;
    refuse_poison(&sub);
    let mut t = no_retry_trigger("ordered", &sub.url("/"));
    t["metadata"]["annotations"] = json!({"kafka.eventing.knative.dev/delivery.order": "ordered"});
    let herald = Herald::start("embedded", &yaml(&[broker("default"), t])).await;
    // No partitionkey: all three share the one empty key.
    for id in ["poison-1", "after-1", "after-2"] {
        publish(&herald, id, "t").await;
    }
    let got = sub.wait_for(3, WAIT).await;
    let ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        ["poison-1", "after-1", "after-2"],
        "in order, nothing blocked"
    );
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/ordered\"}",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_window_of_poison_events_does_not_stop_an_unordered_trigger() {
    let sub = Subscriber::start().await;
    refuse_poison(&sub);
    let herald = Herald::start(
        "embedded",
        &yaml(&[broker("default"), no_retry_trigger("t", &sub.url("/"))]),
    )
    .await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let poison: Vec<Value> = (0..300)
        .map(|n| structured_with(&format!("poison-{n}"), "t", &json!({})))
        .collect();
    for chunk in poison.chunks(100) {
        let r = client.post_batch(&url, chunk).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    for n in 0..5 {
        publish(&herald, &format!("good-{n}"), "t").await;
    }
    eventually(WAIT, "the good events", || async {
        let good = sub
            .requests()
            .iter()
            .filter(|r| r.id().starts_with("good-"))
            .count();
        (good == 5).then_some(())
    })
    .await;
    wait_metric(
        &herald,
        "herald_parked_events_total{trigger=\"default/t\"}",
        300,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_admin_token_there_is_no_admin_endpoint() {
    let sub = Subscriber::start().await;
    let herald = Herald::start(
        "embedded",
        &yaml(&[broker("default"), no_retry_trigger("t1", &sub.url("/"))]),
    )
    .await;
    let r = Client::new()
        .get(&herald.url("/admin/triggers/default/t1/parked"))
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_names_no_trigger_once_all_are_subscribed() {
    let sub = Subscriber::start().await;
    let herald = Herald::start(
        "embedded",
        &yaml(&[broker("default"), no_retry_trigger("t1", &sub.url("/"))]),
    )
    .await;
    let r = Client::new().get(&herald.url("/readyz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        metric(&herald, "herald_trigger_subscribed{trigger=\"default/t1\"}").await,
        2,
        "its topic and its redrive topic"
    );
}

/// Deletes JetStream consumer `consumer` of `stream` with the raw NATS protocol (`$JS.API`).
async fn delete_nats_consumer(url: &str, stream: &str, consumer: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let addr = url.trim_start_matches("nats://");
    let stream_io = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to nats");
    let (read, mut write) = stream_io.into_split();
    let mut lines = BufReader::new(read).lines();
    let info = lines.next_line().await.unwrap().unwrap_or_default();
    assert!(info.starts_with("INFO"), "{info}");
    let subject = format!("$JS.API.CONSUMER.DELETE.{stream}.{consumer}");
    let commands = format!(
        "CONNECT {{\"verbose\":false,\"headers\":false}}\r\nSUB _INBOX.del 1\r\nPUB {subject} _INBOX.del 0\r\n\r\n"
    );
    write.write_all(commands.as_bytes()).await.unwrap();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("an answer from nats")
            .unwrap()
            .unwrap_or_default();
        if line.starts_with("PING") {
            write.write_all(b"PONG\r\n").await.unwrap();
        } else if line.starts_with("MSG") {
            return lines.next_line().await.unwrap().unwrap_or_default();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nats_consumer_deleted_under_a_trigger_is_recreated() {
    let nats = tokio::task::spawn_blocking(herald_buses::nats::testing::NatsServer::start)
        .await
        .unwrap();
    let sub = Subscriber::start().await;
    let herald = Herald::start(
        &nats.url(),
        &yaml(&[broker("default"), no_retry_trigger("t", &sub.url("/"))]),
    )
    .await;
    publish(&herald, "before", "t").await;
    sub.wait_for(1, WAIT).await;
    let answer = delete_nats_consumer(
        &nats.url(),
        "knative-broker-default-default",
        "knative-trigger-default-t",
    )
    .await;
    assert!(answer.contains("\"success\":true"), "{answer}");
    // The dispatcher gives up on the dead subscription and subscribes again, which re-creates
    // the consumer (at the end of the stream: what was published meanwhile is not its own).
    wait_metric(
        &herald,
        "herald_task_restarts_total{task=\"trigger default/t\"}",
        1,
    )
    .await;
    eventually(Duration::from_secs(60), "ready again", || async {
        let r = Client::new().get(&herald.url("/readyz")).await;
        (r.status == 200).then_some(())
    })
    .await;
    publish(&herald, "after", "t").await;
    eventually(
        WAIT,
        "the event published after the re-creation",
        || async { (ids_of(&sub, "after") == 1).then_some(()) },
    )
    .await;
}
