//! Publishers that count what was accepted, and the check that all of it was delivered.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fixtures::{binary_body, binary_headers, borrow};
use crate::{Client, Recorded, Subscriber};

/// Ids that got a `202`.
pub type Accepted = Arc<Mutex<BTreeSet<String>>>;

/// Publishes `p{publisher}-{n}` for n in 0..count, one at a time. A failed publish (herald
/// down, or not 202) is retried until `deadline`, so a kill in the middle only delays it.
pub async fn publisher(url: String, publisher: usize, count: usize, accepted: Accepted) {
    let client = Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for n in 0..count {
        let id = format!("p{publisher}-{n}");
        let headers = binary_headers(&id);
        loop {
            let r = client
                .try_request(
                    http::Method::POST,
                    &url,
                    &borrow(&headers),
                    binary_body(&id),
                    Duration::from_secs(5),
                )
                .await;
            if r.is_ok_and(|r| r.status == 202) {
                accepted.lock().unwrap().insert(id);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "publisher {publisher} could not publish {id} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until every accepted id was delivered; reports lost ids and duplicates.
pub async fn assert_all_delivered(
    sub: &Subscriber,
    accepted: &BTreeSet<String>,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let delivered: BTreeSet<String> = sub.requests().iter().map(Recorded::id).collect();
        let lost: Vec<&String> = accepted.difference(&delivered).collect();
        if lost.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{} of {} accepted events never delivered within {timeout:?}, e.g. {:?}",
                lost.len(),
                accepted.len(),
                &lost[..lost.len().min(20)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = sub
        .settle(Duration::from_millis(300), Duration::from_secs(10))
        .await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &requests {
        *counts.entry(r.id()).or_default() += 1;
    }
    let duplicates: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let unknown = counts.keys().filter(|id| !accepted.contains(*id)).count();
    eprintln!(
        "accepted {}, delivered {} distinct in {} requests, {} duplicated ids {:?}, {} delivered without a 202",
        accepted.len(),
        counts.len(),
        requests.len(),
        duplicates.len(),
        &duplicates[..duplicates.len().min(20)],
        unknown
    );
}
