//! What arrives is what was published: typed extensions, spec version 0.3, text and binary
//! data, across binary and structured mode in both directions.

use std::time::Duration;

use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, Recorded, Subscriber};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// Trigger `bin` (binary delivery) to `/bin` and `json` (structured) to `/json`.
async fn both_modes(sub: &Subscriber) -> Herald {
    let bin = trigger("bin", "default", &sub.url("/bin"));
    let mut structured = trigger("json", "default", &sub.url("/json"));
    structured["spec"]["delivery"]["format"] = json!("json");
    Herald::start("embedded", &yaml(&[broker("default"), bin, structured])).await
}

fn by_path<'a>(got: &'a [Recorded], path: &str) -> &'a Recorded {
    got.iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("nothing delivered to {path}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_extensions_survive_in_both_delivery_modes() {
    let sub = Subscriber::start().await;
    let herald = both_modes(&sub).await;
    let event = json!({
        "specversion": "1.0", "id": "typed", "source": "/s", "type": "t",
        "flag": true, "count": 42, "word": "café",
        "datacontenttype": "application/json", "data": {"a": [1, 2]}
    });
    let r = Client::new()
        .post_structured(&herald.broker_url("default", "default"), &event)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = sub.wait_for(2, WAIT).await;

    let bin = by_path(&got, "/bin");
    assert_eq!(bin.attr("flag").as_deref(), Some("true"));
    assert_eq!(bin.attr("count").as_deref(), Some("42"));
    assert_eq!(bin.attr("word").as_deref(), Some("café"));
    let raw = bin.headers.get("ce-word").expect("ce-word");
    assert!(
        raw.as_bytes().is_ascii(),
        "non-ASCII header values are percent-encoded, got {raw:?}"
    );
    assert_eq!(bin.json(), json!({"a": [1, 2]}));

    let body = by_path(&got, "/json").json();
    assert_eq!(body["flag"], json!(true), "{body}");
    assert_eq!(body["count"], json!(42), "{body}");
    assert_eq!(body["word"], json!("café"));
    assert_eq!(body["data"], json!({"a": [1, 2]}));
}

#[tokio::test(flavor = "multi_thread")]
async fn text_and_base64_data_round_trip() {
    let sub = Subscriber::start().await;
    let herald = both_modes(&sub).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let text = json!({
        "specversion": "1.0", "id": "text", "source": "/s", "type": "t",
        "datacontenttype": "text/plain", "data": "hello, world"
    });
    let raw = json!({
        "specversion": "1.0", "id": "raw", "source": "/s", "type": "t",
        "datacontenttype": "application/octet-stream", "data_base64": "AAEC/w=="
    });
    for e in [&text, &raw] {
        assert_eq!(client.post_structured(&url, e).await.status, 202);
    }
    let got = sub.wait_for(4, WAIT).await;
    let find = |path: &str, id: &str| {
        got.iter()
            .find(|r| r.path == path && r.id() == id)
            .unwrap_or_else(|| panic!("{id} not delivered to {path}"))
            .clone()
    };
    let t = find("/bin", "text");
    assert_eq!(t.body.as_ref(), b"hello, world");
    assert_eq!(t.header("content-type").as_deref(), Some("text/plain"));
    let r = find("/bin", "raw");
    assert_eq!(r.body.as_ref(), &[0u8, 1, 2, 255]);
    assert_eq!(find("/json", "text").json()["data"], json!("hello, world"));
    let raw_json = find("/json", "raw").json();
    assert_eq!(raw_json["data_base64"], json!("AAEC/w=="), "{raw_json}");
}

#[tokio::test(flavor = "multi_thread")]
async fn spec_version_0_3_is_accepted_and_delivered() {
    let sub = Subscriber::start().await;
    let herald = both_modes(&sub).await;
    let headers = [
        ("ce-specversion", "0.3"),
        ("ce-id", "v03"),
        ("ce-source", "/old"),
        ("ce-type", "t"),
        ("ce-schemaurl", "https://example.com/schema"),
        ("content-type", "application/json"),
    ];
    let r = Client::new()
        .post(
            &herald.broker_url("default", "default"),
            &headers,
            "{\"v\":3}",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = sub.wait_for(2, WAIT).await;
    let bin = by_path(&got, "/bin");
    assert_eq!(bin.attr("specversion").as_deref(), Some("0.3"));
    assert_eq!(
        bin.attr("schemaurl").as_deref(),
        Some("https://example.com/schema")
    );
    assert_eq!(bin.json(), json!({"v": 3}));
    let body = by_path(&got, "/json").json();
    assert_eq!(body["specversion"], "0.3");
}

#[tokio::test(flavor = "multi_thread")]
async fn structured_content_type_parameters_and_case_are_accepted() {
    let herald = Herald::start("embedded", &yaml(&[broker("default")])).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let event = herald_tests::fixtures::structured("ct").to_string();
    for ct in [
        "application/cloudevents+json; charset=utf-8",
        "Application/CloudEvents+JSON",
    ] {
        let r = client
            .post(&url, &[("content-type", ct)], event.clone())
            .await;
        assert_eq!(r.status, 202, "{ct}: {}", r.text());
    }
}
