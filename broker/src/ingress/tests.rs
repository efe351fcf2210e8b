//! In-process publishing: the same checks and stamps as HTTP, so nothing invalid is stored.

use std::sync::Arc;
use std::time::Duration;

use cloudevents::{AttributesReader, AttributesWriter, Event, EventBuilder, EventBuilderV10};
use herald_buses::Bus;
use herald_buses::memory::MemoryBus;

use super::*;
use crate::binding::BindingError;

fn event(id: &str) -> Event {
    EventBuilderV10::new()
        .id(id)
        .source("/s")
        .ty("t")
        .build()
        .expect("valid event")
}

async fn ingress() -> (Ingress, Box<dyn herald_buses::Subscription>, BrokerId) {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(1024));
    let broker = BrokerId::new("ns", "b");
    let subscription = bus
        .subscribe(&broker.topic(), "g")
        .await
        .expect("subscribe");
    let ingress = Ingress::new([broker.clone()], bus, Arc::new(Metrics::default()), 1 << 20)
        .with_limits(AttributeLimits {
            max_extensions: 4,
            max_attributes_bytes: 1024,
        });
    (ingress, subscription, broker)
}

async fn next(subscription: &mut Box<dyn herald_buses::Subscription>) -> Event {
    let delivery = tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("an event within 5 s")
        .expect("a delivery");
    let event = delivery.event.clone();
    delivery.ack();
    event
}

#[tokio::test]
async fn in_process_publishes_are_checked_like_http_ones() {
    let (ingress, mut subscription, broker) = ingress().await;
    let mut forged = event("forged");
    forged.set_type("t\nforged");
    let error = ingress
        .publish(&broker, vec![forged], &publisher())
        .await
        .expect_err("a control character");
    assert!(matches!(
        error,
        IngressError::Binding(BindingError::ControlCharacter { ref attribute, .. }) if attribute == "type"
    ));
    assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);

    let mut crowded = event("crowded");
    for i in 0..5 {
        crowded.set_extension(&format!("x{i}"), "v");
    }
    let error = ingress
        .publish(&broker, vec![event("fine"), crowded], &publisher())
        .await
        .expect_err("too many extensions in a batch");
    assert_eq!(error.reason(), "attribute_limit");

    ingress
        .publish(&broker, vec![event("stored")], &publisher())
        .await
        .expect("a valid event is stored");
    assert_eq!(
        next(&mut subscription).await.id(),
        "stored",
        "nothing refused was stored"
    );
}

#[tokio::test]
async fn a_ttl_above_255_is_clamped_and_one_beyond_i64_too() {
    let (ingress, mut subscription, broker) = ingress().await;
    let mut huge = event("huge");
    huge.set_extension(TTL, i64::MAX);
    let mut beyond = event("beyond");
    beyond.set_extension(TTL, "99999999999999999999999");
    let mut small = event("small");
    small.set_extension(TTL, 7i64);
    ingress
        .publish(&broker, vec![huge, beyond, small], &publisher())
        .await
        .expect("stored");
    for expected in [255, 255, 7] {
        let stored = next(&mut subscription).await;
        assert_eq!(
            ttl(&stored).expect("an integer ttl"),
            expected,
            "{}",
            stored.id()
        );
    }
    let mut garbage = event("garbage");
    garbage.set_extension(TTL, "12abc");
    assert!(
        ingress
            .publish(&broker, vec![garbage], &publisher())
            .await
            .is_err()
    );
    let mut spent = event("spent");
    spent.set_extension(TTL, 0i64);
    assert!(matches!(
        ingress.publish(&broker, vec![spent], &publisher()).await,
        Err(IngressError::TtlExhausted(0))
    ));
}

#[tokio::test]
async fn refusals_for_unknown_brokers_are_one_unknown_series() {
    let (ingress, _subscription, _) = ingress().await;
    for i in 0..50 {
        let nowhere = BrokerId::new(format!("ns{i}"), "x\",reason=\"spoofed");
        assert!(
            ingress
                .publish(&nowhere, vec![event("e")], &publisher())
                .await
                .is_err()
        );
    }
    let metrics = ingress.metrics.encode();
    assert!(!metrics.contains("spoofed"), "{metrics}");
    assert!(
        metrics.contains(
            r#"herald_events_rejected_total{broker="_unknown",reason="unknown_broker"} 50"#
        ),
        "{metrics}"
    );
}

fn publisher() -> crate::identity::SenderIdentity {
    crate::identity::SenderIdentity::resource("PingSource", "default", "test")
}
