//! The ApiServerSource watcher against a fake API server speaking the list/watch protocol:
//! changes while watching, stream closes, a restart while objects change, a kill between the
//! sink taking a change and the watcher confirming it, and `410 Gone`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures and write files directly"
)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cloudevents::{AttributesReader, Event};
use common::fake_apiserver::FakeApiServer;
use herald_sources::kubernetes::{ApiServerConfig, watcher};
use herald_sources::manifest::{ApiServerSourceSpec, SourceMeta};
use herald_sources::sink::{MemorySink, Sink, SinkError};
use kube::config::{KubeConfigOptions, Kubeconfig};

async fn client(server: &FakeApiServer, dir: &Path) -> kube::Client {
    let path = dir.join("kubeconfig");
    server.write_kubeconfig(&path);
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&path).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn config() -> Arc<ApiServerConfig> {
    let spec: ApiServerSourceSpec = serde_saphyr::from_str(
        "mode: Resource\nresources: [{apiVersion: v1, kind: ConfigMap}]\nsink: {uri: http://x}\n",
    )
    .unwrap();
    let meta = SourceMeta {
        namespace: "ns".into(),
        name: "cms".into(),
        ..Default::default()
    };
    Arc::new(spec.compile(&meta).unwrap())
}

/// Starts the watcher; dropping the returned sender stops it.
async fn start(
    server: &FakeApiServer,
    dir: &Path,
    sink: Arc<dyn Sink>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(watcher::run(
        config(),
        client(server, dir).await,
        server.url.clone(),
        sink,
        dir.join("state"),
        Arc::new(|_: &Event| true),
        async move {
            let _ = stopped.await;
        },
    ));
    (stop, task)
}

async fn wait_for(sink: &MemorySink, n: usize) -> Vec<Event> {
    for _ in 0..500 {
        let events = sink.events();
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} events, got {:?}", summary(&sink.events()));
}

fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {}", e.ty(), e.subject().unwrap_or_default()))
        .collect()
}

/// A sink that takes the first event and then never answers: the watcher is stuck right after
/// the sink accepted, where a kill leaves the change unconfirmed.
#[derive(Default)]
struct StallAfterAccepting {
    taken: MemorySink,
    accepted: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl Sink for StallAfterAccepting {
    async fn send(&self, events: Vec<Event>) -> Result<(), SinkError> {
        self.taken.send(events).await?;
        self.accepted.notify_one();
        std::future::pending().await
    }
}

/// Waits (with a deadline) until `condition` holds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the watcher opened a watch after the `before`-th: it has listed, sent what
/// the list showed, and follows changes again.
async fn watching_after(server: &FakeApiServer, before: usize) {
    until("the watcher opens a watch", || {
        server.watches_opened() > before
    })
    .await;
}

async fn watching(server: &FakeApiServer) {
    watching_after(server, 0).await;
}

#[tokio::test]
async fn watch_emits_changes_and_a_restart_emits_what_was_missed() {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    server.apply("a", "1");
    server.apply("b", "1");
    let sink = Arc::new(MemorySink::new());
    let (stop, task) = start(&server, dir.path(), sink.clone()).await;
    watching(&server).await;
    assert!(
        sink.events().is_empty(),
        "existing objects are recorded, not emitted"
    );

    let rv = server.apply("a", "2");
    server.apply("c", "1");
    server.delete("b");
    let events = wait_for(&sink, 3).await;
    assert_eq!(
        summary(&events),
        [
            "dev.knative.apiserver.resource.update /apis/v1/namespaces/ns/configmaps/a",
            "dev.knative.apiserver.resource.add /apis/v1/namespaces/ns/configmaps/c",
            "dev.knative.apiserver.resource.delete /apis/v1/namespaces/ns/configmaps/b",
        ]
    );
    assert_eq!(events[0].id(), format!("uid-a/{rv}/update"));
    assert_eq!(
        events[0].source().to_string(),
        server.url.trim_end_matches('/')
    );

    // The stream closes and a bookmark moved the resume point: nothing is re-sent.
    let opened = server.watches_opened();
    server.bookmark();
    server.close_watches();
    watching_after(&server, opened).await;
    server.apply("d", "1");
    let events = wait_for(&sink, 4).await;
    assert_eq!(events.len(), 4, "{:?}", summary(&events));

    // Down while objects change; history is compacted, so only a relist can find the changes.
    stop.send(()).unwrap();
    task.await.unwrap();
    server.apply("c", "2");
    server.delete("a");
    server.apply("e", "1");
    server.compact();
    let (stop, task) = start(&server, dir.path(), sink.clone()).await;
    let events = wait_for(&sink, 7).await;
    let missed = summary(&events[4..]);
    assert_eq!(missed.len(), 3, "{missed:?}");
    for want in [
        "dev.knative.apiserver.resource.update /apis/v1/namespaces/ns/configmaps/c",
        "dev.knative.apiserver.resource.add /apis/v1/namespaces/ns/configmaps/e",
        "dev.knative.apiserver.resource.delete /apis/v1/namespaces/ns/configmaps/a",
    ] {
        assert!(
            missed.iter().any(|m| m == want),
            "{want} missing from {missed:?}"
        );
    }
    // The missed delete carries the object's last known state.
    let delete = events[4..]
        .iter()
        .find(|e| e.ty().ends_with(".delete"))
        .unwrap();
    let data: serde_json::Value = match delete.data().unwrap() {
        cloudevents::Data::Json(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(data["data"]["value"], "2");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_kill_after_the_sink_took_an_add_still_emits_the_delete_made_while_down() {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    server.apply("a", "1");
    let stalling = Arc::new(StallAfterAccepting::default());
    let (stop, task) = start(&server, dir.path(), stalling.clone()).await;
    watching(&server).await;
    let rv = server.apply("c", "1");
    tokio::time::timeout(Duration::from_secs(5), stalling.accepted.notified())
        .await
        .expect("the add reaches the sink");
    // Killed after the sink took the add, before the watcher could confirm it.
    stop.send(()).unwrap();
    task.await.unwrap();
    let taken = stalling.taken.events();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id(), format!("uid-c/{rv}/add"));

    // Deleted while down, with the history compacted: only the relist diff can find it.
    server.delete("c");
    server.compact();
    let opened = server.watches_opened();
    let sink = Arc::new(MemorySink::new());
    let (stop, task) = start(&server, dir.path(), sink.clone()).await;
    let events = wait_for(&sink, 2).await;
    assert_eq!(
        summary(&events),
        [
            "dev.knative.apiserver.resource.add /apis/v1/namespaces/ns/configmaps/c",
            "dev.knative.apiserver.resource.delete /apis/v1/namespaces/ns/configmaps/c",
        ]
    );
    // The add may have been delivered: it is re-sent as the same event, recognisable by id.
    assert_eq!(events[0].id(), taken[0].id());
    assert_eq!(events[1].id(), format!("uid-c/{rv}/delete"));
    let data = match events[1].data().unwrap() {
        cloudevents::Data::Json(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        data["data"]["value"], "1",
        "the delete carries the last known state"
    );
    // The watch opens only once the relist's batch was sent: nothing else came before it.
    watching_after(&server, opened).await;
    assert_eq!(sink.events().len(), 2, "{:?}", summary(&sink.events()));

    // Both are confirmed now: another restart sends nothing.
    stop.send(()).unwrap();
    task.await.unwrap();
    let opened = server.watches_opened();
    let (stop, task) = start(&server, dir.path(), sink.clone()).await;
    watching_after(&server, opened).await;
    assert_eq!(sink.events().len(), 2, "{:?}", summary(&sink.events()));
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn gone_while_watching_relists_and_emits_the_changes_in_between() {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    server.apply("a", "1");
    let sink = Arc::new(MemorySink::new());
    let (stop, task) = start(&server, dir.path(), sink.clone()).await;
    watching(&server).await;
    // Changes happen while the stream is down and the history is compacted: the re-watch
    // gets 410 Gone, and the relist must find them.
    server.refuse_watches(true);
    server.close_watches();
    until("the watcher tries to watch again", || {
        server.watches_turned_away() > 0
    })
    .await;
    server.apply("a", "2");
    server.apply("f", "1");
    server.compact();
    assert!(
        sink.events().is_empty(),
        "no watch was open to see the changes"
    );
    let opened = server.watches_opened();
    server.refuse_watches(false);
    let events = wait_for(&sink, 2).await;
    let got = summary(&events);
    assert!(
        got.contains(
            &"dev.knative.apiserver.resource.update /apis/v1/namespaces/ns/configmaps/a".to_owned()
        ),
        "{got:?}"
    );
    assert!(
        got.contains(
            &"dev.knative.apiserver.resource.add /apis/v1/namespaces/ns/configmaps/f".to_owned()
        ),
        "{got:?}"
    );
    // The watch after the relist opens once its batch was sent.
    watching_after(&server, opened).await;
    assert_eq!(sink.events().len(), 2, "nothing emitted twice");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_corrupt_state_file_is_moved_aside_and_the_watcher_starts_as_on_a_first_start() {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    server.apply("a", "1");
    let sink = Arc::new(MemorySink::new());
    let (stop, task) = start(&server, dir.path(), sink.clone()).await;
    watching(&server).await;
    stop.send(()).unwrap();
    task.await.unwrap();

    // One flipped bit in the file as written (a kill -9 cannot tear it: writes are atomic).
    let path = dir.path().join("state/ns_cms.d/v1_ConfigMap.json");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(5).position(|w| w == b"uid-a").unwrap() + 4;
    bytes[at] ^= 0x02;
    std::fs::write(&path, &bytes).unwrap();

    let opened = server.watches_opened();
    let (stop, task) = start(&server, dir.path(), sink.clone()).await;
    watching_after(&server, opened).await;
    assert!(
        sink.events().is_empty(),
        "the current list is recorded, not emitted"
    );
    let corrupt = dir.path().join("state/ns_cms.d/v1_ConfigMap.json.corrupt");
    assert_eq!(
        std::fs::read(&corrupt).unwrap(),
        bytes,
        "the damaged file is kept"
    );
    // The watcher runs on and its new state is sound: the next change is emitted.
    server.apply("b", "1");
    let events = wait_for(&sink, 1).await;
    assert_eq!(
        summary(&events),
        ["dev.knative.apiserver.resource.add /apis/v1/namespaces/ns/configmaps/b"]
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}
