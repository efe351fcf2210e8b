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

/// Fails the first `failures` publishes to topic "sink", recording when each call came.
struct FlakyBus {
    failures: Mutex<u32>,
    calls: Mutex<Vec<(String, Instant)>>,
}

#[async_trait]
impl Bus for FlakyBus {
    async fn publish(&self, topic: &str, _events: &[Event]) -> Result<(), BusError> {
        self.calls
            .lock()
            .unwrap()
            .push((topic.to_owned(), Instant::now()));
        let mut failures = self.failures.lock().unwrap();
        if topic.ends_with("-sink") && *failures > 0 {
            *failures -= 1;
            return Err(BusError::unavailable("down on purpose"));
        }
        Ok(())
    }
    async fn subscribe(&self, _: &str, _: &str) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::unavailable("not used"))
    }
}

fn context(policy: DeliveryPolicy, failures: u32) -> (Arc<FlakyBus>, TriggerContext) {
    let bus = Arc::new(FlakyBus {
        failures: Mutex::new(failures),
        calls: Mutex::default(),
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
        broker: home,
        filter: Filter::everything(),
        subscriber: Target::Broker(sink),
        delivery: policy,
        ordering: crate::config::Ordering::Unordered,
    };
    let ctx = TriggerContext::new(trigger, sender::Sender::default(), ingress, metrics, false);
    (bus, ctx)
}

fn policy(backoff_policy: BackoffPolicy, retry: u32) -> DeliveryPolicy {
    DeliveryPolicy {
        retry,
        backoff_policy,
        backoff_delay: Duration::from_secs(1),
        ..DeliveryPolicy::default()
    }
}

fn event() -> Event {
    herald_buses::contract::fixtures::event(1)
}

/// Seconds from the first attempt to each attempt on `topic_suffix`.
fn attempt_times(bus: &FlakyBus, topic_suffix: &str) -> Vec<f64> {
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
async fn without_dead_letter_sink_an_exhausted_event_is_kept_not_dropped() {
    let (bus, ctx) = context(policy(BackoffPolicy::Linear, 2), u32::MAX);
    let (tx, mut rx) = watch::channel(false);
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        tx.send(true).unwrap();
    });
    // Attempts at 0, 1 and 3 s (retry + 1 = 3), then a pause of the last backoff (3 s):
    // shutdown at 4.5 s hands the event back, unacknowledged.
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::HandBack);
    stopper.await.unwrap();
    assert_eq!(attempt_times(&bus, "-sink"), [0.0, 1.0, 3.0]);
    assert!(ctx.metrics.encode().contains(r#"outcome="exhausted"} 1"#));
}

#[tokio::test(start_paused = true)]
async fn without_dead_letter_sink_the_next_round_starts_after_the_pause() {
    let (bus, ctx) = context(policy(BackoffPolicy::Linear, 1), 3);
    let (_tx, mut rx) = watch::channel(false);
    // Round one: 0 and 1 s fail; pause of 2 s; round two: 3 s fails, 4 s succeeds.
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::Finished);
    assert_eq!(attempt_times(&bus, "-sink"), [0.0, 1.0, 3.0, 4.0]);
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
async fn failing_dead_letter_sink_keeps_the_event_until_shutdown_hands_it_back() {
    let mut p = policy(BackoffPolicy::Linear, 0);
    p.dead_letter = Some(Target::Broker(BrokerId::new("ns", "sink")));
    let (bus, ctx) = context(p, u32::MAX);
    let (tx, mut rx) = watch::channel(false);
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        tx.send(true).unwrap();
    });
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::HandBack);
    stopper.await.unwrap();
    assert!(
        attempt_times(&bus, "-sink").len() > 4,
        "kept retrying the dead-letter round"
    );
}

#[test]
fn retry_after_wins_over_shorter_backoff_up_to_retry_after_max() {
    let (_, ctx) = context(policy(BackoffPolicy::Exponential, 3), 0);
    let mut p = ctx.trigger.delivery.clone();
    assert_eq!(
        ctx.retry_wait(&p, 1, Some(Duration::from_secs(5))),
        Duration::from_secs(5)
    );
    assert_eq!(
        ctx.retry_wait(&p, 3, Some(Duration::from_secs(1))),
        Duration::from_secs(4)
    );
    p.retry_after_max = Some(Duration::from_secs(2));
    assert_eq!(
        ctx.retry_wait(&p, 1, Some(Duration::from_secs(5))),
        Duration::from_secs(2)
    );
}

#[test]
fn jitter_adds_at_most_ten_percent() {
    let (_, mut ctx) = context(policy(BackoffPolicy::Exponential, 3), 0);
    ctx.jitter = true;
    let p = ctx.trigger.delivery.clone();
    for _ in 0..100 {
        let wait = ctx.retry_wait(&p, 2, None);
        assert!(
            wait >= Duration::from_secs(2) && wait <= Duration::from_millis(2200),
            "{wait:?}"
        );
    }
}
