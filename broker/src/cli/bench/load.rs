//! The load generator: N keep-alive HTTP/1.1 connections posting 1 KiB binary-mode events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What one load run measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub sent: u64,
    pub accepted: u64,
    pub refused: u64,
    pub elapsed: Duration,
    /// Request latencies in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies_us, p)
    }
}

pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[index] as f64 / 1000.0
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    pub path: String,
    pub connections: usize,
    pub duration: Duration,
    /// Total events at most (bounds the run besides `duration`).
    pub max_events: u64,
    pub size: usize,
    /// Events per second across all connections; `None` sends as fast as answers come.
    pub rate: Option<f64>,
    /// An `Authorization` header sent with every request (the `ingest-jwt` phase).
    pub authorization: Option<String>,
}

/// Runs the load; `epoch` is the clock the subscriber measures end-to-end latency against.
pub async fn run(spec: LoadSpec, epoch: Instant) -> anyhow::Result<LoadResult> {
    let body = Bytes::from(vec![b'x'; spec.size]);
    let budget = Arc::new(AtomicU64::new(spec.max_events));
    // Ids unique per run: buses that de-duplicate by source + id (NATS) must see new events.
    let run_id = fastrand::u32(..);
    let start = Instant::now();
    let deadline = start + spec.duration;
    let mut tasks = Vec::new();
    for conn in 0..spec.connections {
        let (spec, body, budget) = (spec.clone(), body.clone(), budget.clone());
        tasks.push(tokio::spawn(async move {
            connection(run_id, conn, spec, body, budget, deadline, epoch).await
        }));
    }
    let mut result = LoadResult::default();
    for task in tasks {
        let part = task.await??;
        result.sent += part.sent;
        result.accepted += part.accepted;
        result.refused += part.refused;
        result.latencies_us.extend(part.latencies_us);
    }
    result.elapsed = start.elapsed();
    result.latencies_us.sort_unstable();
    Ok(result)
}

async fn connection(
    run_id: u32,
    conn: usize,
    spec: LoadSpec,
    body: Bytes,
    budget: Arc<AtomicU64>,
    deadline: Instant,
    epoch: Instant,
) -> anyhow::Result<LoadResult> {
    let stream = TcpStream::connect(spec.addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, driver) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(driver);
    let mut out = LoadResult::default();
    let interval = spec
        .rate
        .map(|r| Duration::from_secs_f64(spec.connections as f64 / r.max(1.0)));
    let mut next_send = Instant::now()
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64((conn as f64) / spec.connections as f64)
        });
    let mut seq = 0u64;
    while Instant::now() < deadline {
        if budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1))
            .is_err()
        {
            break;
        }
        if let Some(interval) = interval {
            tokio::time::sleep_until(next_send).await;
            next_send += interval;
        }
        seq += 1;
        let sent_at = Instant::now();
        let mut request = http::Request::post(&spec.path).header("host", "bench");
        if let Some(authorization) = &spec.authorization {
            request = request.header("authorization", authorization);
        }
        let request = request
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("{run_id:08x}-{conn}-{seq}"))
            .header("ce-source", "/herald/bench")
            .header("ce-type", "dev.herald.bench")
            .header("ce-benchsent", (sent_at - epoch).as_micros().to_string())
            .header("content-type", "application/octet-stream")
            .body(Full::new(body.clone()))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        out.sent += 1;
        if status.is_success() {
            out.accepted += 1;
            out.latencies_us
                .push(sent_at.elapsed().as_micros().min(u32::MAX as u128) as u32);
        } else {
            out.refused += 1;
        }
    }
    Ok(out)
}
