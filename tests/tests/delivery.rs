//! How events reach subscribers: binary and structured mode, the headers Herald adds, and
//! filters (the README's "Delivery contract").

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use herald_tests::fixtures::{SOURCE, TYPE, borrow, structured_with};
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, Subscriber, manifests};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn binary_delivery_carries_ce_headers_arrival_time_and_prefer_reply() {
    let sub = Subscriber::start().await;
    let herald = Herald::start("embedded", &manifests::one_trigger(&sub.url("/hook"))).await;
    let client = Client::new();
    let headers = [
        ("ce-specversion", "1.0"),
        ("ce-id", "enc-1"),
        ("ce-source", SOURCE),
        ("ce-type", TYPE),
        ("ce-subject", "caf%C3%A9%20%22quoted%22%20100%25"),
        ("ce-time", "2024-05-06T07:08:09.5Z"),
        ("ce-myext", "a%20b%2Cc"),
        ("content-type", "application/octet-stream"),
    ];
    let body = vec![0u8, 1, 2, 255];
    let r = client
        .post(
            &herald.broker_url("default", "default"),
            &headers,
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());

    let got = sub.wait_for(1, WAIT).await;
    let d = &got[0];
    assert_eq!(d.method, "POST");
    assert_eq!(d.path, "/hook");
    assert!(!d.is_structured(), "binary mode by default");
    assert_eq!(d.attr("specversion").as_deref(), Some("1.0"));
    assert_eq!(d.attr("id").as_deref(), Some("enc-1"));
    assert_eq!(d.attr("source").as_deref(), Some(SOURCE));
    assert_eq!(d.attr("type").as_deref(), Some(TYPE));
    assert_eq!(
        d.attr("subject").as_deref(),
        Some("café \"quoted\" 100%"),
        "percent-encoded values round-trip (raw header {:?})",
        d.header("ce-subject")
    );
    assert_eq!(d.attr("myext").as_deref(), Some("a b,c"));
    let time = d.attr("time").expect("ce-time");
    assert!(time.starts_with("2024-05-06T07:08:09.5"), "time {time}");
    assert_eq!(
        d.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        d.body.as_ref(),
        body.as_slice(),
        "data is the body, untouched"
    );
    assert_eq!(d.header("prefer").as_deref(), Some("reply"));
    let arrival = d
        .attr("knativearrivaltime")
        .expect("ingress stamps knativearrivaltime");
    assert!(
        arrival.len() >= 20 && arrival.as_bytes()[4] == b'-' && arrival.contains('T'),
        "knativearrivaltime {arrival:?} is not an RFC 3339 timestamp"
    );
    assert!(
        d.header("ce-datacontenttype").is_none(),
        "datacontenttype travels as Content-Type in binary mode"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_format_json_delivers_structured_mode() {
    let sub = Subscriber::start().await;
    let mut t = trigger("t", "default", &sub.url("/"));
    t["spec"]["delivery"]["format"] = json!("json");
    let herald = Herald::start("embedded", &yaml(&[broker("default"), t])).await;
    let event = structured_with("s-1", TYPE, &json!({"myext": "v", "subject": "x y"}));
    let r = Client::new()
        .post_structured(&herald.broker_url("default", "default"), &event)
        .await;
    assert_eq!(r.status, 202);
    let got = sub.wait_for(1, WAIT).await;
    let d = &got[0];
    assert!(
        d.is_structured(),
        "content-type {:?}",
        d.header("content-type")
    );
    let body = d.json();
    assert_eq!(body["id"], "s-1");
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(body["myext"], "v");
    assert_eq!(body["subject"], "x y");
    assert_eq!(body["data"], json!({"id": "s-1"}));
    assert!(body["knativearrivaltime"].is_string(), "{body}");
    assert!(
        d.header("ce-id").is_none(),
        "no ce- headers in structured mode"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bus_delivers_too() {
    let sub = Subscriber::start().await;
    let herald = Herald::start("memory", &manifests::one_trigger(&sub.url("/"))).await;
    let r = Client::new()
        .post_structured(
            &herald.broker_url("default", "default"),
            &herald_tests::fixtures::structured("mem-1"),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(sub.wait_for(1, WAIT).await[0].id(), "mem-1");
}

/// Each trigger delivers to its own path of one subscriber; the path names the trigger.
fn filtered(name: &str, sub: &Subscriber, filter: serde_json::Value) -> serde_json::Value {
    let mut t = trigger(name, "default", &sub.url(&format!("/{name}")));
    for (k, v) in filter.as_object().expect("object") {
        t["spec"][k] = v.clone();
    }
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_deliver_only_matching_events() {
    let sub = Subscriber::start().await;
    let docs = vec![
        broker("default"),
        filtered(
            "attr-exact",
            &sub,
            json!({"filter": {"attributes": {"type": "a.b"}}}),
        ),
        filtered(
            "attr-exists",
            &sub,
            json!({"filter": {"attributes": {"myext": ""}}}),
        ),
        filtered(
            "attr-two",
            &sub,
            json!({"filter": {"attributes": {"type": "a.b", "source": "/s1"}}}),
        ),
        filtered(
            "exact",
            &sub,
            json!({"filters": [{"exact": {"type": "a.b", "source": "/s1"}}]}),
        ),
        filtered(
            "prefix",
            &sub,
            json!({"filters": [{"prefix": {"type": "a."}}]}),
        ),
        filtered(
            "suffix",
            &sub,
            json!({"filters": [{"suffix": {"source": "/end"}}]}),
        ),
        filtered(
            "all",
            &sub,
            json!({"filters": [{"all": [{"exact": {"type": "a.b"}}, {"prefix": {"source": "/s"}}]}]}),
        ),
        filtered(
            "any",
            &sub,
            json!({"filters": [{"any": [{"exact": {"type": "x.y"}}, {"suffix": {"source": "/end"}}]}]}),
        ),
        filtered(
            "not",
            &sub,
            json!({"filters": [{"not": {"exact": {"type": "a.b"}}}]}),
        ),
        filtered(
            "ext-exact",
            &sub,
            json!({"filters": [{"exact": {"myext": "v"}}, {"prefix": {"type": "a"}}]}),
        ),
    ];
    let herald = Herald::start("embedded", &yaml(&docs)).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let events = [
        json!({"specversion": "1.0", "id": "e1", "type": "a.b", "source": "/s1", "myext": "v"}),
        json!({"specversion": "1.0", "id": "e2", "type": "a.c", "source": "/x/end"}),
        json!({"specversion": "1.0", "id": "e3", "type": "x.y", "source": "/s2"}),
        json!({"specversion": "1.0", "id": "e4", "type": "b.a", "source": "/s1", "myext": "w"}),
    ];
    for e in &events {
        assert_eq!(client.post_structured(&url, e).await.status, 202);
    }
    let expected: BTreeMap<&str, Vec<&str>> = [
        ("/attr-exact", vec!["e1"]),
        ("/attr-exists", vec!["e1", "e4"]),
        ("/attr-two", vec!["e1"]),
        ("/exact", vec!["e1"]),
        ("/prefix", vec!["e1", "e2"]),
        ("/suffix", vec!["e2"]),
        ("/all", vec!["e1"]),
        ("/any", vec!["e2", "e3"]),
        ("/not", vec!["e2", "e3", "e4"]),
        ("/ext-exact", vec!["e1"]),
    ]
    .into();
    let total = expected.values().map(Vec::len).sum();
    sub.wait_for(total, WAIT).await;
    let got = sub
        .settle(Duration::from_millis(300), Duration::from_secs(5))
        .await;
    let mut actual: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &got {
        actual.entry(r.path.clone()).or_default().push(r.id());
    }
    for ids in actual.values_mut() {
        ids.sort();
    }
    let expected: BTreeMap<String, Vec<String>> = expected
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(actual, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn attribute_filter_with_an_empty_value_needs_a_non_empty_attribute() {
    // Knative semantics (issue 2): `attributes: {myext: ""}` matches when myext exists and
    // is non-empty.
    let sub = Subscriber::start().await;
    let docs = [
        broker("default"),
        filtered(
            "exists",
            &sub,
            json!({"filter": {"attributes": {"myext": ""}}}),
        ),
    ];
    let herald = Herald::start("embedded", &yaml(&docs)).await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let mut sent = BTreeSet::new();
    for (id, ext) in [("empty", Some("")), ("absent", None), ("set", Some("v"))] {
        let mut headers = herald_tests::fixtures::binary_headers(id);
        if let Some(v) = ext {
            headers.push(("ce-myext".into(), v.into()));
        }
        let r = client.post(&url, &borrow(&headers), "{}").await;
        assert_eq!(r.status, 202, "{id}: {}", r.text());
        sent.insert(id);
    }
    sub.wait_for(1, WAIT).await;
    let got = sub
        .settle(Duration::from_millis(300), Duration::from_secs(5))
        .await;
    let ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        ["set"],
        "only the event with a non-empty myext matches"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_1000_events_is_delivered_event_by_event() {
    let sub = Subscriber::start().await;
    let herald = Herald::start("embedded", &manifests::one_trigger(&sub.url("/"))).await;
    let batch: Vec<_> = (0..1000)
        .map(|i| herald_tests::fixtures::structured(&format!("b-{i}")))
        .collect();
    let r = Client::new()
        .post_batch(&herald.broker_url("default", "default"), &batch)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = sub.wait_for(1000, Duration::from_secs(30)).await;
    let ids: BTreeSet<String> = got.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), 1000);
}
