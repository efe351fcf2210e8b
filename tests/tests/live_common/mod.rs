//! Helpers of the live-operation tests: editing the watched file, reading reload counters,
//! publishing at a bounded rate.

#![allow(dead_code, reason = "each live_* test file uses a part")]

use std::collections::BTreeSet;
use std::time::Duration;

use herald_tests::fixtures::{binary_body, binary_headers, borrow};
use herald_tests::{Client, Herald};

/// Replaces the watched file the way editors and `kubectl`-style tools do: a new file renamed
/// over the old one, so the poller never reads half a file.
pub fn edit_manifests(herald: &Herald, text: &str) {
    let path = herald.manifest_path();
    let temp = path.with_extension("yaml.tmp");
    std::fs::write(&temp, text).expect("write manifests");
    std::fs::rename(&temp, path).expect("rename manifests");
}

/// `herald_config_reloads_total{result}` now (0 before the first).
pub async fn reloads(herald: &Herald, result: &str) -> u64 {
    let text = Client::new().get(&herald.url("/metrics")).await.text();
    let prefix = format!("herald_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().expect("counter value"))
}

/// Waits until `herald_config_reloads_total{result}` reaches `n`.
pub async fn wait_reloads(herald: &Herald, result: &str, n: u64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = reloads(herald, result).await;
        if now >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "herald_config_reloads_total{{result={result:?}}} is {now}, not {n}, after {timeout:?}\n{}",
            herald.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `{prefix}-{n}` for n in `range`, one every `every` (bounded by the range), each
/// retried until accepted; returns the ids in publish order.
pub async fn publish_paced(
    url: &str,
    prefix: &str,
    range: std::ops::Range<usize>,
    every: Duration,
) -> Vec<String> {
    let client = Client::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ids = Vec::new();
    for n in range {
        tick.tick().await;
        let id = format!("{prefix}-{n}");
        let headers = binary_headers(&id);
        let r = client
            .request(http::Method::POST, url, &borrow(&headers), binary_body(&id))
            .await;
        assert_eq!(r.status, 202, "publishing {id}: {}", r.text());
        ids.push(id);
    }
    ids
}

/// The ids a subscriber received, with duplicates reported.
pub fn ids_once(requests: &[herald_tests::Recorded]) -> (BTreeSet<String>, Vec<String>) {
    let mut seen = BTreeSet::new();
    let mut twice = Vec::new();
    for r in requests {
        if !seen.insert(r.id()) {
            twice.push(r.id());
        }
    }
    (seen, twice)
}

/// Sends `SIGHUP` to herald (which keeps running).
pub fn hangup(herald: &Herald) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &herald.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -HUP failed");
}
