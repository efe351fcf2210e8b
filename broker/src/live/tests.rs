//! The live configuration against the memory bus, without a socket: the diff an apply makes,
//! and the `Apply` contract the management API relies on.
#![allow(
    clippy::disallowed_methods,
    reason = "tests write manifest files directly"
)]

use std::sync::Arc;

use herald_buses::memory::MemoryBus;
use serde_json::json;
use tokio::sync::watch;

use super::pause::PauseOverlay;
use super::runtime::{Runtime, RuntimeEnv};
use super::{Apply, Live};
use crate::config::{self, LoadOptions};
use crate::ingress::Ingress;
use crate::metrics::Metrics;
use crate::sources::github::{GitHubEndpoints, LiveEndpoints};
use crate::sources::{self, SourceEnv};

const BROKER: &str =
    "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n";

fn trigger_yaml(name: &str, uri: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\nspec:\n  broker: default\n  subscriber:\n    uri: {uri}\n"
    )
}

fn trigger_json(name: &str, uri: &str) -> serde_json::Value {
    json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"broker": "default", "subscriber": {"uri": uri}},
    })
}

struct Fixture {
    live: Arc<Live>,
    ingress: Arc<Ingress>,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

async fn start(files: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, files).unwrap();
    let bus: Arc<dyn herald_buses::Bus> = Arc::new(MemoryBus::default());
    let metrics = Arc::new(Metrics::default());
    let ingress = Arc::new(Ingress::new([], bus.clone(), metrics, 1 << 20));
    let (stop_tx, stop) = watch::channel(false);
    let sender = crate::dispatch::sender::Sender::default();
    let env = RuntimeEnv {
        bus,
        ingress: ingress.clone(),
        sender: sender.clone(),
        window: 8,
        jitter: false,
        sources: SourceEnv {
            ingress: ingress.clone(),
            sender,
            state_dir: sources::state_dir(dir.path()),
            clock: herald_sources::ping::Clock::System,
            jitter: false,
            attribute_max_bytes: 1024,
            pubsub: sources::PubsubSourceOptions::default(),
        },
        github: Arc::new(LiveEndpoints::new(Arc::new(GitHubEndpoints::empty(1024)))),
        trigger_names: Arc::default(),
        stop,
        lag_probe: std::time::Duration::from_secs(1),
    };
    let paths = vec![file.clone()];
    let live = Arc::new(Live::new(
        Runtime::new(env),
        paths.clone(),
        LoadOptions::default(),
        PauseOverlay::in_memory(),
    ));
    let texts = config::read_files(&paths).unwrap();
    let config = config::resolve_all(&texts, &[], &LoadOptions::default()).unwrap();
    live.start(config, texts).await.unwrap();
    Fixture {
        live,
        ingress,
        file,
        _dir: dir,
        _stop: stop_tx,
    }
}

#[tokio::test]
async fn a_reload_restarts_only_what_changed() {
    let f = start(&format!(
        "{BROKER}---\n{}---\n{}",
        trigger_yaml("same", "http://127.0.0.1:1/a"),
        trigger_yaml("moved", "http://127.0.0.1:1/b")
    ))
    .await;
    assert_eq!(
        f.live.reload_files(false).await.unwrap(),
        None,
        "nothing changed"
    );
    std::fs::write(
        &f.file,
        format!(
            "{BROKER}---\n{}---\n{}---\n{}",
            trigger_yaml("same", "http://127.0.0.1:1/a"),
            trigger_yaml("moved", "http://127.0.0.1:1/c"),
            trigger_yaml("new", "http://127.0.0.1:1/d")
        ),
    )
    .unwrap();
    let changes = f.live.reload_files(false).await.unwrap().expect("applied");
    assert_eq!(changes.started, ["default/new"]);
    assert_eq!(changes.restarted, ["default/moved"]);
    assert!(changes.stopped.is_empty());
    assert_eq!(changes.unchanged, 1);
    assert!(!changes.sources_restarted);
    f.live.runtime().stop_all().await;
}

#[tokio::test]
async fn api_documents_are_validated_with_the_files_and_refused_whole() {
    let f = start(BROKER).await;
    // A trigger on a broker only the files define: valid together.
    let good = trigger_json("api", "http://127.0.0.1:1/x");
    f.live.validate(std::slice::from_ref(&good)).unwrap();
    f.live.set_api_documents(vec![good.clone()]).await.unwrap();
    let running = f.live.runtime().config_now().unwrap();
    assert_eq!(running.triggers.len(), 1);

    let mut bad = trigger_json("bad", "http://127.0.0.1:1/y");
    bad["spec"]["broker"] = json!("missing");
    let error = f
        .live
        .set_api_documents(vec![good, bad.clone()])
        .await
        .unwrap_err();
    assert_eq!(error.field, "spec.broker");
    assert_eq!(error.file, "api Trigger default/bad");
    assert!(f.live.validate(&[bad]).is_err());
    assert_eq!(
        f.live.runtime().config_now().unwrap().triggers.len(),
        1,
        "nothing of a refused change applies"
    );
    f.live.runtime().stop_all().await;
}

#[tokio::test]
async fn files_are_listed_and_status_uses_knative_condition_names() {
    let f = start(&format!(
        "{BROKER}---\n{}",
        trigger_yaml("t", "http://127.0.0.1:1/")
    ))
    .await;
    let documents = f.live.file_documents();
    assert_eq!(documents.len(), 2);
    assert_eq!(documents[1].index, 2);
    assert_eq!(documents[1].path, f.file);
    assert_eq!(documents[1].value["kind"], "Trigger");

    f.live.set_address_base("http://127.0.0.1:8080".into());
    let status = f.live.status();
    let broker = status.iter().find(|s| s.kind == "Broker").unwrap();
    assert_eq!(
        broker.address.as_deref(),
        Some("http://127.0.0.1:8080/default/default")
    );
    let trigger = status.iter().find(|s| s.kind == "Trigger").unwrap();
    let names: Vec<&str> = trigger.conditions.iter().map(|c| c.kind.as_str()).collect();
    for name in [
        "Ready",
        "BrokerReady",
        "SubscriberResolved",
        "DependencyReady",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(f.ingress.broker("default/default").is_some());
    f.live.runtime().stop_all().await;
}

#[test]
fn paused_and_start_from_annotations_are_parsed_or_refused_naming_the_field() {
    let with = |key: &str, value: &str| {
        format!(
            "{BROKER}---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\n  annotations:\n    {key}: \"{value}\"\nspec:\n  broker: default\n  subscriber:\n    uri: http://127.0.0.1:1/\n"
        )
    };
    let config = config::load_str("t.yaml", &with("herald.dev/paused", "true")).unwrap();
    assert!(config.triggers[0].paused);
    let error = config::load_str("t.yaml", &with("herald.dev/paused", "yes")).unwrap_err();
    assert_eq!(error.field, "metadata.annotations.herald.dev/paused");
    let config = config::load_str("t.yaml", &with("herald.dev/startFrom", "earliest")).unwrap();
    assert_eq!(
        config.triggers[0].start_from,
        herald_buses::StartPosition::Earliest
    );
    let config = config::load_str(
        "t.yaml",
        &with("herald.dev/startFrom", "2026-12-01T06:00:00Z"),
    )
    .unwrap();
    assert!(matches!(
        config.triggers[0].start_from,
        herald_buses::StartPosition::Time(_)
    ));
    let error = config::load_str("t.yaml", &with("herald.dev/startFrom", "yesterday")).unwrap_err();
    assert_eq!(error.field, "metadata.annotations.herald.dev/startFrom");
    assert!(error.message.contains("RFC 3339"), "{}", error.message);
}
