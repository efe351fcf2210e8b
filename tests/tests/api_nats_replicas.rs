//! Two Herald replicas on one NATS share their API resources through a JetStream key-value
//! bucket. Needs a real `nats-server` (`scripts/ensure-nats-server`); fails, never skips,
//! without it.

use herald_buses::nats::testing::NatsServer;
use herald_tests::api_replicas::{
    TOKEN, TRIGGERS, call, ready_at, two_replicas_converge_on_api_resources,
};
use herald_tests::{Herald, HeraldOptions, manifests};
use http::Method;

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_converge_on_api_resources_through_a_nats_bucket() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    two_replicas_converge_on_api_resources(&nats.url(), Vec::new()).await;
}

/// Optimistic concurrency holds across replicas: two updates from the same resourceVersion,
/// one through each replica, and the second is a conflict (the bucket is written only over the
/// revision a replica knows), whether or not that replica has seen the first yet.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_update_through_the_other_replica_is_a_conflict() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let options = || HeraldOptions {
        args: vec!["--admin-token-file".into(), token.display().to_string()],
        ..HeraldOptions::default()
    };
    let a = Herald::start_with(&nats.url(), "", options()).await;
    let b = Herald::start_with(&nats.url(), "", options()).await;
    let t = manifests::trigger("t", "default", "http://127.0.0.1:9/");
    let (status, _) = call(&a, Method::POST, TRIGGERS, "application/json", Some(&t)).await;
    assert_eq!(status, 201);
    let seen = ready_at(&b, "t", 1).await;

    let mut first = seen.clone();
    first["spec"]["subscriber"]["uri"] = "http://127.0.0.1:10/".into();
    let mut second = seen.clone();
    second["spec"]["subscriber"]["uri"] = "http://127.0.0.1:11/".into();
    let uri = format!("{TRIGGERS}/t");
    let (status, body) = call(&a, Method::PUT, &uri, "application/json", Some(&first)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&b, Method::PUT, &uri, "application/json", Some(&second)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["reason"], "Conflict");
    let on_b = ready_at(&b, "t", 2).await;
    assert_eq!(on_b["spec"]["subscriber"]["uri"], "http://127.0.0.1:10/");
}
