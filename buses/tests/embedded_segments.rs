//! Preallocated segments of the embedded bus: zeros after the last frame, torn writes inside a
//! preallocated file, rolls onto prepared segments, frames larger than a segment, and segments
//! written before preallocation.
//!
//! The tests read the frame format (`magic [4] | len u32 | first u64 | crc u32 | header crc u32
//! | payload`, little-endian) to find where a segment's content ends.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cloudevents::AttributesReader;
use herald_buses::contract::fixtures::event;
use herald_buses::embedded::{EmbeddedBus, EmbeddedConfig};
use herald_buses::{Bus, Subscription};

const TOPIC: &str = "t";
const SEGMENT: u64 = 16 * 1024;

fn config(dir: &Path) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::new(dir);
    config.segment_bytes = SEGMENT;
    config
}

/// The segment files of the test topic, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir.join("topics").join(TOPIC))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

const MAGIC: [u8; 4] = [0xF7, b'H', b'L', b'F'];
const HEADER: usize = 24;

/// The byte ranges of the frames in a segment file, up to the first bytes that are not a frame
/// header (the zeros after the last frame) or the end of the file.
fn frames(path: &Path) -> Vec<(u64, u64)> {
    let data = fs::read(path).unwrap();
    let mut frames = vec![];
    let mut at = 0usize;
    while at + HEADER <= data.len() && data[at..at + 4] == MAGIC {
        let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
        frames.push((at as u64, (at + HEADER + len) as u64));
        at += HEADER + len;
    }
    frames
}

fn content_len(path: &Path) -> u64 {
    frames(path).last().map_or(0, |&(_, end)| end)
}

/// Every event the group receives until nothing arrives for a while, acknowledged.
async fn drain(sub: &mut Box<dyn Subscription>) -> Vec<String> {
    let mut ids = vec![];
    while let Ok(delivery) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        let delivery = delivery.unwrap();
        ids.push(delivery.event.id().to_owned());
        delivery.ack();
    }
    ids
}

fn ids(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn a_preallocated_segment_reopens_at_the_end_of_its_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = EmbeddedBus::open(config(dir.path())).unwrap();
        drop(bus.subscribe(TOPIC, "g").await.unwrap());
        for n in 10..20 {
            bus.publish(TOPIC, &[event(n)]).await.unwrap();
        }
    }
    let [segment] = &segments(dir.path())[..] else {
        panic!("one segment expected");
    };
    assert_eq!(
        fs::metadata(segment).unwrap().len(),
        SEGMENT,
        "preallocated"
    );
    assert_eq!(frames(segment).len(), 10, "zeros follow the last frame");

    let bus = EmbeddedBus::open(config(dir.path())).unwrap();
    bus.publish(TOPIC, &[event(20), event(21)]).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    assert_eq!(drain(&mut sub).await, ids(10..22));
    assert_eq!(
        frames(segment).len(),
        11,
        "appended after the recovered end"
    );
}

#[tokio::test]
async fn a_torn_write_in_a_preallocated_segment_is_zeroed_and_never_read_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = EmbeddedBus::open(config(dir.path())).unwrap();
        drop(bus.subscribe(TOPIC, "g").await.unwrap());
        for n in 10..20 {
            bus.publish(TOPIC, &[event(n)]).await.unwrap();
        }
    }
    let segment = segments(dir.path()).pop().unwrap();
    let written = frames(&segment);
    let (first, end) = (written[0], written.last().unwrap().1);
    let frame_len = first.1 - first.0;
    assert!(
        written.iter().all(|(s, e)| e - s == frame_len),
        "one-event frames of two-digit ids are all the same size"
    );
    // A crash in the middle of one write of several frames: the first frame's pages are torn
    // (a header announcing more than follows, then junk), while a later, whole but stale frame
    // with valid checksums (a copy of the first one, so its position lies behind) reached the
    // disk right where the next one-event frame will end.
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    let mut torn = 500u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0xAB; 40]);
    file.write_all_at(&torn, end).unwrap();
    let stale = fs::read(&segment).unwrap()[first.0 as usize..first.1 as usize].to_vec();
    file.write_all_at(&stale, end + frame_len).unwrap();
    drop(file);

    {
        let bus = EmbeddedBus::open(config(dir.path())).unwrap();
        let data = fs::read(&segment).unwrap();
        assert!(
            data[end as usize..].iter().all(|&b| b == 0),
            "the torn write is zeroed"
        );
        // Acknowledged after recovery: one frame of the same size, ending where the stale
        // frame began. Nothing follows it.
        bus.publish(TOPIC, &[event(20)]).await.unwrap();
    }
    let bus = EmbeddedBus::open(config(dir.path())).unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    assert_eq!(
        drain(&mut sub).await,
        ids(10..21),
        "exactly the acked events"
    );
    bus.publish(TOPIC, &[event(21), event(22)]).await.unwrap();
    assert_eq!(drain(&mut sub).await, ids(21..23));
}

#[tokio::test]
async fn publishes_roll_onto_prepared_segments_cut_to_their_content() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = EmbeddedBus::open(config(dir.path())).unwrap();
        drop(bus.subscribe(TOPIC, "g").await.unwrap());
        for n in 100..700 {
            bus.publish(TOPIC, &[event(n)]).await.unwrap();
        }
    }
    let files = segments(dir.path());
    assert!(files.len() > 3, "rolled: {} segments", files.len());
    let (active, sealed) = files.split_last().unwrap();
    for path in sealed {
        let len = fs::metadata(path).unwrap().len();
        assert_eq!(
            len,
            content_len(path),
            "{} is cut to its content",
            path.display()
        );
        assert!(len <= SEGMENT);
    }
    assert_eq!(fs::metadata(active).unwrap().len(), SEGMENT);

    let bus = EmbeddedBus::open(config(dir.path())).unwrap();
    bus.publish(TOPIC, &[event(700)]).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    assert_eq!(drain(&mut sub).await, ids(100..701));
}

#[tokio::test]
async fn a_batch_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.segment_bytes = 1024;
    {
        let bus = EmbeddedBus::open(config.clone()).unwrap();
        drop(bus.subscribe(TOPIC, "g").await.unwrap());
        bus.publish(TOPIC, &[event(10)]).await.unwrap();
        let big: Vec<_> = (11..61).map(event).collect();
        bus.publish(TOPIC, &big).await.unwrap();
        bus.publish(TOPIC, &[event(61)]).await.unwrap();
    }
    let files = segments(dir.path());
    let sizes: Vec<_> = files.iter().map(|p| frames(p).len()).collect();
    assert_eq!(sizes, [1, 1, 1], "small, big, small: one frame each");
    let big = fs::metadata(&files[1]).unwrap().len();
    assert!(big > 1024);
    assert_eq!(big, content_len(&files[1]));

    let bus = EmbeddedBus::open(config).unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    assert_eq!(drain(&mut sub).await, ids(10..62));
}

#[tokio::test]
async fn a_segment_written_before_preallocation_opens_and_is_extended() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = EmbeddedBus::open(config(dir.path())).unwrap();
        drop(bus.subscribe(TOPIC, "g").await.unwrap());
        for n in 10..20 {
            bus.publish(TOPIC, &[event(n)]).await.unwrap();
        }
    }
    // The old format: the file ends where its last frame does.
    let segment = segments(dir.path()).pop().unwrap();
    let end = content_len(&segment);
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(end)
        .unwrap();

    let bus = EmbeddedBus::open(config(dir.path())).unwrap();
    assert_eq!(fs::metadata(&segment).unwrap().len(), SEGMENT, "extended");
    bus.publish(TOPIC, &[event(20)]).await.unwrap();
    let mut sub = bus.subscribe(TOPIC, "g").await.unwrap();
    assert_eq!(drain(&mut sub).await, ids(10..21));
}
