//! Delivery timing and outcomes under paused time, against a bus that fails on cue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudevents::Event;
use herald_buses::{Bus, BusError, Subscription};
use tokio::sync::watch;
use tokio::time::Instant;

use super::*;
use crate::config::{BackoffPolicy, BrokerId, DeliveryPolicy, Target, TriggerConfig};
use crate::filter::Filter;
use crate::ingress::Ingress;
use crate::metrics::Metrics;

/// Fails the first `failures` publishes to topic "sink" and the first `park_failures` to the
/// parking lot, recording when each call came.
pub(super) struct FlakyBus {
    failures: Mutex<u32>,
    park_failures: Mutex<u32>,
    calls: Mutex<Vec<(String, Instant)>>,
    pub(super) parked: Mutex<Vec<Event>>,
    /// Every event published to the trigger's broker (`-home`): replies.
    pub(super) replies: Mutex<Vec<Event>>,
}

#[async_trait]
impl Bus for FlakyBus {
    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        self.calls
            .lock()
            .unwrap()
            .push((topic.to_owned(), Instant::now()));
        let mut failures = self.failures.lock().unwrap();
        if topic.ends_with("-sink") && *failures > 0 {
            *failures -= 1;
            return Err(BusError::unavailable("down on purpose"));
        }
        if topic.ends_with("-home") {
            self.replies.lock().unwrap().extend_from_slice(events);
        }
        if topic.ends_with("-parked") {
            let mut failures = self.park_failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(BusError::unavailable("parking lot down on purpose"));
            }
            self.parked.lock().unwrap().extend_from_slice(events);
        }
        Ok(())
    }
    async fn forget_group(&self, _: &str, _: &str) -> Result<(), BusError> {
        Ok(())
    }

    async fn subscribe_from(
        &self,
        _: &str,
        _: &str,
        _: herald_buses::StartPosition,
    ) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::unavailable("not used"))
    }
}

pub(super) fn context(policy: DeliveryPolicy, failures: u32) -> (Arc<FlakyBus>, TriggerContext) {
    let bus = Arc::new(FlakyBus {
        failures: Mutex::new(failures),
        park_failures: Mutex::new(0),
        calls: Mutex::default(),
        parked: Mutex::default(),
        replies: Mutex::default(),
    });
    let (home, sink, dls) = (
        BrokerId::new("ns", "home"),
        BrokerId::new("ns", "sink"),
        BrokerId::new("ns", "dls"),
    );
    let metrics = Arc::new(Metrics::default());
    let ingress = Arc::new(Ingress::new(
        [home.clone(), sink.clone(), dls],
        bus.clone(),
        metrics.clone(),
        1 << 20,
    ));
    let trigger = TriggerConfig {
        namespace: "ns".into(),
        name: "t".into(),
        kind: crate::config::DispatcherKind::Trigger,
        reply: crate::config::ReplyTo::Source,
        broker: home,
        filter: Filter::everything(),
        subscriber: Target::Broker(sink),
        delivery: policy,
        ordering: crate::config::Ordering::Unordered,
        signer: None,
        paused: false,
        start_from: herald_buses::StartPosition::Latest,
    };
    let ctx = TriggerContext::new(
        trigger,
        sender::Sender::default(),
        ingress,
        bus.clone(),
        false,
    );
    (bus, ctx)
}

pub(super) fn policy(backoff_policy: BackoffPolicy, retry: u32) -> DeliveryPolicy {
    DeliveryPolicy {
        retry,
        backoff_policy,
        backoff_delay: Duration::from_secs(1),
        ..DeliveryPolicy::default()
    }
}

pub(super) fn event() -> Event {
    herald_buses::contract::fixtures::event(1)
}

/// Seconds from the first attempt to each attempt on `topic_suffix`.
pub(super) fn attempt_times(bus: &FlakyBus, topic_suffix: &str) -> Vec<f64> {
    let calls = bus.calls.lock().unwrap();
    let mine: Vec<_> = calls
        .iter()
        .filter(|(t, _)| t.ends_with(topic_suffix))
        .collect();
    mine.iter()
        .map(|(_, at)| (*at - mine[0].1).as_secs_f64())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_waits_delay_times_two_to_the_n_minus_one() {
    let (bus, ctx) = context(policy(BackoffPolicy::Exponential, 4), 4);
    let (_tx, mut rx) = watch::channel(false);
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::Finished);
    assert_eq!(attempt_times(&bus, "-sink"), [0.0, 1.0, 3.0, 7.0, 15.0]);
}

#[tokio::test(start_paused = true)]
async fn linear_backoff_waits_delay_times_n() {
    let (bus, ctx) = context(policy(BackoffPolicy::Linear, 4), 4);
    let (_tx, mut rx) = watch::channel(false);
    ctx.process(&event(), &mut rx).await;
    assert_eq!(attempt_times(&bus, "-sink"), [0.0, 1.0, 3.0, 6.0, 10.0]);
}

#[tokio::test(start_paused = true)]
async fn backoff_cap_limits_each_wait() {
    let mut p = policy(BackoffPolicy::Exponential, 4);
    p.backoff_cap = Some(Duration::from_secs(3));
    let (bus, ctx) = context(p, 4);
    let (_tx, mut rx) = watch::channel(false);
    ctx.process(&event(), &mut rx).await;
    assert_eq!(attempt_times(&bus, "-sink"), [0.0, 1.0, 3.0, 6.0, 9.0]);
}

#[tokio::test(start_paused = true)]
async fn without_dead_letter_sink_an_exhausted_event_is_parked_and_acknowledged() {
    let (bus, ctx) = context(policy(BackoffPolicy::Linear, 2), u32::MAX);
    let (_tx, mut rx) = watch::channel(false);
    // Attempts at 0, 1 and 3 s (retry + 1 = 3), then the parking lot, at once.
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::Finished);
    assert_eq!(attempt_times(&bus, "-sink"), [0.0, 1.0, 3.0]);
    assert_eq!(attempt_times(&bus, "-parked"), [0.0]);
    let parked = bus.parked.lock().unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(cloudevents::AttributesReader::id(&parked[0]), "1");
    assert!(parked[0].extension("knativeerrordest").is_some());
    let text = ctx.metrics.encode();
    assert!(
        text.contains(r#"herald_parked_events_total{trigger="ns/t"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"outcome="parked"} 1"#));
    assert!(text.contains(r#"outcome="exhausted"} 1"#));
}

#[tokio::test(start_paused = true)]
async fn the_parking_lot_topic_is_the_triggers_own() {
    let (bus, ctx) = context(policy(BackoffPolicy::Linear, 0), u32::MAX);
    let (_tx, mut rx) = watch::channel(false);
    ctx.process(&event(), &mut rx).await;
    let calls = bus.calls.lock().unwrap();
    assert!(
        calls
            .iter()
            .any(|(t, _)| t == "knative-trigger-ns-t-parked"),
        "{calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_parking_lot_that_fails_keeps_the_event_and_retries_with_backoff() {
    let (bus, ctx) = context(policy(BackoffPolicy::Linear, 0), u32::MAX);
    *bus.park_failures.lock().unwrap() = 4;
    let (_tx, mut rx) = watch::channel(false);
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::Finished);
    // Parking tried at 0 s, then 1, 2, 4 and 8 s later; the subscriber is not tried again.
    assert_eq!(attempt_times(&bus, "-parked"), [0.0, 1.0, 3.0, 7.0, 15.0]);
    assert_eq!(attempt_times(&bus, "-sink"), [0.0]);
    assert_eq!(bus.parked.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_parking_lot_that_stays_down_hands_the_event_back_at_shutdown() {
    let (bus, ctx) = context(policy(BackoffPolicy::Linear, 0), u32::MAX);
    *bus.park_failures.lock().unwrap() = u32::MAX;
    let (tx, mut rx) = watch::channel(false);
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(300)).await;
        tx.send(true).unwrap();
    });
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::HandBack);
    stopper.await.unwrap();
    let times = attempt_times(&bus, "-parked");
    // 1 s doubling, saturating at 30 s: 0, 1, 3, 7, 15, 31, 61, 91, ...
    assert_eq!(&times[..7], [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 61.0]);
    assert_eq!(times[7] - times[6], 30.0);
}

#[tokio::test(start_paused = true)]
async fn forwarding_to_a_broker_decrements_the_ttl_and_stops_at_zero() {
    let (bus, ctx) = context(policy(BackoffPolicy::Linear, 0), 0);
    let (_tx, mut rx) = watch::channel(false);
    let mut last_hop = event();
    last_hop.set_extension(crate::ingress::TTL, 1i64);
    assert_eq!(ctx.process(&last_hop, &mut rx).await, Outcome::Finished);
    assert!(attempt_times(&bus, "-sink").is_empty(), "not forwarded");
    assert!(
        ctx.metrics
            .encode()
            .contains("herald_ttl_dropped_total{trigger=\"ns/t\"} 1")
    );
}

#[tokio::test(start_paused = true)]
async fn exhausted_event_goes_to_the_dead_letter_sink() {
    let mut p = policy(BackoffPolicy::Linear, 1);
    p.dead_letter = Some(Target::Broker(BrokerId::new("ns", "dls")));
    let (bus, ctx) = context(p, 100);
    let (_tx, mut rx) = watch::channel(false);
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::Finished);
    assert_eq!(attempt_times(&bus, "-sink").len(), 2);
    assert_eq!(attempt_times(&bus, "-dls").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_dead_letter_sink_sends_the_event_to_the_parking_lot() {
    let mut p = policy(BackoffPolicy::Linear, 0);
    p.dead_letter = Some(Target::Broker(BrokerId::new("ns", "sink")));
    let (bus, ctx) = context(p, u32::MAX);
    let (_tx, mut rx) = watch::channel(false);
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::Finished);
    assert_eq!(
        attempt_times(&bus, "-sink").len(),
        2,
        "subscriber, then dead-letter sink"
    );
    assert_eq!(bus.parked.lock().unwrap().len(), 1);
}
