//! Sources wired into the broker: a PingSource under paused time, the GitHub endpoint through
//! the router (no socket), and the URL sink's retries against a real loopback server.
#![allow(
    clippy::disallowed_methods,
    reason = "tests set up and inspect files directly"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use herald_buses::Bus;
use herald_buses::memory::MemoryBus;
use herald_sources::SinkError;
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, StatusCode};
use tokio::sync::watch;
use tower::ServiceExt;

use super::*;
use crate::config::{self, BrokerId, Config};
use crate::metrics::Metrics;

const SECRET: &[u8] = b"It's a Secret to Everybody";

fn ingress(config: &Config, bus: Arc<dyn Bus>) -> Arc<Ingress> {
    let ingress = Ingress::new(
        config.brokers.iter().map(|b| b.id.clone()),
        bus,
        Arc::new(Metrics::default()),
        1024,
    );
    ingress.set_ready(true);
    Arc::new(ingress)
}

fn env(ingress: Arc<Ingress>, state_dir: &Path, clock: Clock) -> SourceEnv {
    SourceEnv {
        ingress,
        sender: Sender::default(),
        state_dir: state_dir.to_owned(),
        clock,
        jitter: false,
        attribute_max_bytes: herald_sources::attribute::DEFAULT_MAX_VALUE_BYTES,
        pubsub: super::PubsubSourceOptions::default(),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

const PING: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: { name: default, namespace: team }
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: { name: every-minute, namespace: team }
spec:
  schedule: "* * * * *"
  contentType: application/json
  data: '{"message": "hello"}'
  sink:
    ref: { apiVersion: eventing.knative.dev/v1, kind: Broker, name: default }
"#;

#[tokio::test(start_paused = true)]
async fn ping_source_publishes_each_scheduled_time_to_its_broker() {
    let config = config::load_str("ping.yaml", PING).unwrap();
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(100));
    let mut sub = bus
        .subscribe(&BrokerId::new("team", "default").topic(), "test")
        .await
        .unwrap();
    let ingress = ingress(&config, bus.clone());
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(at("2024-05-01T10:00:30Z"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut started = start(
        &config.sources,
        &env(ingress.clone(), dir.path(), clock),
        stop_rx,
    )
    .await
    .unwrap();

    for expected in ["2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"] {
        let delivery = tokio::time::timeout(Duration::from_secs(120), sub.next())
            .await
            .expect("a ping within two minutes")
            .unwrap();
        let event = &delivery.event;
        assert_eq!(event.ty(), "dev.knative.sources.ping");
        assert_eq!(
            event.source().as_str(),
            "/apis/v1/namespaces/team/pingsources/every-minute"
        );
        assert_eq!(event.time(), Some(&at(expected)));
        assert_eq!(event.datacontenttype(), Some("application/json"));
        assert!(
            event.extension(crate::ingress::ARRIVAL_TIME).is_some(),
            "published through ingress"
        );
        delivery.ack();
    }
    stop_tx.send(true).unwrap();
    while started.tasks.join_next().await.is_some() {}
    let text = ingress.metrics.encode();
    assert!(
        text.contains(
            r#"herald_source_events_emitted_total{source="team/every-minute",kind="PingSource"} 2"#
        ),
        "{text}"
    );
    assert!(
        dir.path().join("ping/team_every-minute.json").is_file(),
        "progress persisted under the state dir"
    );
}

fn github_config(secrets: &Path, extra_spec: &str) -> Config {
    std::fs::create_dir_all(secrets.join("gh")).unwrap();
    std::fs::write(secrets.join("gh/token"), SECRET).unwrap();
    let yaml = format!(
        r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{ name: default, namespace: team }}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {{ name: repo, namespace: team }}
spec:
  ownerAndRepository: octo-org/hello-world
  secretToken: {{ secretKeyRef: {{ name: gh, key: token }} }}
  sink: {{ ref: {{ kind: Broker, name: default }} }}
{extra_spec}
"#
    );
    let options = config::LoadOptions {
        secrets_dir: secrets.to_owned(),
    };
    config::load_str_with("gh.yaml", &yaml, &options).unwrap()
}

fn signed(event: &str, id: &str, body: &'static str, secret: &[u8]) -> Request<Body> {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Request::post("/sources/team/repo")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", id)
        .header("x-hub-signature-256", format!("sha256={hex}"))
        .body(Body::from(body))
        .unwrap()
}

const PUSH: &str = r#"{"ref":"refs/heads/main","compare":"https://github.com/octo-org/hello-world/compare/a...b","repository":{"name":"hello-world","owner":{"login":"octo-org"}},"sender":{"login":"monalisa"},"pusher":{"name":"monalisa"}}"#;

struct GitHubFixture {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    ingress: Arc<Ingress>,
    app: axum::Router,
}

async fn github_fixture(bus: Arc<dyn Bus>, extra_spec: &str) -> GitHubFixture {
    let (secrets, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = github_config(secrets.path(), extra_spec);
    let ingress = ingress(&config, bus);
    let (_, stop_rx) = watch::channel(false);
    let started = start(
        &config.sources,
        &env(ingress.clone(), state.path(), Clock::System),
        stop_rx,
    )
    .await
    .unwrap();
    let app = crate::ingress::router(ingress.clone()).merge(github::router(started.github.clone()));
    GitHubFixture {
        _dirs: (secrets, state),
        ingress,
        app,
    }
}

async fn status(app: &axum::Router, request: Request<Body>) -> StatusCode {
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn github_delivery_is_emitted_once_and_forgeries_are_refused() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(100));
    let mut sub = bus
        .subscribe(&BrokerId::new("team", "default").topic(), "test")
        .await
        .unwrap();
    let f = github_fixture(bus, "").await;
    assert_eq!(
        status(&f.app, signed("push", "d-1", PUSH, b"wrong secret")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&f.app, signed("push", "d-1", PUSH, SECRET)).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        status(&f.app, signed("push", "d-1", PUSH, SECRET)).await,
        StatusCode::OK,
        "a redelivery is answered 2xx"
    );
    let delivery = sub.next().await.unwrap();
    assert_eq!(delivery.event.id(), "d-1");
    assert_eq!(delivery.event.ty(), "dev.knative.source.github.push");
    delivery.ack();
    let more = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
    assert!(more.is_err(), "emitted once");

    let text = f.ingress.metrics.encode();
    for line in [
        r#"herald_source_events_received_total{source="team/repo",kind="GitHubSource"} 3"#,
        r#"herald_source_events_emitted_total{source="team/repo",kind="GitHubSource"} 1"#,
        r#"herald_source_events_rejected_total{source="team/repo",kind="GitHubSource",reason="wrong_signature"} 1"#,
        r#"herald_source_events_rejected_total{source="team/repo",kind="GitHubSource",reason="duplicate"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn github_endpoint_answers_405_413_404_and_204_for_filtered_types() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(100));
    let f = github_fixture(bus, "  eventTypes: [pull_request]").await;
    let get = Request::get("/sources/team/repo")
        .body(Body::empty())
        .unwrap();
    let response = f.app.clone().oneshot(get).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    let big: &'static str = Box::leak("x".repeat(2048).into_boxed_str());
    assert_eq!(
        status(&f.app, signed("push", "d-2", big, SECRET)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        status(&f.app, signed("push", "d-3", PUSH, SECRET)).await,
        StatusCode::NO_CONTENT,
        "push is not in eventTypes"
    );
    let other = Request::post("/sources/team/other")
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(&f.app, other).await, StatusCode::NOT_FOUND);
    // A broker path still reaches ingress next to the webhook route.
    let broker = Request::get("/team/default").body(Body::empty()).unwrap();
    assert_eq!(status(&f.app, broker).await, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_delivery_the_bus_could_not_store_is_answered_503_and_emitted_on_redelivery() {
    // Capacity 1: the second unacknowledged event is refused (overloaded).
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(1));
    let mut sub = bus
        .subscribe(&BrokerId::new("team", "default").topic(), "test")
        .await
        .unwrap();
    let f = github_fixture(bus, "").await;
    assert_eq!(
        status(&f.app, signed("push", "a", PUSH, SECRET)).await,
        StatusCode::ACCEPTED
    );
    // Another delivery has another body (the same signed body again would be a replay).
    let other: &'static str = Box::leak(format!("{PUSH} ").into_boxed_str());
    let response = f
        .app
        .clone()
        .oneshot(signed("push", "b", other, SECRET))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    sub.next().await.unwrap().ack();
    assert_eq!(
        status(&f.app, signed("push", "b", other, SECRET)).await,
        StatusCode::ACCEPTED,
        "the failed delivery was not recorded"
    );
}

/// A loopback server answering from `statuses` in turn (then 200), counting requests.
async fn scripted_server(statuses: Vec<u16>) -> (url::Url, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let code = statuses.get(n).copied().unwrap_or(200);
        async move { StatusCode::from_u16(code).unwrap() }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url.parse().unwrap(), hits)
}

fn url_sink(url: url::Url, budget: Option<Duration>) -> UrlSink {
    UrlSink {
        sender: Sender::default(),
        endpoint: url.into(),
        from: crate::outbound::SendAs::resource("PingSource", "ns", "s", "source", None),
        policy: DeliveryPolicy {
            backoff_delay: Duration::from_millis(10),
            ..DeliveryPolicy::default()
        },
        budget,
        jitter: false,
    }
}

fn event() -> cloudevents::Event {
    use cloudevents::{EventBuilder, EventBuilderV10};
    EventBuilderV10::new()
        .id("1")
        .ty("t")
        .source("/s")
        .build()
        .unwrap()
}

#[tokio::test]
async fn url_sink_retries_retryable_answers_and_stops_at_a_permanent_one() {
    let (url, hits) = scripted_server(vec![503, 500]).await;
    url_sink(url, None).send(vec![event()]).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    let (url, hits) = scripted_server(vec![400]).await;
    let err = url_sink(url, None).send(vec![event()]).await.unwrap_err();
    assert!(matches!(err, SinkError::Rejected { .. }), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a 400 is not retried");
}

#[tokio::test]
async fn url_sink_gives_up_within_its_budget() {
    let (url, hits) = scripted_server(vec![503; 100]).await;
    let err = url_sink(url, Some(Duration::from_millis(300)))
        .send(vec![event()])
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // 10 ms doubling: attempts at 0, 10, 30, 70, 150 ms; the next wait (160 ms) overruns.
    assert!((2..=6).contains(&hits.load(Ordering::SeqCst)));
}

#[tokio::test]
async fn a_push_with_a_hostile_branch_name_is_emitted_with_the_name_percent_encoded() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(100));
    let mut sub = bus
        .subscribe(&BrokerId::new("team", "default").topic(), "test")
        .await
        .unwrap();
    let f = github_fixture(bus, "").await;
    let body: &'static str = Box::leak(
        PUSH.replace("refs/heads/main", r"refs/heads/x\n\u0000forged\u001b[31m")
            .into_boxed_str(),
    );
    assert_eq!(
        status(&f.app, signed("push", "d-hostile", body, SECRET)).await,
        StatusCode::ACCEPTED
    );
    let delivery = sub.next().await.unwrap();
    assert_eq!(
        delivery.event.extension("ref").map(ToString::to_string),
        Some("refs/heads/x%0A%00forged%1B[31m".to_owned())
    );
    delivery.ack();
}

#[tokio::test]
async fn start_removes_the_state_of_sources_no_longer_configured() {
    let (secrets, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = github_config(secrets.path(), "");
    for file in [
        "github/team_repo.deliveries",
        "github/team_removed.deliveries",
        "ping/team_removed.json",
        "apiserver/team_removed.d/v1_ConfigMap.json",
    ] {
        let path = state.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(100));
    let ingress = ingress(&config, bus);
    let (_, stop_rx) = watch::channel(false);
    start(
        &config.sources,
        &env(ingress, state.path(), Clock::System),
        stop_rx,
    )
    .await
    .unwrap();
    assert!(state.path().join("github/team_repo.deliveries").is_file());
    for gone in [
        "github/team_removed.deliveries",
        "ping/team_removed.json",
        "apiserver/team_removed.d",
    ] {
        assert!(!state.path().join(gone).exists(), "{gone} removed");
    }
}
