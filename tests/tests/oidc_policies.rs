//! Authorization by EventPolicy and the default modes, with PyJWT-minted tokens and Herald's
//! own PingSources as senders.

mod oidc_common;

use std::time::Duration;

use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, HeraldOptions, Subscriber};
use http::Method;
use oidc_common::{Keys, event, post};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

fn policy(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "eventing.knative.dev/v1alpha1",
        "kind": "EventPolicy",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    })
}

fn ping(name: &str, sink: &str) -> Value {
    json!({
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedule": "@every 1s",
            "data": "{}",
            "sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": sink}}
        }
    })
}

async fn start(keys: &Keys, docs: &[Value], mode: &str) -> Herald {
    let mut args = keys.issuer_flag();
    args.extend(["--default-authorization-mode".into(), mode.into()]);
    Herald::start_with(
        "memory",
        &yaml(docs),
        HeraldOptions {
            args,
            ..Default::default()
        },
    )
    .await
}

fn sa(ns: &str, name: &str) -> String {
    format!("system:serviceaccount:{ns}:{name}")
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_admit_by_subject_wildcard_and_source_ref_and_filter_batches_all_or_nothing() {
    let keys = Keys::new();
    let orders_sub = Subscriber::start().await;
    let pings_sub = Subscriber::start().await;
    let mut orders = broker("orders");
    orders["metadata"]["labels"] = json!({"tier": "gold"});
    let docs = [
        orders,
        broker("pings"),
        broker("plain"),
        trigger("to-orders", "orders", &orders_sub.url("/")),
        trigger("to-pings", "pings", &pings_sub.url("/")),
        policy(
            "orders",
            json!({
                "to": [{"selector": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                     "matchLabels": {"tier": "gold"}}}],
                "from": [{"sub": "system:serviceaccount:default:other-*"}],
                "filters": [{"cesql": "type LIKE 'order.%'"}]
            }),
        ),
        policy(
            "pings",
            json!({
                "to": [{"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "pings"}}],
                "from": [{"ref": {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "name": "tick"}}]
            }),
        ),
        ping("tick", "pings"),
        ping("tock", "pings"),
    ];
    let herald = start(&keys, &docs, "allow-same-namespace").await;
    let client = Client::new();
    let orders_url = herald.broker_url("default", "orders");

    // from.sub with a trailing wildcard, filters on every event of a batch.
    let other = keys.token_for(&sa("default", "other-app"), "default", "orders");
    let ok = json!([event("o1", "order.created"), event("o2", "order.paid")]);
    assert_eq!(
        post(&client, &orders_url, Some(&other), &ok).await.status,
        202
    );
    let mixed = json!([event("o3", "order.created"), event("x1", "user.created")]);
    let refused = post(&client, &orders_url, Some(&other), &mixed).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(oidc_common::reason(&refused), "forbidden");
    assert!(refused.text().contains("event 1"), "{}", refused.text());
    let stranger = keys.token_for(&sa("default", "stranger"), "default", "orders");
    let refused = post(
        &client,
        &orders_url,
        Some(&stranger),
        &event("o4", "order.created"),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("stranger"), "{}", refused.text());

    // The webhook handshake reflects the policy.
    let handshake = |token: String| {
        let client = &client;
        let url = orders_url.clone();
        async move {
            let bearer = format!("Bearer {token}");
            client
                .request(
                    Method::OPTIONS,
                    &url,
                    &[
                        ("webhook-request-origin", "sender.example"),
                        ("authorization", &bearer),
                    ],
                    "",
                )
                .await
        }
    };
    let allowed = handshake(other.clone()).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("webhook-allowed-origin"),
        Some("sender.example")
    );
    let denied = handshake(stranger.clone()).await;
    assert_eq!(denied.status, 403);
    assert!(denied.header("webhook-allowed-origin").is_none());

    // from.ref: PingSource tick passes, tock (same namespace, not in the policy) does not.
    let tick_source = "/apis/v1/namespaces/default/pingsources/tick";
    pings_sub.wait_for(2, WAIT).await;
    herald_tests::eventually(WAIT, "tock's events refused", || {
        let client = &client;
        let url = herald.url("/metrics");
        async move {
            let metrics = client.get(&url).await.text();
            metrics
                .lines()
                .any(|l| {
                    l.starts_with("herald_events_rejected_total")
                        && l.contains("broker=\"default/pings\"")
                        && l.contains("reason=\"forbidden\"")
                })
                .then_some(())
        }
    })
    .await;
    for event in pings_sub.requests() {
        assert_eq!(event.attr("source").as_deref(), Some(tick_source));
    }
    let same_ns = keys.token_for(&sa("default", "x"), "default", "pings");
    let pings_url = herald.broker_url("default", "pings");
    assert_eq!(
        post(&client, &pings_url, Some(&same_ns), &event("p", "t"))
            .await
            .status,
        403
    );

    // No policy selects plain: allow-same-namespace.
    let plain_url = herald.broker_url("default", "plain");
    let own = keys.token_for(&sa("default", "x"), "default", "plain");
    let foreign = keys.token_for(&sa("other", "x"), "default", "plain");
    assert_eq!(
        post(&client, &plain_url, Some(&own), &event("p1", "t"))
            .await
            .status,
        202
    );
    let refused = post(&client, &plain_url, Some(&foreign), &event("p2", "t")).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused.text().contains("allow-same-namespace"),
        "{}",
        refused.text()
    );

    let received = orders_sub.settle(Duration::from_millis(300), WAIT).await;
    let ids: Vec<String> = received.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"o1".to_owned()) && ids.contains(&"o2".to_owned()));
    let stderr = herald.stderr();
    assert!(
        stderr.contains("request refused by authorization"),
        "{stderr}"
    );
    assert!(stderr.contains("system:serviceaccount:default:stranger"));
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_all_refuses_every_sender_of_an_unselected_broker_and_allow_all_none() {
    let keys = Keys::new();
    let docs = [broker("default")];
    let client = Client::new();
    for (mode, expected) in [("deny-all", 403), ("allow-all", 202)] {
        let herald = start(&keys, &docs, mode).await;
        let token = keys.token_for(&sa("default", "x"), "default", "default");
        let answer = post(
            &client,
            &herald.broker_url("default", "default"),
            Some(&token),
            &event("e", "t"),
        )
        .await;
        assert_eq!(answer.status, expected, "{mode}: {}", answer.text());
    }
}
