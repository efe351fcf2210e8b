//! The embedded bus on a full disk: a real small tmpfs (needs root to mount; skipped with a
//! printed reason otherwise).

use std::path::Path;
use std::time::Duration;

use cloudevents::AttributesReader;
use herald_buses::contract::fixtures::event;
use herald_buses::embedded::testing::Tmpfs;
use herald_buses::embedded::{EmbeddedBus, EmbeddedConfig};
use herald_buses::{Bus, Subscription};

const TOPIC: &str = "t";

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("topics").join(TOPIC))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

async fn next_id(sub: &mut Box<dyn Subscription>) -> String {
    let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a delivery within 10 s")
        .unwrap();
    let id = d.event.id().to_owned();
    d.ack();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_publishes_cleans_up_and_recovers_by_itself() {
    let parent = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&parent.path().join("mnt"), "1m") else {
        return;
    };
    let mut config = EmbeddedConfig::new(disk.path());
    config.segment_bytes = 128 * 1024;
    config.flush_interval = Duration::from_millis(20);
    let bus = EmbeddedBus::open(config).unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();

    // Unconsumed, the log grows until the next segment cannot be prepared.
    let mut accepted = vec![];
    let refused = loop {
        assert!(accepted.len() < 20_000, "1 MiB never filled");
        let n = accepted.len() as u32;
        match bus.publish(TOPIC, &[event(n)]).await {
            Ok(()) => accepted.push(n.to_string()),
            Err(e) => break e,
        }
    };
    assert!(refused.is_retryable(), "{refused}");
    assert_eq!(
        leftovers(disk.path()),
        Vec::<String>::new(),
        "no half-prepared segment left"
    );
    let reason = bus.unready_reason().expect("unready while it cannot write");
    assert!(
        reason.contains("writer of topic \"t\" cannot write"),
        "{reason}"
    );

    // Consuming lets retention delete acknowledged segments (the cursor is persisted in place
    // on the full disk); the writer finds room for its next segment by itself.
    for id in &accepted {
        assert_eq!(
            &next_id(&mut sub).await,
            id,
            "every accepted event, in order"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Some(reason) = bus.unready_reason() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still unready: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = accepted.len() as u32;
    bus.publish(TOPIC, &[event(n)]).await.unwrap();
    assert_eq!(next_id(&mut sub).await, n.to_string());
}
