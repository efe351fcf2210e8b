//! The contract every bus keeps, written once and run against each bus by
//! [`bus_contract_tests!`](crate::bus_contract_tests).
//!
//! A bus under test is reached through a [`Harness`], which can also "restart" it: reopen the
//! same storage in a new instance (durable buses) or keep the instance (the memory bus, where a
//! restart of the process would lose everything by design).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudevents::AttributesReader;

use crate::{Bus, Delivery, StartPosition, Subscription};

#[async_trait]
pub trait Harness: Send + Sync {
    /// A bus over fresh, isolated storage.
    async fn start(&self) -> Arc<dyn Bus>;
    /// The same storage in a new instance, after `bus` (and everything it handed out) is dropped.
    async fn restart(&self, bus: Arc<dyn Bus>) -> Arc<dyn Bus>;
    /// Whether published events survive [`Harness::restart`].
    fn durable(&self) -> bool;
}

/// Canonical events for bus tests.
pub mod fixtures {
    use cloudevents::{Event, EventBuilder, EventBuilderV10};

    /// A small event whose id is `n` and whose data names `n`.
    pub fn event(n: u32) -> Event {
        EventBuilderV10::new()
            .id(n.to_string())
            .source("/herald/tests")
            .ty("dev.herald.test")
            .data("application/json", serde_json::json!({ "n": n }))
            .build()
            .expect("fixture event is valid")
    }

    /// Only the required attributes: no `time`, no data, no extensions.
    pub fn minimal_event() -> Event {
        EventBuilderV10::new()
            .id("minimal-1")
            .source("/herald/tests")
            .ty("dev.herald.minimal")
            .build()
            .expect("fixture event is valid")
    }

    /// An event using every attribute kind: optional attributes, extensions of every type and
    /// binary data.
    pub fn rich_event() -> Event {
        EventBuilderV10::new()
            .id("rich-1")
            .source("https://example.com/source?x=1")
            .ty("dev.herald.rich")
            .subject("a/b")
            .time("2024-05-06T07:08:09.123Z")
            .data_with_schema(
                "application/octet-stream",
                "https://example.com/schema.json",
                vec![0u8, 1, 2, 255],
            )
            .extension("partitionkey", "k1")
            .extension("count", 42i64)
            .extension("flag", false)
            .build()
            .expect("fixture event is valid")
    }
}

const WAIT: Duration = Duration::from_secs(10);

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery within 10 s")
        .expect("subscription stays healthy")
}

/// Asserts that `sub` has nothing left to deliver before a sentinel published to `topic` now:
/// anything stored before it (a duplicate, an event of another topic) would come first. No
/// time window to outlast: the sentinel's arrival is the end of the check.
async fn assert_idle(bus: &dyn Bus, topic: &str, sub: &mut Box<dyn Subscription>) {
    let sentinel = fixtures::event(u32::MAX);
    bus.publish(topic, std::slice::from_ref(&sentinel))
        .await
        .unwrap();
    let d = next(sub).await;
    assert_eq!(id(&d), u32::MAX.to_string(), "unexpected delivery {d:?}");
    d.ack();
}

fn id(d: &Delivery) -> String {
    d.event.id().to_owned()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", fastish_unique())
}

fn fastish_unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub async fn published_events_reach_a_subscriber_in_order(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("order");
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    let batch: Vec<_> = (0..50).map(fixtures::event).collect();
    bus.publish(&topic, &batch[..20]).await.unwrap();
    bus.publish(&topic, &batch[20..]).await.unwrap();
    for n in 0..50 {
        let d = next(&mut sub).await;
        assert_eq!(id(&d), n.to_string());
        d.ack();
    }
    assert_idle(&*bus, &topic, &mut sub).await;
}

pub async fn every_attribute_survives_the_bus(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("attrs");
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    let event = fixtures::rich_event();
    bus.publish(&topic, std::slice::from_ref(&event))
        .await
        .unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.event, event);
}

pub async fn a_minimal_event_gains_no_attributes_on_the_bus(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("minimal");
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    let event = fixtures::minimal_event();
    bus.publish(&topic, std::slice::from_ref(&event))
        .await
        .unwrap();
    let d = next(&mut sub).await;
    assert_eq!(
        d.event, event,
        "no time, subject, data or extension appears on the way"
    );
}

pub async fn each_group_receives_every_event(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("fanout");
    let mut a = bus.subscribe(&topic, "a").await.unwrap();
    let mut b = bus.subscribe(&topic, "b").await.unwrap();
    let batch: Vec<_> = (0..10).map(fixtures::event).collect();
    bus.publish(&topic, &batch).await.unwrap();
    for n in 0..10 {
        assert_eq!(id(&next(&mut a).await), n.to_string());
    }
    for n in 0..10 {
        assert_eq!(id(&next(&mut b).await), n.to_string());
    }
}

pub async fn a_new_group_starts_at_the_end_of_the_topic(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("latest");
    bus.publish(&topic, &[fixtures::event(1)]).await.unwrap();
    let mut sub = bus.subscribe(&topic, "late").await.unwrap();
    bus.publish(&topic, &[fixtures::event(2)]).await.unwrap();
    assert_eq!(id(&next(&mut sub).await), "2");
}

/// `event(n)` stamped as Herald's ingress stamps it, arriving now.
fn arriving_now(n: u32) -> cloudevents::Event {
    let mut event = fixtures::event(n);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    event.set_extension("knativearrivaltime", now);
    event
}

/// Waits until the wall clock is past `t` by `margin` (a boundary between two publishes that
/// every bus's own timestamps see on the same side), and returns the time then.
async fn clock_past(t: chrono::DateTime<chrono::Utc>, margin: chrono::Duration) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while chrono::Utc::now() <= t + margin {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clock stood still"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn a_new_group_can_start_at_the_earliest_event_and_an_old_group_keeps_its_place(
    h: &dyn Harness,
) {
    let bus = h.start().await;
    let topic = unique("earliest");
    // A group that keeps the events (the memory bus drops what no group still needs).
    let _keeper = bus.subscribe(&topic, "keeper").await.unwrap();
    let batch: Vec<_> = (1..=3).map(fixtures::event).collect();
    bus.publish(&topic, &batch).await.unwrap();
    let mut early = bus
        .subscribe_from(&topic, "early", StartPosition::Earliest)
        .await
        .unwrap();
    for n in 1..=3 {
        let d = next(&mut early).await;
        assert_eq!(id(&d), n.to_string());
        d.ack();
    }
    assert_idle(&*bus, &topic, &mut early).await;
    drop(early);
    bus.publish(&topic, &[fixtures::event(4)]).await.unwrap();
    let mut again = bus
        .subscribe_from(&topic, "early", StartPosition::Earliest)
        .await
        .unwrap();
    assert_eq!(
        id(&next(&mut again).await),
        "4",
        "an existing group keeps its place"
    );
}

pub async fn a_new_group_can_start_at_a_time(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("since");
    let _keeper = bus.subscribe(&topic, "keeper").await.unwrap();
    let margin = chrono::Duration::milliseconds(20);
    bus.publish(&topic, &[arriving_now(1), arriving_now(2)])
        .await
        .unwrap();
    clock_past(chrono::Utc::now(), margin).await;
    let since = chrono::Utc::now();
    clock_past(since, margin).await;
    bus.publish(&topic, &[arriving_now(3), arriving_now(4)])
        .await
        .unwrap();
    let mut sub = bus
        .subscribe_from(&topic, "since", StartPosition::Time(since))
        .await
        .unwrap();
    for n in 3..=4 {
        let d = next(&mut sub).await;
        assert_eq!(
            id(&d),
            n.to_string(),
            "the first event at or after the time"
        );
        d.ack();
    }
    assert_idle(&*bus, &topic, &mut sub).await;
    // A time to come: the group starts at the end and gets what is published next. (Not
    // the sentinel again: NATS drops a second event with the same id as a duplicate.)
    let mut future = bus
        .subscribe_from(
            &topic,
            "future",
            StartPosition::Time(chrono::Utc::now() + chrono::Duration::hours(1)),
        )
        .await
        .unwrap();
    bus.publish(&topic, &[fixtures::event(5)]).await.unwrap();
    assert_eq!(id(&next(&mut future).await), "5");
}

/// Buses that delete a forgotten group (not Kafka, whose groups expire by themselves): run
/// by `bus_contract_tests!(@cases harness; a_forgotten_group_loses_its_position)`.
pub async fn a_forgotten_group_loses_its_position(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("forget");
    let _keeper = bus.subscribe(&topic, "keeper").await.unwrap();
    bus.forget_group(&topic, "never-existed").await.unwrap();
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    bus.publish(&topic, &[fixtures::event(1), fixtures::event(2)])
        .await
        .unwrap();
    let d = next(&mut sub).await;
    assert_eq!(id(&d), "1");
    d.ack();
    drop(sub);
    bus.forget_group(&topic, "g").await.unwrap();
    // Joined again, the group starts at the end, not at its old position (event 2).
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    bus.publish(&topic, &[fixtures::event(3)]).await.unwrap();
    assert_eq!(id(&next(&mut sub).await), "3");
}

/// Waits (30 s at most) until `group`'s backlog is `expected`; acknowledgements may be
/// applied asynchronously (NATS).
async fn wait_backlog(bus: &dyn Bus, topic: &str, group: &str, expected: u64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = bus.backlog(topic, group).await.unwrap();
        if now == Some(expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog of {group} is {now:?}, not {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Buses that can tell a group's backlog (not Kafka): run by
/// `bus_contract_tests!(@cases harness; a_groups_backlog_counts_what_it_has_not_acknowledged)`.
pub async fn a_groups_backlog_counts_what_it_has_not_acknowledged(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("backlog");
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    assert_eq!(bus.backlog(&topic, "unknown").await.unwrap(), None);
    wait_backlog(&*bus, &topic, "g", 0).await;
    let batch: Vec<_> = (0..3).map(fixtures::event).collect();
    bus.publish(&topic, &batch).await.unwrap();
    wait_backlog(&*bus, &topic, "g", 3).await;
    // Taken but not acknowledged still counts.
    let first = next(&mut sub).await;
    wait_backlog(&*bus, &topic, "g", 3).await;
    first.ack();
    wait_backlog(&*bus, &topic, "g", 2).await;
    next(&mut sub).await.ack();
    next(&mut sub).await.ack();
    wait_backlog(&*bus, &topic, "g", 0).await;
}

pub async fn topics_are_isolated(h: &dyn Harness) {
    let bus = h.start().await;
    let (t1, t2) = (unique("iso1"), unique("iso2"));
    let mut s1 = bus.subscribe(&t1, "g").await.unwrap();
    let mut s2 = bus.subscribe(&t2, "g").await.unwrap();
    bus.publish(&t1, &[fixtures::event(1)]).await.unwrap();
    bus.publish(&t2, &[fixtures::event(2)]).await.unwrap();
    next(&mut s1).await.ack();
    assert_eq!(id(&next(&mut s2).await), "2");
    assert_idle(&*bus, &t1, &mut s1).await;
}

pub async fn unacked_delivery_is_redelivered_after_restart(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("redeliver");
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    let batch: Vec<_> = (0..4).map(fixtures::event).collect();
    bus.publish(&topic, &batch).await.unwrap();
    let first = next(&mut sub).await;
    let second = next(&mut sub).await;
    let third = next(&mut sub).await;
    first.ack();
    third.ack(); // acknowledged out of order: 1 is still in flight
    drop(second);
    drop(sub);
    let bus = h.restart(bus).await;
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    let again = next(&mut sub).await;
    assert_eq!(id(&again), "1", "the unacknowledged event comes back first");
    // "2" may come back too (at-least-once); "3" must.
    let mut rest = vec![];
    loop {
        let d = next(&mut sub).await;
        rest.push(id(&d));
        if id(&d) == "3" {
            break;
        }
    }
    assert!(rest.iter().all(|i| i == "2" || i == "3"), "{rest:?}");
}

pub async fn acked_events_are_not_redelivered_after_restart(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("acked");
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    let batch: Vec<_> = (0..5).map(fixtures::event).collect();
    bus.publish(&topic, &batch).await.unwrap();
    for _ in 0..5 {
        next(&mut sub).await.ack();
    }
    drop(sub);
    let bus = h.restart(bus).await;
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    bus.publish(&topic, &[fixtures::event(99)]).await.unwrap();
    assert_eq!(id(&next(&mut sub).await), "99");
}

/// Durable buses only: `bus_contract_tests!(harness, not_durable)` ignores it, visibly.
pub async fn published_events_survive_a_restart(h: &dyn Harness) {
    assert!(
        h.durable(),
        "a durability case run against a bus that is not durable"
    );
    let bus = h.start().await;
    let topic = unique("durable");
    drop(bus.subscribe(&topic, "g").await.unwrap());
    let batch: Vec<_> = (0..100).map(fixtures::event).collect();
    bus.publish(&topic, &batch).await.unwrap();
    let bus = h.restart(bus).await;
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    for n in 0..100 {
        assert_eq!(id(&next(&mut sub).await), n.to_string());
    }
}

pub async fn concurrent_publishers_are_all_delivered_once_per_group(h: &dyn Harness) {
    let bus = h.start().await;
    let topic = unique("concurrent");
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    let mut tasks = vec![];
    for p in 0..8u32 {
        let bus = bus.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u32 {
                bus.publish(&topic, &[fixtures::event(p * 1000 + i)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let d = next(&mut sub).await;
        assert!(seen.insert(id(&d)), "duplicate {}", id(&d));
        d.ack();
    }
    assert_idle(&*bus, &topic, &mut sub).await;
}

/// Expands to one `#[tokio::test]` per contract case for the harness expression given. With
/// `not_durable`, the cases that need events to survive a restart are `#[ignore]`d with that
/// reason (listed by `cargo test -- --ignored`), instead of passing without checking.
#[macro_export]
macro_rules! bus_contract_tests {
    ($harness:expr) => {
        $crate::bus_contract_tests!(@common $harness);
        $crate::bus_contract_tests!(@cases $harness; published_events_survive_a_restart);
    };
    // librdkafka's mock cluster keeps no time index: starting at a time is checked against
    // a real Kafka (tansu) only.
    ($harness:expr, no_time_index) => {
        $crate::bus_contract_tests!(@cases $harness;
            published_events_reach_a_subscriber_in_order,
            every_attribute_survives_the_bus,
            a_minimal_event_gains_no_attributes_on_the_bus,
            each_group_receives_every_event,
            a_new_group_starts_at_the_end_of_the_topic,
            a_new_group_can_start_at_the_earliest_event_and_an_old_group_keeps_its_place,
            topics_are_isolated,
            unacked_delivery_is_redelivered_after_restart,
            acked_events_are_not_redelivered_after_restart,
            concurrent_publishers_are_all_delivered_once_per_group,
            published_events_survive_a_restart,
        );
        #[ignore = "librdkafka's mock cluster has no time index (ListOffsets by timestamp)"]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_new_group_can_start_at_a_time() {
            $crate::contract::a_new_group_can_start_at_a_time(&$harness).await;
        }
    };
    ($harness:expr, not_durable) => {
        $crate::bus_contract_tests!(@common $harness);
        #[ignore = "the bus is not durable: nothing survives a restart by design"]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn published_events_survive_a_restart() {
            $crate::contract::published_events_survive_a_restart(&$harness).await;
        }
    };
    (@common $harness:expr) => {
        $crate::bus_contract_tests!(@cases $harness;
            published_events_reach_a_subscriber_in_order,
            every_attribute_survives_the_bus,
            a_minimal_event_gains_no_attributes_on_the_bus,
            each_group_receives_every_event,
            a_new_group_starts_at_the_end_of_the_topic,
            a_new_group_can_start_at_the_earliest_event_and_an_old_group_keeps_its_place,
            a_new_group_can_start_at_a_time,
            topics_are_isolated,
            unacked_delivery_is_redelivered_after_restart,
            acked_events_are_not_redelivered_after_restart,
            concurrent_publishers_are_all_delivered_once_per_group,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness;
                $crate::contract::$case(&harness).await;
            }
        )*
    };
}
