use cloudevents::event::Data;
use cloudevents::{AttributesReader, Event};
use serde_json::json;

use super::*;

fn config() -> PubsubSourceConfig {
    PubsubSourceConfig {
        namespace: "ns".into(),
        name: "orders".into(),
        project: "my-proj".into(),
        topic: "orders".into(),
        subscription: "herald-source-ns-orders".into(),
        overrides: Overrides(vec![("team".into(), "billing".into())]),
    }
}

fn data(event: &Event) -> serde_json::Value {
    match event.data() {
        Some(Data::Json(v)) => v.clone(),
        other => panic!("JSON data expected, got {other:?}"),
    }
}

#[test]
fn a_message_becomes_knatives_message_published_event() {
    let message = PulledMessage {
        message_id: "4711".into(),
        publish_time: "2026-12-01T06:26:45.643Z".into(),
        data: b"hello".to_vec(),
        attributes: [("color".to_owned(), "red".to_owned())].into(),
        ordering_key: "customer-1".into(),
    };
    let event = to_event(&config(), &message).unwrap();
    assert_eq!(event.id(), "4711");
    assert_eq!(event.ty(), "google.cloud.pubsub.topic.v1.messagePublished");
    assert_eq!(
        event.source().as_str(),
        "//pubsub.googleapis.com/projects/my-proj/topics/orders"
    );
    assert_eq!(
        event.time().unwrap().to_rfc3339(),
        "2026-12-01T06:26:45.643+00:00"
    );
    assert_eq!(event.datacontenttype(), Some("application/json"));
    assert_eq!(event.dataschema().unwrap().as_str(), DATA_SCHEMA);
    assert_eq!(
        data(&event),
        json!({
            "subscription": "herald-source-ns-orders",
            "message": {
                "messageId": "4711",
                "data": "aGVsbG8=",
                "attributes": {"color": "red"},
                "publishTime": "2026-12-01T06:26:45.643Z",
                "orderingKey": "customer-1",
            }
        })
    );
    assert_eq!(
        event.extension("team").map(|v| v.to_string()).as_deref(),
        Some("billing")
    );
    assert!(
        event.extension("color").is_none(),
        "attributes stay in the data"
    );
}

#[test]
fn empty_attributes_and_ordering_keys_are_left_out() {
    let message = PulledMessage {
        message_id: "1".into(),
        publish_time: "2026-12-01T06:26:45Z".into(),
        ..Default::default()
    };
    let event = to_event(&config(), &message).unwrap();
    assert_eq!(
        data(&event)["message"],
        json!({"messageId": "1", "data": "", "publishTime": "2026-12-01T06:26:45Z"})
    );
}

#[test]
fn unreadable_messages_are_refused_with_the_reason() {
    let bad_time = PulledMessage {
        message_id: "1".into(),
        publish_time: "yesterday".into(),
        ..Default::default()
    };
    assert!(matches!(
        to_event(&config(), &bad_time),
        Err(ConvertError::PublishTime { .. })
    ));
    assert!(matches!(
        to_event(&config(), &PulledMessage::default()),
        Err(ConvertError::NoId)
    ));
}
