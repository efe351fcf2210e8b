//! Hostile storage under the embedded bus, against the built binary with real files: a flipped
//! bit in the active or a sealed segment, a cursor beyond the end of the log, a full disk (a
//! real tmpfs; needs root, skipped with a printed reason otherwise).
//!
//! The tests find the frames they damage with `embedded::testing::frame_ranges` (the log's own
//! header parser) and flip bytes at offsets of the frame format (`magic [4] | len u32 |
//! first u64 | crc u32 | header crc u32 | payload`, little-endian).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_buses::embedded::testing::{FRAME_HEADER, Tmpfs, frame_ranges, segment_files};
use herald_tests::fixtures::structured;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::{free_port, run_cli};
use herald_tests::{Client, Herald, HeraldOptions, Subscriber, eventually};
use serde_json::{Value, json};

const TOPIC: &str = "knative-broker-default-default";
const GROUP: &str = "knative-trigger-default-t";

/// Broker `default` and trigger `t` to `127.0.0.1:port`, retrying for long enough that a
/// subscriber started later gets everything.
fn manifests(port: u16) -> String {
    let mut t = trigger("t", "default", &format!("http://127.0.0.1:{port}/"));
    t["spec"]["delivery"] =
        json!({"retry": 1000, "backoffPolicy": "linear", "backoffDelay": "PT0.05S"});
    yaml(&[broker("default"), t])
}

/// An event of about 1 KiB.
fn event(id: &str) -> Value {
    let mut event = structured(id);
    event["data"] = json!({ "id": id, "pad": "x".repeat(1000) });
    event
}

fn options(args: &[&str]) -> HeraldOptions {
    HeraldOptions {
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

async fn publish(client: &Client, herald: &Herald, ids: impl Iterator<Item = String>) {
    let url = herald.broker_url("default", "default");
    for id in ids {
        let answer = client.post_structured(&url, &event(&id)).await;
        assert_eq!(answer.status, 202, "{id}: {}", answer.text());
    }
}

fn segments(data_dir: &Path) -> Vec<PathBuf> {
    segment_files(&data_dir.join("topics").join(TOPIC))
}

/// Flips one bit in the payload of `frame` of `path`.
fn damage(path: &Path, frame: (usize, usize)) {
    let mut data = std::fs::read(path).unwrap();
    data[frame.0 + FRAME_HEADER + 40] ^= 0x08;
    std::fs::write(path, data).unwrap();
}

/// Waits until the subscriber received every id of `expected` (deliveries run concurrently, so
/// in no particular order), then returns the distinct ids it received.
async fn delivered_all(sub: &Subscriber, expected: &BTreeSet<String>) -> BTreeSet<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ids: BTreeSet<String> = sub.requests().iter().map(|r| r.id()).collect();
        if ids.is_superset(expected) {
            return ids;
        }
        let missing: Vec<_> = expected.difference(&ids).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered within 60 s: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the one series of `name` in `/metrics`, if any.
async fn metric(client: &Client, herald: &Herald, name: &str) -> Option<f64> {
    let text = client.get(&herald.url("/metrics")).await.text();
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Kills herald, damages one frame chosen by `pick` among the segment files, starts the
/// subscriber and herald again; the other events all arrive, the damaged one is counted, and
/// `logged_at_open` (if any) appears in herald's log.
async fn damaged_frame_is_skipped(
    args: &[&str],
    events: usize,
    pick: fn(&[PathBuf]) -> (PathBuf, usize),
    logged_at_open: Option<&str>,
) {
    let port = free_port();
    let mut herald = Herald::start_with("embedded", &manifests(port), options(args)).await;
    let client = Client::new();
    let ids: Vec<String> = (0..events).map(|n| format!("e{n}")).collect();
    publish(&client, &herald, ids.iter().cloned()).await; // all answered 202
    herald.kill9();

    let files = segments(herald.data_dir());
    let (path, index) = pick(&files);
    let frame = frame_ranges(&path)[index];
    let data = std::fs::read(&path).unwrap();
    let damaged_id = ids
        .iter()
        .find(|id| {
            let needle = format!("\"id\":\"{id}\"");
            data[frame.0..frame.1]
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .expect("the frame holds one of the events")
        .clone();
    damage(&path, frame);

    let sub = Subscriber::start_on(port).await;
    herald.restart().await;
    publish(&client, &herald, std::iter::once("sentinel".to_owned())).await;
    let mut expected: BTreeSet<String> = ids.iter().cloned().collect();
    expected.remove(&damaged_id);
    expected.insert("sentinel".into());
    let delivered = delivered_all(&sub, &expected).await;
    assert_eq!(
        delivered, expected,
        "every event but the damaged one ({damaged_id})"
    );
    assert!(
        herald.stderr().contains("skipping damaged records"),
        "the skip is logged:\n{}",
        herald.stderr()
    );
    // Counted by the dispatcher (`herald_bus_corrupt_records_total{topic}`).
    let counted = eventually(
        Duration::from_secs(10),
        "the corrupt-records counter",
        || {
            let (client, herald) = (&client, &herald);
            async move { metric(client, herald, "herald_bus_corrupt_records_total").await }
        },
    )
    .await;
    assert_eq!(counted, 1.0);
    if let Some(line) = logged_at_open {
        eventually(Duration::from_secs(10), line, || {
            let herald = &herald;
            async move { herald.stderr().contains(line).then_some(()) }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_bit_in_the_active_segment_loses_only_that_event() {
    // Ten events, one frame each, in the one (active) segment: the fourth is damaged.
    damaged_frame_is_skipped(
        &[],
        10,
        |files| {
            assert_eq!(files.len(), 1, "one active segment");
            (files[0].clone(), 3)
        },
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_bit_in_a_sealed_segment_does_not_stop_the_trigger() {
    // 64 KiB segments of ~1 KiB events: the middle frame of the second (sealed) segment,
    // found by the CRC scan of sealed segments at open as well as by the trigger.
    damaged_frame_is_skipped(
        &["--segment-bytes", "64Ki"],
        200,
        |files| {
            assert!(files.len() > 2, "sealed segments: {}", files.len());
            let middle = frame_ranges(&files[1]).len() / 2;
            (files[1].clone(), middle)
        },
        Some("damaged frame in a sealed segment"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_beyond_the_end_of_the_log_refuses_to_start() {
    let sub = Subscriber::start().await;
    let manifests = yaml(&[broker("default"), trigger("t", "default", &sub.url("/"))]);
    let mut herald = Herald::start("embedded", &manifests).await;
    let client = Client::new();
    publish(&client, &herald, (0..5).map(|n| format!("e{n}"))).await;
    sub.wait_for(5, Duration::from_secs(30)).await;
    let (status, _) = herald.terminate().await; // persists the cursor: 5
    assert!(status.success());
    // The last frame, delivered and acknowledged, damaged: nothing valid follows it, so it is
    // indistinguishable from a torn write and the log ends at 4.
    let path = segments(herald.data_dir()).pop().unwrap();
    damage(&path, *frame_ranges(&path).last().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.yaml");
    std::fs::write(&manifest, &manifests).unwrap();
    let data_dir = herald.data_dir().to_str().unwrap().to_owned();
    let args = [
        "serve",
        "-f",
        manifest.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
    ];
    let out = run_cli(&args, Duration::from_secs(30)).await;
    assert!(!out.status.success(), "refused to start");
    for fact in [TOPIC, GROUP, "cursor 5", "(4)"] {
        assert!(out.stderr.contains(fact), "{fact:?} in:\n{}", out.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_503_reports_the_writer_and_recovers_when_space_returns() {
    let port = free_port();
    let args = ["--segment-bytes", "256Ki"];
    let mut herald = Herald::start_with("embedded", &manifests(port), options(&args)).await;
    herald.kill9();
    // A 2 MiB disk as --data-dir; the subscriber is down, so nothing is consumed.
    let Some(_disk) = Tmpfs::mount(herald.data_dir(), "2m") else {
        return;
    };
    herald.restart().await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let mut accepted = vec![];
    let refused = loop {
        assert!(accepted.len() < 10_000, "2 MiB never filled");
        let id = format!("e{}", accepted.len());
        let answer = client.post_structured(&url, &event(&id)).await;
        match answer.status {
            202 => accepted.push(id),
            _ => break answer,
        }
    };
    assert_eq!(refused.status, 503, "{}", refused.text());
    let topic_dir = herald.data_dir().join("topics").join(TOPIC);
    let leftovers: Vec<_> = std::fs::read_dir(&topic_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no half-prepared segment: {leftovers:?}"
    );
    let ready = client.get(&herald.url("/readyz")).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .text()
            .contains(&format!("writer of topic \"{TOPIC}\" cannot write")),
        "{}",
        ready.text()
    );

    // Space comes back as the trigger consumes: retention deletes what it acknowledged.
    let sub = Subscriber::start_on(port).await;
    eventually(Duration::from_secs(60), "ready again", || {
        let client = client.clone();
        let url = herald.url("/readyz");
        async move { (client.get(&url).await.status == 200).then_some(()) }
    })
    .await;
    publish(&client, &herald, std::iter::once("sentinel".to_owned())).await;
    let mut expected: BTreeSet<String> = accepted.into_iter().collect();
    expected.insert("sentinel".into());
    delivered_all(&sub, &expected).await; // nothing acknowledged (answered 202) is lost
    herald.kill9();
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_limits_delete_unconsumed_events_and_count_them() {
    // The subscriber is down: nothing is consumed, and 64 KiB of retention keeps about one
    // sealed segment of ~1 KiB events.
    let port = free_port();
    let args = ["--segment-bytes", "64Ki", "--retention-max-bytes", "64Ki"];
    let herald = Herald::start_with("embedded", &manifests(port), options(&args)).await;
    let client = Client::new();
    publish(&client, &herald, (0..300).map(|n| format!("e{n}"))).await;
    let expired = eventually(Duration::from_secs(30), "expired events counted", || {
        let (client, herald) = (&client, &herald);
        async move {
            let n = metric(client, herald, "herald_events_expired_total").await?;
            (n > 0.0).then_some(n)
        }
    })
    .await;
    assert!(expired < 300.0, "{expired}");
    let text = client.get(&herald.url("/metrics")).await.text();
    assert!(
        text.contains(&format!("herald_events_expired_total{{topic=\"{TOPIC}\"}}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_flags_are_refused_for_a_network_bus_and_bad_values_named() {
    let out = run_cli(
        &[
            "serve",
            "--bus",
            "nats://127.0.0.1:1",
            "--retention-max-age",
            "7d",
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(!out.status.success());
    assert!(out.stderr.contains("embedded bus only"), "{}", out.stderr);
    let out = run_cli(
        &["serve", "--retention-max-bytes", "10GB"],
        Duration::from_secs(30),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("invalid size \"10GB\""),
        "{}",
        out.stderr
    );
}
