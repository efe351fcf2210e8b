//! The serve loop: HTTP/1.1 in plain text, or HTTPS with HTTP/2 or HTTP/1.1 as ALPN chose
//! ([`tls`], [`connection`]: the handshake within `--tls-handshake-timeout`, h2 streams and
//! header lists bounded), with every connection bounded: headers within
//! `header_read_timeout` (which is also the keep-alive idle timeout: hyper arms it whenever a
//! connection waits for a request head), bodies within `body_read_timeout`, at most
//! `max_connections` open (kept below the descriptor limit), and at most
//! `max_body_bytes_in_flight` of request bodies in flight (from the request head until the
//! answer), beyond which requests are answered `503` with `Retry-After` (see [`budget`]).

mod budget;
mod connection;
mod idle;
mod peer;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use budget::{BodyError, BodyLimits, body_error};
pub use peer::{PeerError, identity_of};
pub use tls::{TlsError, TlsOptions, TlsServer};

/// Defaults of the connection limits.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: usize = 64 << 20;

/// hyper's read buffer of one connection grows up to this while a request streams in; it also
/// bounds a request's head (a longer head is `431`), so it leaves room for attributes far
/// over the default `--max-attributes-bytes`, which then get a `400` naming that limit.
pub const MAX_READ_BUFFER: usize = 400 << 10;

/// How long shutdown waits for open requests (an ingest waiting on the bus) to be answered.
const REQUEST_GRACE: Duration = Duration::from_secs(10);

/// Connection limits of the listener (`--header-read-timeout`, `--body-read-timeout`,
/// `--max-connections`, `--max-body-bytes-in-flight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerOptions {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_body_bytes_in_flight: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_body_bytes_in_flight: DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
        }
    }
}

/// Serves `app` until `shutdown`, then stops accepting and lets open requests finish: over
/// HTTP/1.1 keep-alive in plain text, or over TLS when `tls` is given. Plain hyper rather
/// than `axum::serve`: without TLS Herald speaks HTTP/1.1 only (no h2c), and skipping the
/// HTTP/2-detecting connection wrapper is measurably cheaper per request; with TLS, ALPN
/// says which protocol a connection speaks, so no detection is needed either.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    options: ListenerOptions,
    max_body: usize,
    tls: Option<Arc<TlsServer>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let cap = connection_cap(options.max_connections).await;
    tracing::info!(
        max_connections = cap,
        header_read_timeout = ?options.header_read_timeout,
        body_read_timeout = ?options.body_read_timeout,
        max_body_bytes_in_flight = options.max_body_bytes_in_flight,
        "connection limits"
    );
    let slots = Arc::new(Semaphore::new(cap));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let service = budget::Guarded::new(app, BodyLimits::new(&options, max_body));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(MAX_READ_BUFFER);
    let http2 = tls
        .as_ref()
        .map(|tls| connection::http2_builder(tls, options.header_read_timeout));
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut failures = 0u32;
    loop {
        // A connection slot first: at the cap, connections wait in the kernel's backlog
        // instead of taking descriptors the bus and deliveries need.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    failures = 0;
                    accepted
                }
                Err(e) => {
                    // Out of descriptors and the like: back off (doubling to 1 s) instead of
                    // spinning; the connections holding them end by their timeouts.
                    failures += 1;
                    let wait = Duration::from_millis(50 << failures.min(5)).min(Duration::from_secs(1));
                    if failures == 1 {
                        tracing::warn!(error = %e, retry_in = ?wait, "accept failed");
                    } else {
                        tracing::debug!(error = %e, retry_in = ?wait, failures, "accept failed again");
                    }
                    drop(slot);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        if let (Some(tls), Some(http2)) = (&tls, &http2) {
            let serving = connection::serve(
                tls.clone(),
                stream,
                peer,
                service.clone(),
                connection::Serving {
                    http1: builder.clone(),
                    http2: http2.clone(),
                    idle_timeout: options.header_read_timeout,
                    graceful: graceful.watcher(),
                    closing: closing_rx.clone(),
                },
            );
            tokio::spawn(async move {
                serving.await;
                drop(slot);
            });
            continue;
        }
        let connection =
            builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = ?e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every connection holds a slot until it ends: all slots back means all connections
    // (HTTP/2 ones included, which `graceful` does not track) have finished.
    let all_closed = async {
        graceful.shutdown().await;
        let _ = slots
            .acquire_many(u32::try_from(cap).unwrap_or(u32::MAX))
            .await;
    };
    if tokio::time::timeout(REQUEST_GRACE, all_closed)
        .await
        .is_err()
    {
        tracing::warn!("open requests not finished within {REQUEST_GRACE:?}; closing them");
    }
}

/// `max_connections`, lowered to leave a quarter of the process's descriptor limit (at
/// least 64) to the bus, deliveries and sources.
async fn connection_cap(max_connections: usize) -> usize {
    let Some(limit) = descriptor_limit().await else {
        return max_connections.max(1);
    };
    let reserve = (limit / 4).max(64);
    let cap = max_connections.min(limit.saturating_sub(reserve)).max(1);
    if cap < max_connections {
        tracing::info!(
            descriptor_limit = limit,
            max_connections = cap,
            "connection cap lowered below the descriptor limit"
        );
    }
    cap
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (Linux; elsewhere
/// `None` and only `--max-connections` applies).
async fn descriptor_limit() -> Option<usize> {
    let text = tokio::fs::read_to_string("/proc/self/limits").await.ok()?;
    parse_descriptor_limit(&text)
}

fn parse_descriptor_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_descriptor_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            512                  4096                 files     \n";
        assert_eq!(parse_descriptor_limit(text), Some(512));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_descriptor_limit(unlimited), Some(usize::MAX));
        assert_eq!(parse_descriptor_limit("nothing here"), None);
    }

    #[tokio::test]
    async fn the_connection_cap_leaves_descriptors_free() {
        let limit = descriptor_limit()
            .await
            .expect("linux has /proc/self/limits");
        let cap = connection_cap(usize::MAX).await;
        assert!(cap < limit, "cap {cap} must stay below the limit {limit}");
        assert_eq!(connection_cap(3).await, 3.min(cap));
    }
}
