//! The servers a bench run measures against: a no-op server (the yardstick) and the
//! subscriber that times end-to-end delivery.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Answers `202` to every request after reading its body, doing nothing else: the fastest an
/// HTTP server on this machine can acknowledge a POST, which Herald's figures are ratios of.
pub async fn serve_noop(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(StatusCode::ACCEPTED)
                        .body(Full::new(Bytes::new()))
                        .expect("static response"),
                )
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Counts deliveries and records each one's end-to-end latency from `ce-benchsent`.
#[derive(Default)]
pub struct Subscriber {
    pub received: AtomicU64,
    pub latencies_us: Mutex<Vec<u32>>,
    /// How long each answer takes (a slow subscriber for the overload phase).
    pub delay: std::time::Duration,
    /// Answers `200` with the event it got (binary mode) as its reply: a Sequence's step.
    pub echo: bool,
}

impl Subscriber {
    pub async fn start(self: &Arc<Self>, epoch: Instant) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let me = me.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let me = me.clone();
                        async move {
                            let sent = req
                                .headers()
                                .get("ce-benchsent")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok());
                            let headers = req.headers().clone();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            if me.echo {
                                me.received.fetch_add(1, Ordering::AcqRel);
                                let mut reply = Response::builder().status(StatusCode::OK);
                                for (name, value) in &headers {
                                    let n = name.as_str();
                                    if n.starts_with("ce-") || n == "content-type" {
                                        reply = reply.header(name, value);
                                    }
                                }
                                return Ok(reply.body(Full::new(body)).expect("copied headers"));
                            }
                            if !me.delay.is_zero() {
                                tokio::time::sleep(me.delay).await;
                            }
                            if let Some(sent) = sent {
                                let now = (Instant::now() - epoch).as_micros() as u64;
                                let latency = now.saturating_sub(sent).min(u32::MAX as u64) as u32;
                                me.latencies_us.lock().unwrap().push(latency);
                            }
                            me.received.fetch_add(1, Ordering::AcqRel);
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(StatusCode::ACCEPTED)
                                    .body(Full::new(Bytes::new()))
                                    .expect("static response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(addr)
    }

    /// Takes the latencies recorded so far, sorted, and starts a new window.
    pub fn take_latencies(&self) -> Vec<u32> {
        let mut v = std::mem::take(&mut *self.latencies_us.lock().unwrap());
        v.sort_unstable();
        v
    }
}
