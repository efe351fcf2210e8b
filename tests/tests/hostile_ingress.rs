//! Hostile publishers against the built binary: attribute limits, control characters, the
//! loop-guard TTL, and metric labels taken from request paths (issue 9, items 1 and 7).

use std::time::Duration;

use herald_tests::fixtures::{binary_body, binary_headers, borrow, structured};
use herald_tests::{Client, Herald, Reply, Subscriber, manifests};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Herald on the embedded bus with broker `default` and one trigger to `sub`.
async fn herald_with(sub: &Subscriber) -> Herald {
    Herald::start("embedded", &manifests::one_trigger(&sub.url("/"))).await
}

/// A structured event with `n` string extensions `x0..`.
fn with_extensions(id: &str, n: usize) -> Value {
    let mut event = structured(id);
    for i in 0..n {
        event[format!("x{i}")] = json!("v");
    }
    event
}

/// Asserts a 400 whose error message contains every one of `words`.
fn assert_400(response: &herald_tests::Response, words: &[&str], case: &str) {
    assert_eq!(response.status, 400, "{case}: {}", response.text());
    let error = response.error();
    for word in words {
        assert!(
            error.contains(word),
            "{case}: {error:?} should name {word:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_over_the_extension_limit_are_400_and_the_trigger_keeps_delivering() {
    let sub = Subscriber::start().await;
    let herald = herald_with(&sub).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");

    // The issue's row: ≈ 850 KB, under --max-body, and more extensions than a u16 counts.
    let huge = with_extensions("huge", 66_000);
    let body = huge.to_string();
    assert!(body.len() < 1 << 20, "the event stays under --max-body");
    let r = client
        .post(
            &url,
            &[("content-type", "application/cloudevents+json")],
            body,
        )
        .await;
    assert_400(
        &r,
        &["66000 extensions", "64", "--max-extensions"],
        "66,000 extensions",
    );
    let r = client
        .post_structured(&url, &with_extensions("many", 10_000))
        .await;
    assert_400(
        &r,
        &["10000 extensions", "--max-extensions"],
        "10,000 extensions",
    );
    let r = client
        .post_batch(&url, &[structured("ok"), with_extensions("65", 65)])
        .await;
    assert_400(
        &r,
        &["65 extensions"],
        "a batch with one event over the limit",
    );
    let r = client
        .post_structured(&url, &with_extensions("at-limit", 64))
        .await;
    assert_eq!(r.status, 202, "64 extensions are allowed: {}", r.text());

    let r = client.post_structured(&url, &structured("after")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = sub.wait_for(2, Duration::from_secs(10)).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, ["after", "at-limit"], "nothing refused was stored");
    let metrics = client.get(&herald.url("/metrics")).await.text();
    assert!(
        metrics.contains(
            r#"herald_events_rejected_total{broker="default/default",reason="attribute_limit"} 4"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn attributes_over_the_byte_limit_are_400_in_every_mode() {
    let sub = Subscriber::start().await;
    let herald = herald_with(&sub).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");

    let big = "a".repeat(300 << 10);
    let mut headers = binary_headers("big-header");
    headers.push(("ce-big".into(), big.clone()));
    let r = client
        .post(&url, &borrow(&headers), binary_body("big-header"))
        .await;
    assert_400(
        &r,
        &["16384", "--max-attributes-bytes"],
        "a 300 KB ce- header",
    );
    let mut event = structured("big-json");
    event["subject"] = json!("s".repeat(17 << 10));
    let r = client.post_structured(&url, &event).await;
    assert_400(&r, &["--max-attributes-bytes"], "a 17 KiB subject");
    let r = client.post_structured(&url, &structured("small")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    sub.wait_for(1, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_configurable() {
    let herald = Herald::start_with(
        "memory",
        "",
        herald_tests::HeraldOptions {
            args: ["--max-extensions", "2", "--max-attributes-bytes", "200"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        },
    )
    .await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let r = client
        .post_structured(&url, &with_extensions("two", 2))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = client
        .post_structured(&url, &with_extensions("three", 3))
        .await;
    assert_400(&r, &["3 extensions", "limit of 2"], "--max-extensions 2");
    let mut event = structured("long");
    event["subject"] = json!("s".repeat(200));
    let r = client.post_structured(&url, &event).await;
    assert_400(&r, &["limit of 200 bytes"], "--max-attributes-bytes 200");
}

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_are_400_naming_the_attribute_and_never_reach_the_log() {
    let sub = Subscriber::start().await;
    let herald = herald_with(&sub).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");

    let mut headers = binary_headers("forged");
    headers.retain(|(name, _)| name != "ce-type");
    headers.push(("ce-type".into(), "t%0A%00forged".into()));
    let r = client
        .post(&url, &borrow(&headers), binary_body("forged"))
        .await;
    assert_400(
        &r,
        &["attribute type", "control character"],
        "ce-type: t%0A%00forged",
    );

    let mut headers = binary_headers("c1");
    headers.push(("ce-note".into(), "a%C2%85b".into()));
    let r = client
        .post(&url, &borrow(&headers), binary_body("c1"))
        .await;
    assert_400(
        &r,
        &["attribute note"],
        "a C1 control (U+0085) in an extension header",
    );

    for (attribute, value) in [
        ("id", "a\u{0}b"),
        ("subject", "line\nforged"),
        ("ext", "del\u{7f}"),
        ("ext", "c1\u{9f}"),
    ] {
        let mut event = structured("json-control");
        event[attribute] = json!(value);
        let r = client.post_structured(&url, &event).await;
        assert_400(
            &r,
            &[&format!("attribute {attribute}")],
            &format!("{attribute}={value:?}"),
        );
    }
    let mut bad = structured("in-batch");
    bad["source"] = json!("/s\n");
    let r = client.post_batch(&url, &[structured("fine"), bad]).await;
    assert_eq!(
        r.status,
        400,
        "a batch with a control character: {}",
        r.text()
    );

    // Non-control Unicode is fine.
    let mut event = structured("unicode");
    event["subject"] = json!("grüße \u{a0} ✓");
    let r = client.post_structured(&url, &event).await;
    assert_eq!(r.status, 202, "{}", r.text());
    sub.wait_for(1, Duration::from_secs(10)).await;

    let log = herald.stderr();
    assert!(
        !log.lines()
            .any(|line| line.starts_with("forged") || line.contains("\0")),
        "a forged line reached herald's log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publishers_huge_ttl_is_clamped_to_255() {
    let sub = Subscriber::start().await;
    let herald = herald_with(&sub).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    for (id, ttl) in [
        ("i64-max", "9223372036854775807"),
        ("beyond-i64", "99999999999999999999999"),
        ("300", "300"),
    ] {
        let mut headers = binary_headers(id);
        headers.push(("ce-knativebrokerttl".into(), ttl.into()));
        let r = client.post(&url, &borrow(&headers), binary_body(id)).await;
        assert_eq!(r.status, 202, "ttl {ttl}: {}", r.text());
    }
    let got = sub.wait_for(3, Duration::from_secs(10)).await;
    for delivery in got {
        let ttl: i64 = delivery
            .attr("knativebrokerttl")
            .expect("knativebrokerttl is delivered")
            .parse()
            .expect("an integer");
        assert!((1..=255).contains(&ttl), "{}: ttl {ttl}", delivery.id());
    }
}

/// Sends `request` over a fresh connection and returns the whole answer as text.
async fn raw(port: u16, request: String) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer within 10 s")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_are_one_metric_series_and_cannot_inject_labels() {
    let herald = Herald::start("memory", "").await;
    let client = Client::new();
    let event = structured("x").to_string();
    let post = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/cloudevents+json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{event}",
            event.len()
        )
    };
    let answer = raw(herald.port(), post(r#"/a",reason="spoofed/b"#)).await;
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    let answer = raw(herald.port(), post("/a%22,reason=%22spoofed/b")).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let before = client.get(&herald.url("/metrics")).await.text();
    assert!(!before.contains("spoofed"), "{before}");
    assert!(
        before
            .contains(r#"herald_events_rejected_total{broker="_unknown",reason="unknown_broker"}"#),
        "{before}"
    );

    for i in 0..2_000 {
        let r = client
            .post_structured(&herald.url(&format!("/ns{i}/broker{i}")), &structured("x"))
            .await;
        assert_eq!(r.status, 404, "{}", r.text());
    }
    let after = client.get(&herald.url("/metrics")).await.text();
    assert_eq!(
        before.lines().count(),
        after.lines().count(),
        "2,000 unknown brokers grew /metrics:\n{after}"
    );
    assert!(
        after.contains(
            r#"herald_events_rejected_total{broker="_unknown",reason="unknown_broker"} 2001"#
        ) || after.contains(
            r#"herald_events_rejected_total{broker="_unknown",reason="unknown_broker"} 2002"#
        ),
        "{after}"
    );
    assert!(!after.contains("ns1999"), "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_with_a_control_character_is_not_stored() {
    let sub = Subscriber::start().await;
    sub.set_script(|request| match request.id().as_str() {
        "original-forged" => Reply::binary_event("reply-forged", "t%0Aforged", "/r", &json!({})),
        "original-ok" => Reply::binary_event("reply-ok", "t", "/r", &json!({})),
        _ => Reply::status(200),
    });
    let herald = herald_with(&sub).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    for id in ["original-forged", "original-ok"] {
        let r = client.post_structured(&url, &structured(id)).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    sub.wait_for(3, Duration::from_secs(10)).await;
    let got = sub
        .settle(Duration::from_secs(1), Duration::from_secs(20))
        .await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["original-forged", "original-ok", "reply-ok"],
        "the valid reply is stored and delivered, the forged one never"
    );
}
