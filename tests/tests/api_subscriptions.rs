//! The CloudEvents Subscriptions API of the real binary: a subscription written as the spec
//! shows one delivers the events its filters match to its sink, and nothing after delete.

use std::time::Duration;

use herald_tests::{Client, Herald, HeraldOptions, Subscriber, fixtures};
use http::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "subscriptions-token-0123456789";

async fn call(
    herald: &Herald,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value, Option<String>) {
    let auth = format!("Bearer {TOKEN}");
    let response = Client::new()
        .request(
            method,
            &herald.url(path),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.map(|b| b.to_string()).unwrap_or_default(),
        )
        .await;
    let location = response.header("location").map(str::to_owned);
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        location,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spec_subscription_delivers_matching_events_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let herald = Herald::start_with(
        "embedded",
        "",
        HeraldOptions {
            args: vec!["--admin-token-file".into(), token.display().to_string()],
            ..HeraldOptions::default()
        },
    )
    .await;
    let sink = Subscriber::start().await;
    let fallback = Subscriber::start().await;
    let subscription = json!({
        "filters": [ { "prefix": { "type": "com.example." } } ],
        "protocol": "HTTP",
        "protocolsettings": { "method": "POST" },
        "sink": sink.url("/"),
    });
    let (status, created, location) =
        call(&herald, Method::POST, "/subscriptions", Some(&subscription)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("/subscriptions/{id}").as_str())
    );
    // A second subscription without filters sees everything: it tells when an event passed.
    let everything = json!({ "protocol": "HTTP", "sink": fallback.url("/") });
    let (status, _, _) = call(&herald, Method::POST, "/subscriptions", Some(&everything)).await;
    assert_eq!(status, 201);

    // Both triggers are running once /readyz names no unsubscribed trigger.
    herald_tests::eventually(WAIT, "both subscriptions subscribed", || async {
        let r = Client::new().get(&herald.url("/readyz")).await;
        let (_, all, _) = call(
            &herald,
            Method::GET,
            "/apis/eventing.knative.dev/v1/triggers",
            None,
        )
        .await;
        let ready = all["items"].as_array()?.iter().all(|t| {
            t["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        });
        (r.status == 200 && ready && all["items"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let broker = herald.broker_url("default", "default");
    let client = Client::new();
    let other = fixtures::structured_with("other-1", "org.other.thing", &json!({}));
    assert_eq!(client.post_structured(&broker, &other).await.status, 202);
    let matching = fixtures::structured_with("match-1", "com.example.created", &json!({}));
    assert_eq!(client.post_structured(&broker, &matching).await.status, 202);
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got[0].id(), "match-1");
    fallback.wait_for(2, WAIT).await;
    assert_eq!(
        sink.requests().len(),
        1,
        "the non-matching event reached the sink"
    );

    let (status, listed, _) = call(&herald, Method::GET, "/subscriptions", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let (status, _, _) = call(
        &herald,
        Method::DELETE,
        &format!("/subscriptions/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(&herald, Method::GET, &format!("/subscriptions/{id}"), None).await;
    assert_eq!(status, 404);
    let after = fixtures::structured_with("match-2", "com.example.created", &json!({}));
    assert_eq!(client.post_structured(&broker, &after).await.status, 202);
    let seen = fallback.wait_for(3, WAIT).await;
    assert!(seen.iter().any(|r| r.id() == "match-2"));
    assert_eq!(
        sink.requests().len(),
        1,
        "the deleted subscription still delivered"
    );
}
