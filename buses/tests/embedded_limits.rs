//! The embedded bus's bounds: retention of disk space, the publish queue, the directory lock.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cloudevents::AttributesReader;
use herald_buses::contract::fixtures::event;
use herald_buses::embedded::{EmbeddedBus, EmbeddedConfig};
use herald_buses::{Bus, BusError, Delivery, Subscription};

const TOPIC: &str = "t";

/// Small segments and a fast flusher, so retention is visible within a test.
fn config(dir: &Path) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::new(dir);
    config.segment_bytes = 1024;
    config.flush_interval = Duration::from_millis(20);
    config
}

fn segment_count(dir: &Path) -> usize {
    fs::read_dir(dir.join("topics").join(TOPIC))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count()
}

fn segment_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir.join("topics").join(TOPIC))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a delivery within 5 s")
        .unwrap()
}

/// Waits (bounded) until `done` holds; retention runs on the flusher's interval.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

async fn publish_one_by_one(bus: &EmbeddedBus, count: u32) {
    for n in 0..count {
        bus.publish(TOPIC, &[event(n)]).await.unwrap();
    }
}

#[tokio::test]
async fn segments_every_group_acknowledged_are_deleted_and_unacknowledged_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(config(dir.path())).unwrap();
    let mut fast = bus.subscribe(TOPIC, "fast").await.unwrap();
    let mut slow = bus.subscribe(TOPIC, "slow").await.unwrap();
    publish_one_by_one(&bus, 60).await;
    let written = segment_count(dir.path());
    assert!(written > 5, "small segments roll: {written}");

    for _ in 0..60 {
        next(&mut fast).await.ack();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        segment_count(dir.path()),
        written,
        "the slow group still needs them"
    );

    let mut held = vec![];
    for _ in 0..30 {
        held.push(next(&mut slow).await);
    }
    for d in held.drain(..20) {
        d.ack();
    }
    // Segments wholly below position 20 go; the rest is still needed by "slow".
    assert!(eventually(|| segment_count(dir.path()) < written).await);
    let kept = segment_count(dir.path());
    assert!(kept > 1);
    drop(held); // positions 20..30 unacknowledged: they come back
    drop(slow);
    let mut slow = bus.subscribe(TOPIC, "slow").await.unwrap();
    let first = next(&mut slow).await;
    assert_eq!(first.event.id(), "20");
    first.ack();
    for _ in 21..60 {
        next(&mut slow).await.ack();
    }
    assert!(
        eventually(|| segment_count(dir.path()) == 1).await,
        "only the active segment"
    );
}

#[tokio::test]
async fn max_bytes_deletes_unconsumed_segments_and_the_group_skips_forward() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.retention.max_bytes = Some(2048);
    let bus = EmbeddedBus::open(config).unwrap();
    drop(bus.subscribe(TOPIC, "idle").await.unwrap());
    publish_one_by_one(&bus, 100).await;
    // Bounded by the limit plus the active segment (never deleted) and one frame over.
    assert!(eventually(|| segment_bytes(dir.path()) <= 2048 + 1024 + 200).await);

    let mut sub = bus.subscribe(TOPIC, "idle").await.unwrap();
    let first = next(&mut sub).await;
    let skipped_to: u32 = first.event.id().parse().unwrap();
    assert!(skipped_to > 0, "the deleted events are skipped");
    assert_eq!(first.position, skipped_to as u64);
    assert_eq!(
        bus.expired_events(),
        [(TOPIC.to_owned(), skipped_to as u64)],
        "every deleted event was unconsumed: counted as expired"
    );
    let mut last = first.position;
    first.ack();
    while last < 99 {
        let d = next(&mut sub).await;
        assert_eq!(d.position, last + 1, "contiguous after the skip");
        last = d.position;
        d.ack();
    }
}

#[tokio::test]
async fn max_age_deletes_old_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.retention.max_age = Some(Duration::from_millis(100));
    let bus = EmbeddedBus::open(config).unwrap();
    drop(bus.subscribe(TOPIC, "idle").await.unwrap());
    publish_one_by_one(&bus, 30).await;
    assert!(segment_count(dir.path()) > 1);
    assert!(eventually(|| segment_count(dir.path()) == 1).await);
    let [(topic, expired)] = &bus.expired_events()[..] else {
        panic!("one topic");
    };
    assert_eq!(topic, TOPIC);
    assert!(
        *expired > 0 && *expired < 30,
        "{expired}: the sealed segments' events"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn publish_over_the_queue_bound_is_refused_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.max_pending_bytes = 16 * 1024;
    let bus = Arc::new(EmbeddedBus::open(config).unwrap());
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    // All publishes queue before the writer's first fsync can answer any of them.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..200u32 {
        let bus = bus.clone();
        let batch: Vec<_> = (0..4).map(|k| event(n * 4 + k)).collect();
        tasks.spawn(async move { (n, bus.publish(TOPIC, &batch).await) });
    }
    let (mut accepted, mut refused) = (vec![], 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            (n, Ok(())) => accepted.extend((0..4).map(|k| (n * 4 + k).to_string())),
            (_, Err(BusError::Overloaded { .. })) => refused += 1,
            (_, Err(e)) => panic!("unexpected {e}"),
        }
    }
    assert!(refused > 0, "the bound was hit");
    assert!(!accepted.is_empty());
    // Exactly what was accepted is stored.
    let mut stored = vec![];
    for _ in 0..accepted.len() {
        stored.push(next(&mut sub).await.event.id().to_owned());
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(extra.is_err(), "a refused event was stored");
    stored.sort();
    accepted.sort();
    assert_eq!(stored, accepted);
    // Once drained, publishing works again.
    bus.publish(TOPIC, &[event(9999)]).await.unwrap();
}

#[tokio::test]
async fn a_batch_larger_than_the_queue_bound_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.max_pending_bytes = 1024;
    let bus = EmbeddedBus::open(config).unwrap();
    let batch: Vec<_> = (0..100).map(event).collect();
    let err = bus.publish(TOPIC, &batch).await.unwrap_err();
    assert!(
        matches!(err, BusError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_bus_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).unwrap();
    let err = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).unwrap_err();
    assert!(matches!(err, BusError::Unavailable { .. }), "{err}");
    drop(bus);
    EmbeddedBus::open(EmbeddedConfig::new(dir.path())).unwrap();
}

#[tokio::test]
async fn after_close_publish_is_unavailable_and_subscribers_stop() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    bus.publish(TOPIC, &[event(1)]).await.unwrap();
    next(&mut sub).await.ack();
    bus.close().await;
    let err = bus.publish(TOPIC, &[event(2)]).await.unwrap_err();
    assert!(matches!(err, BusError::Unavailable { .. }), "{err}");
    let err = tokio::time::timeout(Duration::from_secs(1), sub.next())
        .await
        .expect("a closed bus does not leave subscribers waiting")
        .unwrap_err();
    assert!(err.is_retryable());
}

#[tokio::test]
async fn retain_groups_removes_every_other_group_and_its_hold_on_retention() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = EmbeddedBus::open(config(dir.path())).unwrap();
        assert!(
            bus.retain_groups(TOPIC, &[]).await.unwrap().is_empty(),
            "no topic yet"
        );
        for group in ["old-a", "kept", "old-b"] {
            drop(bus.subscribe(TOPIC, group).await.unwrap());
        }
        publish_one_by_one(&bus, 30).await;
    }
    // At startup, before any subscriber of the current triggers runs.
    let bus = EmbeddedBus::open(config(dir.path())).unwrap();
    let removed = bus.retain_groups(TOPIC, &["kept", "never-joined"]).await;
    assert_eq!(removed.unwrap(), ["old-a", "old-b"]);
    assert!(
        bus.retain_groups(TOPIC, &["kept"])
            .await
            .unwrap()
            .is_empty()
    );
    let cursors = fs::read_dir(dir.path().join("topics").join(TOPIC).join("groups"))
        .unwrap()
        .count();
    assert_eq!(cursors, 1, "only the kept group's cursor file remains");

    let written = segment_count(dir.path());
    assert!(written > 1);
    let mut kept = bus.subscribe(TOPIC, "kept").await.unwrap();
    for _ in 0..30 {
        next(&mut kept).await.ack();
    }
    assert!(
        eventually(|| segment_count(dir.path()) == 1).await,
        "only the kept group held the segments back"
    );
    // A removed group that comes back starts afresh at the end.
    let mut again = bus.subscribe(TOPIC, "old-a").await.unwrap();
    bus.publish(TOPIC, &[event(30)]).await.unwrap();
    assert_eq!(next(&mut again).await.event.id(), "30");
}
