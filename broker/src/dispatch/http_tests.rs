//! What a subscriber's HTTP answer does to a delivery: non-retryable statuses, batch replies,
//! a 2xx whose body never completes. Real loopback servers, real time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use url::Url;

use super::tests::{attempt_times, context, event, policy};
use super::*;
use crate::config::{BackoffPolicy, Target};

/// A subscriber that answers every request with `response` and then, when `hold`, keeps the
/// connection open without sending more. Returns its URL and the number of requests.
async fn subscriber(response: &'static [u8], hold: bool) -> (Url, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    if complete(&request) {
                        break;
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(response).await;
                if hold {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            });
        }
    });
    (url, count)
}

/// Headers and `content-length` bytes of body are in.
fn complete(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    request.len() >= end + 4 + length
}

#[tokio::test]
async fn a_non_retryable_answer_goes_to_the_parking_lot_at_once() {
    let (url, requests) = subscriber(
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nbad",
        false,
    )
    .await;
    let mut p = policy(BackoffPolicy::Exponential, 5);
    p.backoff_delay = Duration::from_secs(3600);
    let (bus, mut ctx) = context(p, 0);
    ctx.trigger.subscriber = Target::Url(url.into());
    let (_tx, mut rx) = watch::channel(false);
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::Finished);
    assert_eq!(requests.load(Ordering::SeqCst), 1, "no retry after a 400");
    let parked = bus.parked.lock().unwrap();
    assert_eq!(parked.len(), 1);
    let ext = |name| parked[0].extension(name).map(|v| v.to_string());
    assert_eq!(ext("knativeerrorcode").as_deref(), Some("400"));
    assert_eq!(
        ext("knativeerrordata").as_deref(),
        Some("YmFk"),
        "base64 of the body"
    );
}

#[tokio::test]
async fn a_batch_reply_is_refused_counted_and_the_event_delivered() {
    let body = br#"[{"specversion":"1.0","id":"r1","source":"/s","type":"t"},{"specversion":"1.0","id":"r2","source":"/s","type":"t"}]"#;
    let response: &'static [u8] = Box::leak(
        [
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/cloudevents-batch+json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat()
        .into_boxed_slice(),
    );
    let (url, requests) = subscriber(response, false).await;
    let (bus, mut ctx) = context(policy(BackoffPolicy::Linear, 3), 0);
    ctx.trigger.subscriber = Target::Url(url.into());
    let (_tx, mut rx) = watch::channel(false);
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::Finished);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert!(
        attempt_times(&bus, "-home").is_empty(),
        "nothing published back to the broker"
    );
    let text = ctx.metrics.encode();
    assert!(
        text.contains(r#"herald_replies_rejected_total{trigger="ns/t",reason="batch"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"outcome="delivered"} 1"#));
}

#[tokio::test]
async fn a_single_reply_is_published_with_the_ttl_decremented() {
    let body = br#"{"specversion":"1.0","id":"r1","source":"/s","type":"t"}"#;
    let response: &'static [u8] = Box::leak(
        [
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/cloudevents+json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat()
        .into_boxed_slice(),
    );
    let (url, _) = subscriber(response, false).await;
    let (bus, mut ctx) = context(policy(BackoffPolicy::Linear, 0), 0);
    ctx.trigger.subscriber = Target::Url(url.into());
    let (_tx, mut rx) = watch::channel(false);
    let mut original = event();
    original.set_extension(crate::ingress::TTL, 7i64);
    assert_eq!(ctx.process(&original, &mut rx).await, Outcome::Finished);
    let replies = bus.replies.lock().unwrap();
    assert_eq!(replies.len(), 1, "one reply published");
    assert_eq!(
        replies[0]
            .extension(crate::ingress::TTL)
            .map(|v| v.to_string()),
        Some("6".to_owned()),
        "one hop from 7"
    );
}

#[tokio::test]
async fn a_2xx_whose_body_never_completes_is_delivered_and_only_the_reply_lost() {
    // The status line and headers promise 100 bytes; one arrives, then nothing.
    let (url, requests) = subscriber(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/cloudevents+json\r\ncontent-length: 100\r\n\r\n{",
        true,
    )
    .await;
    let mut p = policy(BackoffPolicy::Linear, 3);
    p.timeout = Duration::from_millis(300);
    let (bus, mut ctx) = context(p, 0);
    ctx.trigger.subscriber = Target::Url(url.into());
    let (_tx, mut rx) = watch::channel(false);
    assert_eq!(ctx.process(&event(), &mut rx).await, Outcome::Finished);
    assert_eq!(requests.load(Ordering::SeqCst), 1, "not retried");
    assert!(bus.parked.lock().unwrap().is_empty());
    let text = ctx.metrics.encode();
    assert!(text.contains(r#"outcome="delivered"} 1"#), "{text}");
    assert!(text.contains(r#"reason="unreadable"} 1"#), "{text}");
    assert!(!text.contains("herald_delivery_retries_total{trigger=\"ns/t\"} 1"));
}
