//! Durable publish throughput of the embedded bus: concurrent publishers of 1 KiB events, each
//! `publish` returning only after its group commit's `fdatasync`. Also a batched publisher and a
//! subscriber reading back a backlog, for scale.
//!
//! `cargo bench -p herald-buses --bench embedded`; the data directory is a temporary directory
//! (set `TMPDIR` to measure another disk, `HERALD_BENCH_SEGMENT_MIB` to try a segment size).
//! Segments are preallocated, so the numbers include zero-filling the next segment in the
//! background and rolling onto it.

use std::sync::Arc;
use std::time::Duration;

use cloudevents::{Event, EventBuilder, EventBuilderV10};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use herald_buses::Bus;
use herald_buses::embedded::{EmbeddedBus, EmbeddedConfig};
use tokio::runtime::Runtime;
use tokio::time::Instant;

const TOPIC: &str = "knative-broker-bench-default";

/// A 1 KiB event with incompressible data (as the storage comparison in the notes used).
fn event(n: u64) -> Event {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<u8> = (0..1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    EventBuilderV10::new()
        .id(n.to_string())
        .source("/herald/bench")
        .ty("dev.herald.bench")
        .data("application/octet-stream", data)
        .build()
        .unwrap()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The default configuration; `HERALD_BENCH_SEGMENT_MIB` sets the segment size to compare.
fn open(dir: &tempfile::TempDir) -> Arc<EmbeddedBus> {
    let mut config = EmbeddedConfig::new(dir.path());
    if let Ok(mib) = std::env::var("HERALD_BENCH_SEGMENT_MIB") {
        config.segment_bytes = mib.parse::<u64>().expect("a number of MiB") << 20;
    }
    Arc::new(EmbeddedBus::open(config).unwrap())
}

/// `publishers` tasks publishing `batch`-event batches until `iters` events are durable.
async fn publish(bus: &Arc<EmbeddedBus>, publishers: u64, batch: u64, iters: u64) -> Duration {
    let events: Arc<Vec<Event>> = Arc::new((0..batch).map(event).collect());
    let batches = iters.div_ceil(batch);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..publishers {
        let (bus, events) = (bus.clone(), events.clone());
        let mine = batches / publishers + u64::from(p < batches % publishers);
        tasks.spawn(async move {
            for _ in 0..mine {
                bus.publish(TOPIC, &events).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    start.elapsed()
}

fn durable_publish(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let bus = open(&dir);
    let mut group = c.benchmark_group("embedded_publish_1KiB");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(1));
    for (publishers, batch) in [(1, 1), (16, 1), (64, 1), (256, 1), (1, 256)] {
        let id = BenchmarkId::new(format!("publishers={publishers}"), format!("batch={batch}"));
        group.bench_function(id, |b| {
            b.iter_custom(|iters| rt.block_on(publish(&bus, publishers, batch, iters)));
        });
    }
    group.finish();
}

fn read_backlog(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let bus = open(&dir);
    let mut group = c.benchmark_group("embedded_read_1KiB");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_group_acking_each", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let group = format!("g{}", rand_suffix());
                let mut sub = bus.subscribe(TOPIC, &group).await.unwrap();
                publish(&bus, 4, 256, iters).await;
                let start = Instant::now();
                for _ in 0..iters {
                    sub.next().await.unwrap().ack();
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

criterion_group!(benches, durable_publish, read_backlog);
criterion_main!(benches);
