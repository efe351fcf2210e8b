use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

async fn open(dir: &Path, now: DateTime<Utc>) -> Arc<DeliveryLog> {
    DeliveryLog::open(dir, "ns", "gh", Duration::from_secs(3600), 1000, now)
        .await
        .unwrap()
}

async fn deliver(log: &Arc<DeliveryLog>, id: &str, now: DateTime<Utc>) {
    let Seen::New(claim) = log.claim(id, now) else {
        panic!("{id} is new")
    };
    claim.commit(now).await.unwrap();
}

#[tokio::test]
async fn committed_delivery_is_recognised_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), t(0)).await;
    deliver(&log, "a-1", t(0)).await;
    assert!(matches!(log.claim("a-1", t(10)), Seen::Delivered));
    drop(log);
    let log = open(dir.path(), t(20)).await;
    assert!(matches!(log.claim("a-1", t(20)), Seen::Delivered));
}

#[tokio::test]
async fn dropped_claim_forgets_the_id_and_concurrent_claims_are_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), t(0)).await;
    let first = log.claim("x", t(0));
    assert!(matches!(log.claim("x", t(0)), Seen::InFlight));
    drop(first);
    assert!(matches!(log.claim("x", t(0)), Seen::New(_)));
}

#[tokio::test]
async fn ids_older_than_the_window_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), t(0)).await;
    deliver(&log, "old", t(0)).await;
    assert!(matches!(log.claim("old", t(3601)), Seen::New(_)));
    drop(log);
    let log = open(dir.path(), t(4000)).await;
    assert!(log.is_empty(), "pruned on open");
}

#[tokio::test]
async fn the_log_keeps_at_most_capacity_ids() {
    let dir = tempfile::tempdir().unwrap();
    let log = DeliveryLog::open(dir.path(), "ns", "gh", Duration::from_secs(3600), 3, t(0))
        .await
        .unwrap();
    for i in 0..5 {
        deliver(&log, &format!("id{i}"), t(i)).await;
    }
    assert_eq!(log.len(), 3);
    assert!(matches!(log.claim("id0", t(6)), Seen::New(_)));
    assert!(matches!(log.claim("id4", t(6)), Seen::Delivered));
}

#[tokio::test]
async fn a_torn_last_line_is_ignored_and_lines_without_a_checksum_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns_gh.deliveries");
    let ms = t(0).timestamp_millis();
    // A line from before checksums, then an append cut short.
    std::fs::write(&path, format!("{ms} good\n{ms} goo")).unwrap();
    let log = open(dir.path(), t(1)).await;
    assert_eq!(log.len(), 1);
    assert!(matches!(log.claim("good", t(1)), Seen::Delivered));
    assert!(matches!(log.claim("goo", t(1)), Seen::New(_)));
    assert!(
        !state::quarantine_path(&path).exists(),
        "a torn tail is not damage"
    );
}

#[tokio::test]
async fn a_flipped_bit_drops_only_its_line_and_keeps_the_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), t(0)).await;
    for id in ["first", "second", "third"] {
        deliver(&log, id, t(0)).await;
    }
    drop(log);
    let path = dir.path().join("ns_gh.deliveries");
    let mut bytes = std::fs::read(&path).unwrap();
    // "second" -> "sebond": the line still parses, only its checksum tells.
    let at = bytes.windows(6).position(|w| w == b"second").unwrap() + 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let log = open(dir.path(), t(1)).await;
    assert!(matches!(log.claim("first", t(1)), Seen::Delivered));
    assert!(matches!(log.claim("third", t(1)), Seen::Delivered));
    // Forgotten, so a redelivery is emitted again (a duplicate, never a loss), and the
    // damaged value is not taken for an id.
    assert!(matches!(log.claim("second", t(1)), Seen::New(_)));
    assert!(matches!(log.claim("sebond", t(1)), Seen::New(_)));
    assert_eq!(
        std::fs::read(state::quarantine_path(&path)).unwrap(),
        bytes,
        "the damaged file is kept"
    );
    // The rewritten log is clean: a second open finds nothing to complain about.
    drop(log);
    std::fs::remove_file(state::quarantine_path(&path)).unwrap();
    let log = open(dir.path(), t(2)).await;
    assert_eq!(log.len(), 2);
    assert!(!state::quarantine_path(&path).exists());
}

#[tokio::test]
async fn garbage_in_the_file_does_not_stop_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns_gh.deliveries");
    std::fs::write(&path, b"\xff\xfe\0\0 \n\n12 a b c d\nnot-a-number id\n").unwrap();
    let log = open(dir.path(), t(0)).await;
    assert!(log.is_empty());
    deliver(&log, "after", t(0)).await;
    drop(log);
    let log = open(dir.path(), t(1)).await;
    assert!(matches!(log.claim("after", t(1)), Seen::Delivered));
}

#[tokio::test]
async fn an_id_the_line_format_cannot_hold_is_refused_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), t(0)).await;
    let Seen::New(claim) = log.claim("a b\n1 forged", t(0)) else {
        panic!()
    };
    assert!(claim.commit(t(0)).await.is_err());
    drop(log);
    let log = open(dir.path(), t(1)).await;
    assert!(log.is_empty());
}

#[tokio::test]
async fn a_delivery_claimed_under_id_and_signature_is_known_by_either_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), t(0)).await;
    let Seen::New(claim) = log.claim_all(&["id-1", "signature:sha256=ab"], t(0)) else {
        panic!("new")
    };
    assert!(matches!(
        log.claim_all(&["id-2", "signature:sha256=ab"], t(0)),
        Seen::InFlight
    ));
    claim.commit(t(0)).await.unwrap();
    drop(log);
    let log = open(dir.path(), t(5)).await;
    // The same body replayed under a new delivery id, and a redelivery with a new signature.
    assert!(matches!(
        log.claim_all(&["id-2", "signature:sha256=ab"], t(5)),
        Seen::Delivered
    ));
    assert!(matches!(
        log.claim_all(&["id-1", "signature:sha256=cd"], t(5)),
        Seen::Delivered
    ));
    assert!(matches!(
        log.claim_all(&["id-3", "signature:sha256=ef"], t(5)),
        Seen::New(_)
    ));
}
