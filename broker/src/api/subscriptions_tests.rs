//! The Subscriptions API with requests written from the spec (spec.md §3.2.1, §3.2.4,
//! §3.2.5, §3.3; subscriptions-openapi.yaml).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::tests::harness;

/// The spec's example subscription (§3.2.1) without its `config`, which names keys of the
/// spec's example manager, not Herald's.
fn spec_example() -> Value {
    json!({
        "filters": [ { "prefix": { "type": "com.example." } } ],
        "protocol": "HTTP",
        "protocolsettings": { "method": "POST" },
        "sink": "http://example.com/event-processor"
    })
}

#[tokio::test]
async fn create_retrieve_query_update_and_delete_follow_the_spec() {
    let h = harness().await;
    let mut proposed = spec_example();
    // §3.2.1 id: "if present on the input to a subscribe operation then it MUST be ignored".
    proposed["id"] = json!("sub-193-18365");
    let (status, created) = h.send(Method::POST, "/subscriptions", Some(proposed)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "sub-193-18365");
    assert_eq!(created["sink"], "http://example.com/event-processor");
    assert_eq!(created["filters"], spec_example()["filters"]);

    // It is a trigger on broker default/default with the filter as Knative writes it.
    let applied = h.apply.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0]["spec"]["broker"], "default");
    assert_eq!(
        applied[0]["spec"]["subscriber"]["uri"],
        "http://example.com/event-processor"
    );
    assert_eq!(
        applied[0]["spec"]["filters"],
        json!([{ "prefix": { "type": "com.example." } }])
    );

    let (status, retrieved) = h
        .send(Method::GET, &format!("/subscriptions/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retrieved, created);
    let (status, all) = h.send(Method::GET, "/subscriptions", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all, json!([created.clone()]));

    let mut changed = created.clone();
    changed["sink"] = json!("https://example.com/other");
    let (status, updated) = h
        .send(Method::PUT, &format!("/subscriptions/{id}"), Some(changed))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["sink"], "https://example.com/other");
    let mut wrong_id = updated.clone();
    wrong_id["id"] = json!("another");
    let (status, _) = h
        .send(Method::PUT, &format!("/subscriptions/{id}"), Some(wrong_id))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, deleted) = h
        .send(Method::DELETE, &format!("/subscriptions/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["id"], json!(id));
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = h.send(method, &format!("/subscriptions/{id}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = h
        .send(Method::PUT, "/subscriptions/nothing", Some(spec_example()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(h.apply.applied.lock().unwrap().is_empty());
}

#[tokio::test]
async fn every_required_dialect_of_the_spec_is_accepted() {
    let h = harness().await;
    // §3.2.4.1.1 and §3.2.4.1.2, the spec's own examples.
    let examples = [
        json!({ "exact": { "type": "com.github.push", "subject": "https://github.com/cloudevents/spec" } }),
        json!({ "prefix": { "type": "com.github.", "subject": "https://github.com/cloudevents" } }),
        json!({ "suffix": { "type": ".created", "subject": "/cloudevents/spec" } }),
        json!({ "all": [ { "exact": { "type": "com.github.push" } }, { "exact": { "subject": "https://github.com/cloudevents/spec" } } ] }),
        json!({ "any": [ { "exact": { "type": "com.github.push" } }, { "exact": { "subject": "https://github.com/cloudevents/spec" } } ] }),
        json!({ "not": { "exact": { "type": "com.github.push" } } }),
        json!({ "sql": "source LIKE '%cloudevents%'" }),
    ];
    for filter in examples {
        let mut request = spec_example();
        request["filters"] = json!([filter]);
        let (status, body) = h.send(Method::POST, "/subscriptions", Some(request)).await;
        assert_eq!(status, StatusCode::CREATED, "{filter}: {body}");
    }
    let applied = h.apply.applied.lock().unwrap().clone();
    assert!(
        applied
            .iter()
            .any(|t| t["spec"]["filters"][0]["cesql"] == "source LIKE '%cloudevents%'")
    );
}

#[tokio::test]
async fn what_herald_cannot_honour_is_refused_with_400_naming_it() {
    let h = harness().await;
    let with = |field: &str, value: Value| {
        let mut request = spec_example();
        request[field] = value;
        request
    };
    let cases = [
        (
            with("filters", json!([{ "regex": { "type": ".*" } }])),
            "dialect \"regex\"",
        ),
        (
            with("filters", json!([{ "exact": { "type": "" } }])),
            "non-empty",
        ),
        (with("filters", json!([{ "all": [] }])), "non-empty array"),
        (with("filters", json!([{ "sql": "type = " }])), "sql"),
        (with("protocol", json!("MQTT5")), "protocol \"MQTT5\""),
        (with("sink", json!("not a url")), "sink"),
        (
            with("config", json!({ "data": "hello", "interval": 5 })),
            "config.data",
        ),
        (
            with("sinkcredential", json!({ "credentialtype": "PLAIN" })),
            "sinkcredential",
        ),
        (
            with("protocolsettings", json!({ "method": "PUT" })),
            "method",
        ),
        (with("types", json!(["com.example.a", ""])), "types"),
    ];
    for (request, named) in cases {
        let (status, body) = h
            .send(Method::POST, "/subscriptions", Some(request.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains(named),
            "{message:?} does not name {named:?}"
        );
    }
    let mut no_protocol = spec_example();
    no_protocol.as_object_mut().unwrap().remove("protocol");
    let (status, _) = h
        .send(Method::POST, "/subscriptions", Some(no_protocol))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(h.apply.applied.lock().unwrap().is_empty());
}

#[tokio::test]
async fn types_and_source_become_filters_and_options_lists_the_methods() {
    let h = harness().await;
    let mut request = spec_example();
    request["types"] = json!([
        "com.github.pull_request.opened",
        "com.example.object.deleted"
    ]);
    request["source"] = json!("/sensors/tn-1234567/alerts");
    request["config"] = json!({ "broker": "shop/orders" });
    request.as_object_mut().unwrap().remove("filters");
    let (status, created) = h.send(Method::POST, "/subscriptions", Some(request)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let trigger = h.apply.applied.lock().unwrap()[0].clone();
    assert_eq!(trigger["metadata"]["namespace"], "shop");
    assert_eq!(trigger["spec"]["broker"], "orders");
    assert_eq!(
        trigger["spec"]["filters"],
        json!([
            { "exact": { "source": "/sensors/tn-1234567/alerts" } },
            { "any": [
                { "exact": { "type": "com.github.pull_request.opened" } },
                { "exact": { "type": "com.example.object.deleted" } }
            ] }
        ])
    );

    for (path, allow) in [
        ("/subscriptions", "GET,POST,OPTIONS"),
        ("/subscriptions/x", "GET,PUT,DELETE,OPTIONS"),
    ] {
        let request = Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header("authorization", format!("Bearer {}", super::tests::TOKEN))
            .body(Body::empty())
            .unwrap();
        let response = h.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["allow"], allow);
    }
}

proptest::proptest! {
    /// What the fuzz target `api_request` runs, on JSON-shaped text: never a panic.
    #[test]
    fn the_request_parsers_never_panic(
        body in r#"[\[\]{}":,a-z0-9 $._-]{0,64}"#,
        query in r"[a-z=!,.() ]{0,32}",
    ) {
        crate::api::fuzz_request(body.as_bytes(), &query);
    }

    /// Subscriptions made of the spec's dialects either become a trigger or a clear refusal.
    #[test]
    fn any_nesting_of_dialects_is_accepted_or_refused(depth in 0usize..6, dialect in 0usize..6) {
        let leaf = json!({ "exact": { "type": "t" } });
        let mut filter = leaf.clone();
        for level in 0..depth {
            filter = match (dialect + level) % 3 {
                0 => json!({ "all": [filter, leaf.clone()] }),
                1 => json!({ "any": [filter] }),
                _ => json!({ "not": filter }),
            };
        }
        let request = json!({ "protocol": "HTTP", "sink": "http://x/", "filters": [filter] });
        let (_, trigger) = super::subscriptions::to_trigger("id", &request).unwrap();
        proptest::prop_assert_eq!(&trigger["spec"]["filters"][0], &request["filters"][0]);
    }
}
