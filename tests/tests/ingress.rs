//! Ingress status codes and error bodies (the README's HTTP API table), from the outside.

use std::time::Duration;

use bytes::Bytes;
use herald_tests::client::post_chunked;
use herald_tests::fixtures::{binary_body, binary_headers, borrow, structured};
use herald_tests::{Client, Herald, HeraldOptions, Subscriber, manifests};
use http::Method;
use serde_json::json;

async fn herald() -> Herald {
    Herald::start(
        "embedded",
        &manifests::yaml(&[manifests::broker("default")]),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_structured_and_batch_events_are_accepted_with_202() {
    let sub = Subscriber::start().await;
    let herald = Herald::start("embedded", &manifests::one_trigger(&sub.url("/"))).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");

    let r = client
        .post(
            &url,
            &borrow(&binary_headers("bin-1")),
            binary_body("bin-1"),
        )
        .await;
    assert_eq!(r.status, 202, "binary: {}", r.text());
    let r = client.post_structured(&url, &structured("str-1")).await;
    assert_eq!(r.status, 202, "structured: {}", r.text());
    let r = client
        .post_batch(&url, &[structured("batch-1"), structured("batch-2")])
        .await;
    assert_eq!(r.status, 202, "batch: {}", r.text());

    let got = sub.wait_for(4, Duration::from_secs(10)).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, ["batch-1", "batch-2", "bin-1", "str-1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn herald_without_manifests_serves_broker_default_default() {
    let herald = Herald::start("memory", "").await;
    let client = Client::new();
    let r = client
        .post_structured(&herald.broker_url("default", "default"), &structured("x"))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

/// A request that must be refused with 400, and words its error must contain.
struct Bad {
    case: &'static str,
    headers: Vec<(String, String)>,
    body: String,
    expect: &'static [&'static str],
}

fn binary_without(name: &str) -> Vec<(String, String)> {
    binary_headers("b1")
        .into_iter()
        .filter(|(k, _)| k != name)
        .collect()
}

fn binary_plus(name: &str, value: &str) -> Vec<(String, String)> {
    let mut headers = binary_headers("b1");
    headers.push((name.to_owned(), value.to_owned()));
    headers
}

fn binary_replace(name: &str, value: &str) -> Vec<(String, String)> {
    let mut headers = binary_without(name);
    headers.push((name.to_owned(), value.to_owned()));
    headers
}

fn structured_ct() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/cloudevents+json".into())]
}

fn batch_ct() -> Vec<(String, String)> {
    vec![(
        "content-type".into(),
        "application/cloudevents-batch+json".into(),
    )]
}

fn structured_without(name: &str) -> String {
    let mut event = structured("s1");
    event.as_object_mut().unwrap().remove(name);
    event.to_string()
}

fn structured_plus(name: &str, value: serde_json::Value) -> String {
    let mut event = structured("s1");
    event[name] = value;
    event.to_string()
}

fn bad_requests() -> Vec<Bad> {
    let b = || binary_body("b1");
    vec![
        Bad {
            case: "binary without ce-id",
            headers: binary_without("ce-id"),
            body: b(),
            expect: &["id"],
        },
        Bad {
            case: "binary without ce-source",
            headers: binary_without("ce-source"),
            body: b(),
            expect: &["source"],
        },
        Bad {
            case: "binary without ce-type",
            headers: binary_without("ce-type"),
            body: b(),
            expect: &["type"],
        },
        Bad {
            case: "binary without ce-specversion",
            headers: binary_without("ce-specversion"),
            body: b(),
            expect: &["specversion"],
        },
        Bad {
            case: "binary with unknown specversion",
            headers: binary_replace("ce-specversion", "2.0"),
            body: b(),
            expect: &["specversion"],
        },
        Bad {
            case: "binary with a bad time",
            headers: binary_plus("ce-time", "yesterday"),
            body: b(),
            expect: &["time"],
        },
        Bad {
            case: "binary with a bad extension name",
            headers: binary_plus("ce-bad_ext", "x"),
            body: b(),
            expect: &["bad_ext"],
        },
        Bad {
            case: "binary with a source that is no URI-reference",
            headers: binary_replace("ce-source", "a b"),
            body: b(),
            expect: &["source"],
        },
        Bad {
            case: "structured without id",
            headers: structured_ct(),
            body: structured_without("id"),
            expect: &["id"],
        },
        Bad {
            case: "structured without source",
            headers: structured_ct(),
            body: structured_without("source"),
            expect: &["source"],
        },
        Bad {
            case: "structured without type",
            headers: structured_ct(),
            body: structured_without("type"),
            expect: &["type"],
        },
        Bad {
            case: "structured without specversion",
            headers: structured_ct(),
            body: structured_without("specversion"),
            expect: &["specversion"],
        },
        Bad {
            case: "structured with an empty id",
            headers: structured_ct(),
            body: structured_plus("id", json!("")),
            expect: &["id"],
        },
        Bad {
            case: "structured with a bad time",
            headers: structured_ct(),
            body: structured_plus("time", json!("2024-13-45T99:00:00Z")),
            expect: &["time"],
        },
        Bad {
            case: "structured with a bad extension name",
            headers: structured_ct(),
            body: structured_plus("Bad-Ext", json!("x")),
            expect: &["Bad-Ext"],
        },
        Bad {
            case: "structured with an object-valued extension",
            headers: structured_ct(),
            body: structured_plus("nested", json!({"a": 1})),
            expect: &["nested"],
        },
        Bad {
            case: "structured with bad JSON",
            headers: structured_ct(),
            body: "{\"specversion\": \"1.0\", ".into(),
            expect: &["JSON"],
        },
        Bad {
            case: "structured that is not an object",
            headers: structured_ct(),
            body: "[1, 2]".into(),
            expect: &["object"],
        },
        Bad {
            case: "structured with data and data_base64",
            headers: structured_ct(),
            body: structured_plus("data_base64", json!("aGk=")),
            expect: &["data_base64"],
        },
        Bad {
            case: "structured with data_base64 that is not base64",
            headers: structured_ct(),
            body: {
                let mut e = structured("s1");
                e.as_object_mut().unwrap().remove("data");
                e["data_base64"] = json!("***");
                e.to_string()
            },
            expect: &["data_base64"],
        },
        Bad {
            case: "batch with an empty item",
            headers: batch_ct(),
            body: json!([structured("ok"), {}]).to_string(),
            expect: &["1", "specversion"],
        },
        Bad {
            case: "batch with a null item",
            headers: batch_ct(),
            body: json!([structured("ok"), null]).to_string(),
            expect: &["1"],
        },
        Bad {
            case: "batch that is not an array",
            headers: batch_ct(),
            body: structured("ok").to_string(),
            expect: &["array"],
        },
        Bad {
            case: "batch with bad JSON",
            headers: batch_ct(),
            body: "[{".into(),
            expect: &["JSON"],
        },
        Bad {
            case: "no CloudEvent at all",
            headers: vec![("content-type".into(), "application/json".into())],
            body: "{}".into(),
            expect: &["specversion"],
        },
        Bad {
            case: "knativebrokerttl of 0",
            headers: binary_plus("ce-knativebrokerttl", "0"),
            body: b(),
            expect: &["knativebrokerttl"],
        },
        Bad {
            case: "knativebrokerttl that is not a number",
            headers: binary_plus("ce-knativebrokerttl", "many"),
            body: b(),
            expect: &["knativebrokerttl"],
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_events_are_refused_with_400_and_a_json_error_naming_the_problem() {
    let herald = herald().await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let mut failures = Vec::new();
    for bad in bad_requests() {
        let r = client
            .post(&url, &borrow(&bad.headers), bad.body.clone())
            .await;
        if r.status != 400 {
            failures.push(format!(
                "{}: status {} body {:?}",
                bad.case,
                r.status,
                r.text()
            ));
            continue;
        }
        let value: Result<serde_json::Value, _> = serde_json::from_slice(&r.body);
        let Some(error) = value
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
        else {
            failures.push(format!(
                "{}: body is not {{\"error\": ...}}: {:?}",
                bad.case,
                r.text()
            ));
            continue;
        };
        let missing: Vec<_> = bad
            .expect
            .iter()
            .filter(|w| !error.to_lowercase().contains(&w.to_lowercase()))
            .collect();
        if !missing.is_empty() {
            failures.push(format!(
                "{}: error {error:?} does not mention {missing:?}",
                bad.case
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "wrongly answered:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_with_one_invalid_event_stores_none_of_them() {
    let sub = Subscriber::start().await;
    let herald = Herald::start("embedded", &manifests::one_trigger(&sub.url("/"))).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let r = client
        .post_batch(&url, &[structured("first-valid"), json!({"id": "x"})])
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = client.post_structured(&url, &structured("marker")).await;
    assert_eq!(r.status, 202);
    sub.wait_for(1, Duration::from_secs(10)).await;
    let got = sub
        .settle(Duration::from_millis(300), Duration::from_secs(5))
        .await;
    let ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(ids, ["marker"], "a refused batch must store nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_broker_is_404() {
    let herald = herald().await;
    let client = Client::new();
    let r = client
        .post_structured(&herald.broker_url("default", "nope"), &structured("x"))
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = client
        .post_structured(&herald.broker_url("other", "default"), &structured("x"))
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn non_post_methods_on_a_broker_are_405_with_allow() {
    let herald = herald().await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let r = client
            .request(method.clone(), &url, &[], Bytes::new())
            .await;
        assert_eq!(r.status, 405, "{method}: {}", r.text());
        let allow = r.header("allow").unwrap_or_default().to_owned();
        assert!(allow.contains("POST"), "{method}: Allow is {allow:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_max_body_are_413_with_or_without_content_length() {
    let options = HeraldOptions {
        args: vec!["--max-body".into(), "4096".into()],
        ..Default::default()
    };
    let herald = Herald::start_with(
        "embedded",
        &manifests::yaml(&[manifests::broker("default")]),
        options,
    )
    .await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let headers = binary_headers("big");

    let fits = format!("\"{}\"", "a".repeat(3000));
    let r = client.post(&url, &borrow(&headers), fits).await;
    assert_eq!(r.status, 202, "a body under the limit: {}", r.text());

    let big = format!("\"{}\"", "a".repeat(5000));
    let r = client.post(&url, &borrow(&headers), big).await;
    assert_eq!(r.status, 413, "Content-Length over the limit: {}", r.text());

    // Chunked, no Content-Length: 64 MiB that herald must refuse without reading it all.
    let chunk = Bytes::from(vec![b'a'; 1 << 20]);
    let r = post_chunked(&url, &borrow(&headers), vec![chunk; 64]).await;
    assert_eq!(r.status, 413, "chunked over the limit: {}", r.text());

    let chunks = vec![Bytes::from_static(b"\"abc"), Bytes::from_static(b"def\"")];
    let r = post_chunked(&url, &borrow(&headers), chunks).await;
    assert_eq!(r.status, 202, "chunked under the limit: {}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn default_body_limit_is_one_mebibyte() {
    let herald = herald().await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let headers = binary_headers("big");
    let r = client
        .post(&url, &borrow(&headers), vec![b'a'; (1 << 20) + 1])
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn structured_mode_in_an_unsupported_format_is_415() {
    let herald = herald().await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    for ct in [
        "application/cloudevents+xml",
        "application/cloudevents-batch+xml",
    ] {
        let r = client.post(&url, &[("content-type", ct)], "<event/>").await;
        assert_eq!(r.status, 415, "{ct}: {}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn options_answers_the_webhook_abuse_protection_handshake() {
    let herald = herald().await;
    let client = Client::new();
    let r = client
        .request(
            Method::OPTIONS,
            &herald.broker_url("default", "default"),
            &[
                ("webhook-request-origin", "eventemitter.example.com"),
                ("webhook-request-rate", "120"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("webhook-allowed-origin"),
        Some("eventemitter.example.com")
    );
    let rate = r.header("webhook-allowed-rate").unwrap_or_default();
    assert!(!rate.is_empty(), "WebHook-Allowed-Rate missing");
    assert!(r.header("allow").unwrap_or_default().contains("POST"));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_endpoints_answer() {
    let herald = herald().await;
    let client = Client::new();
    assert_eq!(client.get(&herald.url("/healthz")).await.status, 200);
    assert_eq!(client.get(&herald.url("/readyz")).await.status, 200);
    let url = herald.broker_url("default", "default");
    assert_eq!(
        client.post_structured(&url, &structured("m1")).await.status,
        202
    );
    let bad = client
        .post(&url, &[("content-type", "application/json")], "{}")
        .await;
    assert_eq!(bad.status, 400);
    let metrics = client.get(&herald.url("/metrics")).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let accepted = text
        .lines()
        .find(|l| l.starts_with("herald_events_accepted_total{") && l.contains("default/default"))
        .unwrap_or_else(|| panic!("no herald_events_accepted_total for default/default:\n{text}"));
    assert!(accepted.trim_end().ends_with(" 1"), "{accepted}");
    assert!(
        text.contains("herald_events_rejected_total"),
        "no herald_events_rejected_total:\n{text}"
    );
}
