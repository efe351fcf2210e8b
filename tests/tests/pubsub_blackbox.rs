//! Herald on Google Cloud Pub/Sub (the official emulator, one per test): two replicas sharing a
//! trigger's subscription with one killed (-9) while holding events; ingress answering `503` +
//! `Retry-After` while the emulator is frozen; a `CloudPubSubSource` reading a topic that an
//! independent client (`curl` against the emulator's REST API) publishes to, with attributes
//! and an ordering key, compared field by field with the documented mapping. Needs the emulator
//! (`scripts/ensure-pubsub-emulator`); fails, never skips, without it.

use std::process::Command;
use std::time::Duration;

use herald_buses::pubsub::testing::PubsubEmulator;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::replicas::{AfterKill, two_replicas_share_a_trigger_and_lose_nothing};
use herald_tests::{Client, Herald, HeraldOptions, Subscriber, eventually};
use serde_json::{Value, json};

const PROJECT: &str = "herald-test";

async fn emulator() -> PubsubEmulator {
    tokio::task::spawn_blocking(PubsubEmulator::start)
        .await
        .unwrap()
}

fn options(emulator: &PubsubEmulator) -> HeraldOptions {
    HeraldOptions {
        env: vec![("PUBSUB_EMULATOR_HOST".into(), emulator.host())],
        ..Default::default()
    }
}

/// `curl` against the emulator's REST API: an independent Pub/Sub client.
fn curl(emulator: &PubsubEmulator, method: &str, path: &str, body: &Value) -> Value {
    let url = format!("http://{}/v1/projects/{PROJECT}/{path}", emulator.host());
    let out = Command::new("curl")
        .args(["-sS", "-X", method, "-H", "content-type: application/json"])
        .args(["--data-binary", &body.to_string(), &url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {url}: {:?}", out);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_a_trigger_and_a_killed_one_loses_nothing() {
    let emulator = emulator().await;
    let bus = format!("pubsub://{PROJECT}");
    two_replicas_share_a_trigger_and_lose_nothing(
        &bus,
        || options(&emulator),
        AfterKill::StaysDown,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_answers_503_with_retry_after_while_pubsub_is_frozen() {
    let emulator = emulator().await;
    let sub = Subscriber::start().await;
    let manifests = yaml(&[broker("default"), trigger("t1", "default", &sub.url("/"))]);
    let herald = Herald::start_with(
        &format!("pubsub://{PROJECT}"),
        &manifests,
        options(&emulator),
    )
    .await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let event = |id: &str| json!({"specversion": "1.0", "id": id, "source": "/t", "type": "t", "data": {"n": 1}});
    assert_eq!(
        client.post_structured(&url, &event("before")).await.status,
        202
    );
    sub.wait_for(1, Duration::from_secs(30)).await;

    emulator.pause();
    let frozen = client.post_structured(&url, &event("frozen")).await;
    emulator.resume();
    assert_eq!(frozen.status, 503, "{}", frozen.text());
    assert!(frozen.header("retry-after").is_some(), "Retry-After is set");

    assert_eq!(
        client.post_structured(&url, &event("after")).await.status,
        202
    );
    // "frozen" may arrive too: its request sat in the frozen emulator's socket and was
    // stored once it thawed. A 503 promises nothing either way; the sender's retry makes it
    // at-least-once, as on every bus.
    eventually(
        Duration::from_secs(30),
        "the event accepted after the thaw",
        || async {
            sub.requests()
                .iter()
                .any(|r| r.id() == "after")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloud_pubsub_source_emits_knatives_message_published_events() {
    let emulator = emulator().await;
    let sub = Subscriber::start().await;
    curl(&emulator, "PUT", "topics/orders", &json!({}));
    let source = json!({
        "apiVersion": "events.cloud.google.com/v1",
        "kind": "CloudPubSubSource",
        "metadata": {"name": "orders-src", "namespace": "default"},
        "spec": {
            "topic": "orders",
            "project": PROJECT,
            "sink": {"uri": sub.url("/")},
            "ceOverrides": {"extensions": {"team": "billing"}},
        },
    });
    let _herald = Herald::start_with("memory", &yaml(&[source]), options(&emulator)).await;
    // Herald creates its subscription on the topic; messages published from then on reach it.
    eventually(
        Duration::from_secs(30),
        "the source's subscription",
        || async {
            let answer = curl(
                &emulator,
                "GET",
                "subscriptions/herald-source-default-orders-src",
                &Value::Null,
            );
            answer["topic"].is_string().then_some(())
        },
    )
    .await;
    let published = curl(
        &emulator,
        "POST",
        "topics/orders:publish",
        &json!({"messages": [
            {"data": "aGVsbG8=", "attributes": {"color": "red", "Odd-Name#": "x"}, "orderingKey": "customer-1"},
            {"data": "d29ybGQ=", "orderingKey": "customer-1"},
        ]}),
    );
    let ids: Vec<String> = published["messageIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let got = sub.wait_for(2, Duration::from_secs(30)).await;
    let first = got
        .iter()
        .find(|r| r.id() == ids[0])
        .expect("first message's event");
    assert_eq!(first.attr("specversion").as_deref(), Some("1.0"));
    assert_eq!(
        first.attr("type").as_deref(),
        Some("google.cloud.pubsub.topic.v1.messagePublished")
    );
    assert_eq!(
        first.attr("source").as_deref(),
        Some(format!("//pubsub.googleapis.com/projects/{PROJECT}/topics/orders").as_str())
    );
    assert_eq!(
        first.attr("dataschema").as_deref(),
        Some(
            "https://raw.githubusercontent.com/googleapis/google-cloudevents/master/proto/google/events/cloud/pubsub/v1/data.proto"
        )
    );
    assert_eq!(first.attr("team").as_deref(), Some("billing"));
    assert!(first.attr("color").is_none(), "attributes stay in the data");
    let data: Value = if first.is_structured() {
        first.json()["data"].clone()
    } else {
        serde_json::from_slice(&first.body).unwrap()
    };
    let message = &data["message"];
    assert_eq!(data["subscription"], "herald-source-default-orders-src");
    assert_eq!(message["messageId"], ids[0].as_str());
    assert_eq!(message["data"], "aGVsbG8=");
    assert_eq!(
        message["attributes"],
        json!({"color": "red", "Odd-Name#": "x"})
    );
    assert_eq!(message["orderingKey"], "customer-1");
    assert_eq!(
        first
            .attr("time")
            .map(|t| chrono::DateTime::parse_from_rfc3339(&t).unwrap()),
        Some(
            chrono::DateTime::parse_from_rfc3339(message["publishTime"].as_str().unwrap()).unwrap()
        ),
        "time is the publish time"
    );
    // Ordered by key: the second message of customer-1 arrives after the first.
    let order: Vec<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(order, ids, "one ordering key's messages in publish order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloud_pubsub_source_feeds_a_herald_broker_whose_trigger_delivers_every_message() {
    let emulator = emulator().await;
    let sub = Subscriber::start().await;
    curl(&emulator, "PUT", "topics/payments", &json!({}));
    let source = json!({
        "apiVersion": "events.cloud.google.com/v1",
        "kind": "CloudPubSubSource",
        "metadata": {"name": "payments", "namespace": "default"},
        "spec": {
            "topic": "payments",
            "project": PROJECT,
            "sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}},
        },
    });
    let manifests = yaml(&[
        broker("default"),
        trigger("all", "default", &sub.url("/")),
        source,
    ]);
    // The embedded bus: the source's events are durable on the broker before Pub/Sub's ack.
    let _herald = Herald::start_with("embedded", &manifests, options(&emulator)).await;
    eventually(
        Duration::from_secs(30),
        "the source's subscription",
        || async {
            let answer = curl(
                &emulator,
                "GET",
                "subscriptions/herald-source-default-payments",
                &Value::Null,
            );
            answer["topic"].is_string().then_some(())
        },
    )
    .await;
    let messages: Vec<Value> = (0..20)
        .map(|n| json!({"data": "e30=", "attributes": {"n": n.to_string()}}))
        .collect();
    let published = curl(
        &emulator,
        "POST",
        "topics/payments:publish",
        &json!({ "messages": messages }),
    );
    let mut want: Vec<String> = published["messageIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let got = sub.wait_for(20, Duration::from_secs(30)).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    ids.dedup();
    want.sort();
    assert_eq!(ids, want, "every message reached the trigger's subscriber");
    assert!(got.iter().all(
        |r| r.attr("type").as_deref() == Some("google.cloud.pubsub.topic.v1.messagePublished")
    ));
}
