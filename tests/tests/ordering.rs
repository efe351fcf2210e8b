//! `kafka.eventing.knative.dev/delivery.order: ordered`: one event at a time per
//! `partitionkey`, in bus order, even across failed attempts; keys do not wait for each other.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_tests::fixtures::{binary_headers, borrow};
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, Recorded, Reply, Subscriber};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn ordered_trigger(sub: &Subscriber) -> String {
    let mut t = trigger("ordered", "default", &sub.url("/"));
    t["metadata"]["annotations"] = json!({"kafka.eventing.knative.dev/delivery.order": "ordered"});
    t["spec"]["delivery"]["retry"] = json!(5);
    yaml(&[broker("default"), t])
}

/// Publishes `{key}-{seq}` with `partitionkey: key`, waiting for each 202 so bus order is
/// publish order.
async fn publish(client: &Client, herald: &Herald, key: &str, seq: usize) {
    let id = format!("{key}-{seq}");
    let mut headers = binary_headers(&id);
    headers.push(("ce-partitionkey".into(), key.into()));
    let r = client
        .post(
            &herald.broker_url("default", "default"),
            &borrow(&headers),
            "{}",
        )
        .await;
    assert_eq!(r.status, 202, "{id}: {}", r.text());
}

fn key_and_seq(r: &Recorded) -> (String, usize) {
    let id = r.id();
    let (key, seq) = id.rsplit_once('-').expect("id is key-seq");
    (key.to_owned(), seq.parse().expect("seq"))
}

#[tokio::test(flavor = "multi_thread")]
async fn same_partition_key_arrives_in_publish_order_despite_failed_attempts() {
    let sub = Subscriber::start().await;
    // Every event whose seq is 1 mod 4 fails its first two attempts; every answer takes 10 ms.
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = attempts.clone();
    sub.set_script(move |r| {
        let (_, seq) = key_and_seq(r);
        let mut map = seen.lock().unwrap();
        let n = map.entry(r.id()).or_default();
        *n += 1;
        let reply = if seq % 4 == 1 && *n <= 2 {
            Reply::status(503)
        } else {
            Reply::status(200)
        };
        reply.delay(Duration::from_millis(10))
    });
    let herald = Herald::start("embedded", &ordered_trigger(&sub)).await;
    let client = Client::new();
    let (keys, per_key) = (["k1", "k2", "k3"], 15);
    for seq in 0..per_key {
        for key in keys {
            publish(&client, &herald, key, seq).await;
        }
    }
    let failures = keys.len() * (per_key / 4 + usize::from(per_key % 4 > 1)) * 2;
    let total = keys.len() * per_key + failures;
    sub.wait_for(total, WAIT).await;
    let got = sub
        .settle(Duration::from_millis(300), Duration::from_secs(5))
        .await;

    let mut lanes: BTreeMap<String, Vec<&Recorded>> = BTreeMap::new();
    for r in &got {
        lanes.entry(key_and_seq(r).0).or_default().push(r);
    }
    for (key, requests) in &lanes {
        let seqs: Vec<usize> = requests.iter().map(|r| key_and_seq(r).1).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] <= w[1]),
            "{key}: attempts out of order: {seqs:?}"
        );
        let mut distinct = seqs.clone();
        distinct.dedup();
        assert_eq!(distinct, (0..per_key).collect::<Vec<_>>(), "{key}");
        for w in requests.windows(2) {
            let gap = w[1].at - w[0].at;
            assert!(
                gap >= Duration::from_millis(9),
                "{key}: {} arrived {gap:?} after {}: two in flight at once",
                w[1].id(),
                w[0].id()
            );
        }
    }
    assert_eq!(lanes.len(), keys.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn different_partition_keys_do_not_wait_for_each_other() {
    let sub = Subscriber::start().await;
    sub.set_script(|r| match r.id().as_str() {
        "slow-0" => Reply::status(200).delay(Duration::from_secs(2)),
        _ => Reply::status(200),
    });
    let herald = Herald::start("embedded", &ordered_trigger(&sub)).await;
    let client = Client::new();
    publish(&client, &herald, "slow", 0).await;
    publish(&client, &herald, "slow", 1).await;
    for seq in 0..5 {
        publish(&client, &herald, "fast", seq).await;
    }
    let got = sub.wait_for(7, WAIT).await;
    let at = |id: &str| {
        got.iter()
            .find(|r| r.id() == id)
            .unwrap_or_else(|| panic!("{id} not delivered"))
            .at
    };
    let slow0 = at("slow-0");
    for seq in 0..5 {
        let fast = at(&format!("fast-{seq}"));
        assert!(
            fast < slow0 + Duration::from_secs(1),
            "fast-{seq} waited for the slow key"
        );
    }
    assert!(
        at("slow-1") >= slow0 + Duration::from_millis(1900),
        "slow-1 overtook slow-0 while it was in flight"
    );
}
