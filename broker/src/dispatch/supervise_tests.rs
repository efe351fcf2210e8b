//! Supervision under paused time: a subscription that closes or panics is re-created with
//! backoff and shown in readiness meanwhile; a corrupt record is counted without a pause.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudevents::Event;
use herald_buses::{Acknowledge, Bus, BusError, Delivery, Subscription};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::supervise::{self, DispatcherSpec};
use super::*;
use crate::config::{BrokerId, DeliveryPolicy, Target, TriggerConfig};
use crate::filter::Filter;
use crate::ingress::Ingress;
use crate::metrics::Metrics;

enum Step {
    Event(u32),
    Fail(BusError),
    Panic,
}

/// Each `subscribe` takes the next script; a script that runs out waits forever.
#[derive(Default)]
struct ScriptedBus {
    scripts: Mutex<VecDeque<Vec<Step>>>,
    subscribes: Mutex<Vec<Instant>>,
    published: Mutex<Vec<(String, Instant)>>,
}

struct Script(VecDeque<Step>);

struct NoAck;
impl Acknowledge for NoAck {
    fn ack(&self, _: u64) {}
}

#[async_trait]
impl Subscription for Script {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        match self.0.pop_front() {
            Some(Step::Event(n)) => Ok(Delivery::new(
                herald_buses::contract::fixtures::event(n),
                u64::from(n),
                Arc::new(NoAck),
            )),
            Some(Step::Fail(e)) => Err(e),
            Some(Step::Panic) => panic!("scripted panic"),
            None => std::future::pending().await,
        }
    }
}

#[async_trait]
impl Bus for ScriptedBus {
    async fn publish(&self, topic: &str, _: &[Event]) -> Result<(), BusError> {
        self.published
            .lock()
            .unwrap()
            .push((topic.to_owned(), Instant::now()));
        Ok(())
    }
    async fn forget_group(&self, _: &str, _: &str) -> Result<(), BusError> {
        Ok(())
    }

    async fn subscribe_from(
        &self,
        topic: &str,
        _: &str,
        _: herald_buses::StartPosition,
    ) -> Result<Box<dyn Subscription>, BusError> {
        if topic.ends_with("-parked") {
            return Ok(Box::new(Script(VecDeque::new())));
        }
        self.subscribes.lock().unwrap().push(Instant::now());
        let script = self.scripts.lock().unwrap().pop_front().unwrap_or_default();
        Ok(Box::new(Script(script.into())))
    }
}

type Started = (
    Arc<ScriptedBus>,
    Arc<Metrics>,
    JoinSet<()>,
    watch::Sender<bool>,
    Arc<Ingress>,
);

fn start(scripts: Vec<Vec<Step>>) -> Started {
    let bus = Arc::new(ScriptedBus {
        scripts: Mutex::new(scripts.into()),
        ..ScriptedBus::default()
    });
    let (home, sink) = (BrokerId::new("ns", "home"), BrokerId::new("ns", "sink"));
    let metrics = Arc::new(Metrics::default());
    let ingress = Arc::new(Ingress::new(
        [home.clone(), sink.clone()],
        bus.clone(),
        metrics.clone(),
        1 << 20,
    ));
    let trigger = TriggerConfig {
        namespace: "ns".into(),
        name: "t".into(),
        kind: crate::config::DispatcherKind::Trigger,
        reply: crate::config::ReplyTo::Source,
        broker: home.clone(),
        filter: Filter::everything(),
        subscriber: Target::Broker(sink),
        delivery: DeliveryPolicy::default(),
        ordering: crate::config::Ordering::Unordered,
        signer: None,
        paused: false,
        start_from: herald_buses::StartPosition::Latest,
    };
    let ctx = Arc::new(TriggerContext::new(
        trigger,
        sender::Sender::default(),
        ingress.clone(),
        bus.clone(),
        false,
    ));
    let (tx, rx) = watch::channel(false);
    let spec = DispatcherSpec {
        ctx: ctx.clone(),
        bus: bus.clone(),
        topic: home.topic(),
        group: ctx.trigger.group(),
        task: "trigger ns/t".into(),
        window: 8,
        lot: Some(parked::ParkingLot::new("ns", "t")),
        start: herald_buses::StartPosition::Latest,
        abandon: rx.clone(),
    };
    let mut tasks = JoinSet::new();
    supervise::spawn(&mut tasks, spec, None, rx);
    (bus, metrics, tasks, tx, ingress)
}

/// `GET /readyz` of the real router: status and body.
async fn readyz(ingress: &Arc<Ingress>) -> (u16, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::get("/readyz")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = crate::ingress::router(ingress.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn deliveries(bus: &ScriptedBus) -> Vec<Instant> {
    let published = bus.published.lock().unwrap();
    published
        .iter()
        .filter(|(t, _)| t.ends_with("-sink"))
        .map(|(_, at)| *at)
        .collect()
}

/// Waits (in paused time) until `condition`, at most an hour of it.
async fn until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not reached");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_closed_subscription_is_recreated_with_backoff_and_unready_meanwhile() {
    let t0 = Instant::now();
    let closed = || {
        Step::Fail(BusError::Closed {
            reason: "inbox closed".into(),
        })
    };
    let (bus, metrics, mut tasks, stop, ingress) =
        start(vec![vec![closed()], vec![closed()], vec![Step::Event(1)]]);
    ingress.set_ready(true);
    assert!(
        !metrics.unready().is_empty(),
        "unready before the first subscription"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = readyz(&ingress).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("trigger ns/t: subscription closed: inbox closed"),
        "{body}"
    );
    assert!(
        metrics
            .encode()
            .contains(r#"herald_trigger_subscribed{trigger="ns/t"} 0"#)
    );
    until(|| !deliveries(&bus).is_empty()).await;
    let times: Vec<f64> = bus
        .subscribes
        .lock()
        .unwrap()
        .iter()
        .map(|at| (*at - t0).as_secs_f64())
        .collect();
    assert_eq!(times, [0.0, 1.0, 3.0], "1 s, then 2 s");
    assert_eq!(readyz(&ingress).await, (200, "ready".to_owned()));
    let text = metrics.encode();
    assert!(
        text.contains(r#"herald_trigger_subscribed{trigger="ns/t"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"herald_task_restarts_total{task="trigger ns/t"} 2"#),
        "{text}"
    );
    stop.send(true).unwrap();
    while tasks.join_next().await.is_some() {}
}

#[tokio::test(start_paused = true)]
async fn a_subscription_that_only_fails_is_replaced() {
    let t0 = Instant::now();
    let failing: Vec<Step> = (0..REPLACE_AFTER_ERRORS)
        .map(|_| Step::Fail(BusError::unavailable("consumer not found")))
        .collect();
    let (bus, metrics, mut tasks, stop, _) = start(vec![failing, vec![Step::Event(3)]]);
    until(|| !deliveries(&bus).is_empty()).await;
    let times: Vec<f64> = bus
        .subscribes
        .lock()
        .unwrap()
        .iter()
        .map(|at| (*at - t0).as_secs_f64())
        .collect();
    // Nine pauses of 1 s between the ten failed reads, then 1 s before subscribing again.
    assert_eq!(times, [0.0, f64::from(REPLACE_AFTER_ERRORS)]);
    assert!(
        metrics
            .encode()
            .contains(r#"herald_task_restarts_total{task="trigger ns/t"} 1"#)
    );
    stop.send(true).unwrap();
    while tasks.join_next().await.is_some() {}
}

#[tokio::test(start_paused = true)]
async fn a_dispatcher_that_panics_is_restarted() {
    let (bus, metrics, mut tasks, stop, _) = start(vec![vec![Step::Panic], vec![Step::Event(2)]]);
    until(|| !deliveries(&bus).is_empty()).await;
    assert_eq!(bus.subscribes.lock().unwrap().len(), 2);
    assert!(
        metrics
            .encode()
            .contains(r#"herald_task_restarts_total{task="trigger ns/t"} 1"#)
    );
    stop.send(true).unwrap();
    while tasks.join_next().await.is_some() {}
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_record_is_counted_and_reading_goes_on_at_once() {
    let t0 = Instant::now();
    let corrupt = Step::Fail(BusError::Corrupt {
        position: 5,
        reason: "bad crc".into(),
    });
    let (bus, metrics, mut tasks, stop, _) = start(vec![vec![corrupt, Step::Event(6)]]);
    until(|| !deliveries(&bus).is_empty()).await;
    assert_eq!(deliveries(&bus)[0], t0, "no pause after the corrupt record");
    let text = metrics.encode();
    assert!(
        text.contains(r#"herald_bus_corrupt_records_total{topic="knative-broker-ns-home"} 1"#),
        "{text}"
    );
    assert_eq!(bus.subscribes.lock().unwrap().len(), 1, "not re-subscribed");
    stop.send(true).unwrap();
    while tasks.join_next().await.is_some() {}
}
