//! Damaged storage under the embedded bus: a flipped bit in a frame with valid frames after it
//! (active or sealed segment), an event that does not decode, a cursor beyond the end of the
//! log, and data directories written in frame format 1.
//!
//! The tests find the frames they damage with `embedded::testing::frame_ranges` (the log's own
//! header parser) and flip bytes at offsets of the frame format (`magic [4] | len u32 |
//! first u64 | crc u32 | header crc u32 | payload`, little-endian).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cloudevents::AttributesReader;
use herald_buses::contract::fixtures::event;
use herald_buses::embedded::testing::{FRAME_HEADER, frame_ranges, segment_files};
use herald_buses::embedded::{EmbeddedBus, EmbeddedConfig};
use herald_buses::{Bus, BusError, Subscription};

const TOPIC: &str = "t";

fn config(dir: &Path, segment_bytes: u64) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::new(dir);
    config.segment_bytes = segment_bytes;
    config.flush_interval = Duration::from_millis(20);
    config
}

fn topic_dir(dir: &Path) -> PathBuf {
    dir.join("topics").join(TOPIC)
}

/// The segment files of the test topic, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    segment_files(&topic_dir(dir))
}

fn flip_bit(path: &Path, offset: usize) {
    let mut data = fs::read(path).unwrap();
    data[offset] ^= 0x10;
    fs::write(path, data).unwrap();
}

/// What a subscription yields until it has delivered (and acknowledged) the event `last`:
/// event ids, and `corrupt@POSITION` for each damaged record reported.
async fn read_until(sub: &mut Box<dyn Subscription>, last: &str) -> Vec<String> {
    let mut seen = vec![];
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("no delivery within 10 s after {seen:?}"));
        match next {
            Ok(d) => {
                let id = d.event.id().to_owned();
                d.ack();
                seen.push(id.clone());
                if id == last {
                    return seen;
                }
            }
            Err(BusError::Corrupt { position, .. }) => seen.push(format!("corrupt@{position}")),
            Err(e) => panic!("unexpected error {e} after {seen:?}"),
        }
    }
}

fn ids(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

async fn publish_one_by_one(bus: &EmbeddedBus, range: std::ops::Range<u32>) {
    for n in range {
        bus.publish(TOPIC, &[event(n)]).await.unwrap();
    }
}

#[tokio::test]
async fn a_flipped_bit_in_the_active_segment_loses_only_its_frame() {
    // The length, the position and the payload of the damaged frame.
    for (what, at) in [
        ("length", 5),
        ("position", 9),
        ("payload", FRAME_HEADER + 6),
    ] {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = EmbeddedBus::open(config(dir.path(), 64 * 1024)).unwrap();
            drop(bus.subscribe(TOPIC, "g").await.unwrap());
            publish_one_by_one(&bus, 0..10).await;
        }
        let segment = segments(dir.path()).pop().unwrap();
        let written = frame_ranges(&segment);
        flip_bit(&segment, written[3].0 + at);
        let after_damage = fs::read(&segment).unwrap()[written[3].0..written[9].1].to_vec();

        {
            let bus = EmbeddedBus::open(config(dir.path(), 64 * 1024)).unwrap();
            assert_eq!(
                fs::read(&segment).unwrap()[written[3].0..written[9].1],
                after_damage,
                "{what}: the damaged frame and those after it are kept, not zeroed"
            );
            let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
            bus.publish(TOPIC, &[event(10)]).await.unwrap();
            let mut expected = ids(0..3);
            expected.push("corrupt@3".into());
            expected.extend(ids(4..11));
            assert_eq!(read_until(&mut sub, "10").await, expected, "{what}");
        }
        // Skipped means acknowledged: after a restart nothing comes back.
        let bus = EmbeddedBus::open(config(dir.path(), 64 * 1024)).unwrap();
        let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
        bus.publish(TOPIC, &[event(11)]).await.unwrap();
        assert_eq!(read_until(&mut sub, "11").await, ["11"], "{what}");
    }
}

#[tokio::test]
async fn a_flipped_bit_in_a_sealed_segment_is_skipped_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(config(dir.path(), 1024)).unwrap();
    drop(bus.subscribe(TOPIC, "g").await.unwrap());
    publish_one_by_one(&bus, 0..60).await;
    let files = segments(dir.path());
    assert!(files.len() > 4, "small segments roll: {}", files.len());
    // Damaged while the bus runs (read through the page cache): the middle frame of the second
    // segment, and the last frame of the third (no valid frame follows it in its segment).
    let base =
        |path: &Path| -> u32 { path.file_stem().unwrap().to_str().unwrap().parse().unwrap() };
    let second = frame_ranges(&files[1]);
    let middle = second.len() / 2;
    flip_bit(&files[1], second[middle].0 + FRAME_HEADER + 2);
    let third = frame_ranges(&files[2]);
    flip_bit(&files[2], third.last().unwrap().0 + FRAME_HEADER + 2);
    let damaged = [base(&files[1]) + middle as u32, base(&files[3]) - 1];

    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    bus.publish(TOPIC, &[event(60)]).await.unwrap();
    let expected: Vec<String> = (0..61)
        .map(|n| {
            if damaged.contains(&n) {
                format!("corrupt@{n}")
            } else {
                n.to_string()
            }
        })
        .collect();
    assert_eq!(read_until(&mut sub, "60").await, expected);
    drop(sub);
    drop(bus); // persists the cursor and releases the directory

    // A restart neither brings the skipped records back nor loses anything else.
    let bus = EmbeddedBus::open(config(dir.path(), 1024)).unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    bus.publish(TOPIC, &[event(61)]).await.unwrap();
    assert_eq!(read_until(&mut sub, "61").await, ["61"]);
}

#[tokio::test]
async fn an_event_that_does_not_decode_is_skipped_and_its_neighbours_delivered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = EmbeddedBus::open(config(dir.path(), 64 * 1024)).unwrap();
        drop(bus.subscribe(TOPIC, "g").await.unwrap());
        let batch: Vec<_> = (0..3).map(event).collect();
        bus.publish(TOPIC, &batch).await.unwrap();
    }
    // Checksums that match over an event that does not decode: what an encoder bug stores.
    let segment = segments(dir.path()).pop().unwrap();
    let mut data = fs::read(&segment).unwrap();
    let (start, end) = frame_ranges(&segment)[0];
    let payload = start + FRAME_HEADER;
    let first_size = u32::from_le_bytes(data[payload + 4..payload + 8].try_into().unwrap());
    let second = payload + 8 + first_size as usize;
    data[second + 4..second + 12].fill(0xFF); // the second event's leading bytes
    let crc = crc32fast::hash(&data[payload..end]);
    data[start + 16..start + 20].copy_from_slice(&crc.to_le_bytes());
    let header_crc = crc32fast::hash(&data[start..start + 20]);
    data[start + 20..start + 24].copy_from_slice(&header_crc.to_le_bytes());
    fs::write(&segment, data).unwrap();

    let bus = EmbeddedBus::open(config(dir.path(), 64 * 1024)).unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    assert_eq!(read_until(&mut sub, "2").await, ["0", "corrupt@1", "2"]);
}

#[tokio::test]
async fn a_cursor_beyond_the_end_of_the_log_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = EmbeddedBus::open(config(dir.path(), 64 * 1024)).unwrap();
        let mut sub = bus.subscribe(TOPIC, "knative-trigger-a-b").await.unwrap();
        publish_one_by_one(&bus, 0..5).await;
        read_until(&mut sub, "4").await;
    }
    // The last frame, acknowledged by the group, damaged: nothing valid follows it, so it reads
    // as a torn tail and the log ends at 4 while the group's cursor is 5.
    let segment = segments(dir.path()).pop().unwrap();
    let last = *frame_ranges(&segment).last().unwrap();
    flip_bit(&segment, last.0 + FRAME_HEADER + 2);
    for _ in 0..2 {
        let err = EmbeddedBus::open(config(dir.path(), 64 * 1024)).unwrap_err();
        let message = err.to_string();
        for fact in ["\"knative-trigger-a-b\"", "topic \"t\"", "cursor 5", "(4)"] {
            assert!(message.contains(fact), "{fact} in {message}");
        }
    }
}

#[tokio::test]
async fn a_topic_written_in_frame_format_1_is_converted_and_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = EmbeddedBus::open(config(dir.path(), 1024)).unwrap();
        let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
        publish_one_by_one(&bus, 0..30).await;
        read_until(&mut sub, "9").await;
    }
    // What an earlier version wrote: `len | crc | payload` frames (the last segment zero-filled
    // after them), no `format` file, a text cursor file.
    for path in segments(dir.path()) {
        let data = fs::read(&path).unwrap();
        let mut old = vec![];
        for (start, end) in frame_ranges(&path) {
            let payload = &data[start + FRAME_HEADER..end];
            old.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            old.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            old.extend_from_slice(payload);
        }
        if data.len() > old.len() && path == *segments(dir.path()).last().unwrap() {
            old.resize(data.len(), 0);
        }
        fs::write(&path, old).unwrap();
    }
    fs::remove_file(topic_dir(dir.path()).join("format")).unwrap();
    let cursors = topic_dir(dir.path()).join("groups");
    let cursor = fs::read_dir(&cursors)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::write(&cursor, "10\ng\n").unwrap();

    let bus = EmbeddedBus::open(config(dir.path(), 1024)).unwrap();
    assert!(topic_dir(dir.path()).join("format").exists());
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    bus.publish(TOPIC, &[event(30)]).await.unwrap();
    assert_eq!(read_until(&mut sub, "30").await, ids(10..31));
}
