//! The Ping scheduler under paused time: one event per scheduled time, across restarts.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures and write files directly"
)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Event};
use herald_sources::manifest::{PingSourceSpec, SourceMeta};
use herald_sources::ping::{self, Clock, PingConfig, PingOutcome};
use herald_sources::sink::MemorySink;
use herald_sources::{Sink, SinkError};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn config(schedule: &str) -> Arc<PingConfig> {
    let yaml = format!("schedule: '{schedule}'\ndata: hello\nsink: {{uri: http://x}}\n");
    let spec: PingSourceSpec = serde_saphyr::from_str(&yaml).unwrap();
    let meta = SourceMeta {
        namespace: "ns".into(),
        name: "tick".into(),
        ..Default::default()
    };
    Arc::new(spec.compile(&meta).unwrap())
}

/// Runs the scheduler from wall time `start` for `run_for` of (paused) time.
async fn run_for(
    cfg: &Arc<PingConfig>,
    sink: Arc<dyn Sink>,
    state: &Path,
    start: &str,
    run_for: Duration,
) -> Vec<PingOutcome> {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&outcomes);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ping::run(
        Arc::clone(cfg),
        sink,
        state.to_owned(),
        Clock::starting_at(at(start)),
        Arc::new(move |o| record.lock().unwrap().push(o)),
        async move {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(run_for).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    outcomes.lock().unwrap().clone()
}

fn times(events: &[Event]) -> Vec<DateTime<Utc>> {
    events.iter().map(|e| *e.time().unwrap()).collect()
}

#[tokio::test(start_paused = true)]
async fn emits_one_event_per_scheduled_minute() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let cfg = config("* * * * *");
    run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:00:30Z",
        Duration::from_secs(200),
    )
    .await;
    assert_eq!(
        times(&sink.events()),
        vec![
            at("2024-03-01T10:01:00Z"),
            at("2024-03-01T10:02:00Z"),
            at("2024-03-01T10:03:00Z")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn first_start_emits_no_past_times() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let cfg = config("0 * * * *");
    run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:59:00Z",
        Duration::from_secs(30),
    )
    .await;
    assert!(sink.events().is_empty());
}

#[tokio::test(start_paused = true)]
async fn reload_within_a_minute_emits_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let cfg = config("* * * * *");
    run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:00:30Z",
        Duration::from_secs(60),
    )
    .await;
    // The reloaded source starts 10 s later, still within the minute of the last tick.
    run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:01:40Z",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        times(&sink.events()),
        vec![at("2024-03-01T10:01:00Z"), at("2024-03-01T10:02:00Z")]
    );
}

#[tokio::test(start_paused = true)]
async fn restart_after_downtime_catches_up_only_the_latest_missed_tick() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let cfg = config("* * * * *");
    run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:00:30Z",
        Duration::from_secs(60),
    )
    .await;
    // Down from 10:01:30 to 10:05:10: 10:02..10:05 were missed; only 10:05 is emitted, then 10:06.
    run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:05:10Z",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        times(&sink.events()),
        vec![
            at("2024-03-01T10:01:00Z"),
            at("2024-03-01T10:05:00Z"),
            at("2024-03-01T10:06:00Z")
        ]
    );
}

/// Fails its first `failures` sends, then keeps events.
struct FlakySink {
    failures: AtomicUsize,
    inner: MemorySink,
}

#[async_trait]
impl Sink for FlakySink {
    async fn send(&self, events: Vec<Event>) -> Result<(), SinkError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(SinkError::Unavailable {
                message: "bus down".into(),
            });
        }
        self.inner.send(events).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_sink_is_retried_and_the_tick_emitted_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FlakySink {
        failures: AtomicUsize::new(3),
        inner: MemorySink::new(),
    });
    let cfg = config("* * * * *");
    let outcomes = run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:00:30Z",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        times(&sink.inner.events()),
        vec![at("2024-03-01T10:01:00Z")]
    );
    assert_eq!(
        outcomes,
        vec![PingOutcome::Emitted {
            scheduled: at("2024-03-01T10:01:00Z")
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_tick_the_sink_never_takes_is_given_up_at_the_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FlakySink {
        failures: AtomicUsize::new(usize::MAX),
        inner: MemorySink::new(),
    });
    let cfg = config("* * * * *");
    let outcomes = run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:00:30Z",
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(
        outcomes.first(),
        Some(&PingOutcome::SinkFailed {
            scheduled: at("2024-03-01T10:01:00Z"),
            reason: "sink_unavailable"
        })
    );
    assert!(sink.inner.events().is_empty());
}

#[tokio::test(start_paused = true)]
async fn corrupt_progress_is_moved_aside_and_the_schedule_goes_on_without_emitting_twice() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let cfg = config("* * * * *");
    run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:00:30Z",
        Duration::from_secs(60),
    )
    .await;
    // Cut short, as a copy or a disk could leave it.
    let path = dir.path().join("ns_tick.json");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    run_for(
        &cfg,
        sink.clone(),
        dir.path(),
        "2024-03-01T10:05:10Z",
        Duration::from_secs(60),
    )
    .await;
    // Started as a first start: no past time (with its progress intact, the catch-up tick
    // 10:05 would be emitted), so nothing twice; the schedule goes on at 10:06.
    assert_eq!(
        times(&sink.events()),
        vec![at("2024-03-01T10:01:00Z"), at("2024-03-01T10:06:00Z")]
    );
    assert_eq!(
        std::fs::read(dir.path().join("ns_tick.json.corrupt")).unwrap(),
        &bytes[..bytes.len() / 2],
        "the damaged file is kept"
    );
}
