//! One TLS connection: the handshake within `--tls-handshake-timeout` (a client that trickles
//! its ClientHello, or speaks plain HTTP, is closed), then HTTP/2 or HTTP/1.1 as ALPN chose,
//! behind the same body limits as plain connections and with the client certificate's
//! identity in every request's extensions. An HTTP/2 connection with no request open for
//! `--header-read-timeout` is sent GOAWAY and closed, as an idle HTTP/1.1 one is.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::budget::Guarded;
use super::idle::Activity;
use super::peer;
use super::tls::TlsServer;

/// The HTTP/2 settings of TLS connections: streams and header lists bounded by flags,
/// keep-alive pings so that a vanished peer frees its slot.
pub fn http2_builder(
    tls: &TlsServer,
    idle: std::time::Duration,
) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(tls.options.h2_max_concurrent_streams)
        .max_header_list_size(tls.options.h2_max_header_list_size)
        .keep_alive_interval(idle)
        .keep_alive_timeout(idle);
    builder
}

/// How one TLS connection is served: its HTTP builders, its idle timeout, and the signal
/// that the listener is closing.
pub struct Serving {
    pub http1: hyper::server::conn::http1::Builder,
    pub http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    pub idle_timeout: std::time::Duration,
    /// HTTP/1.1 connections end through hyper-util's graceful shutdown.
    pub graceful: Watcher,
    /// HTTP/2 connections (which need their own idle timer, so are not handed to `graceful`)
    /// and handshakes end when this turns true; the listener waits for their slots.
    pub closing: watch::Receiver<bool>,
}

/// Serves one accepted TCP connection over TLS until it ends or shutdown closes it.
pub async fn serve(
    tls: Arc<TlsServer>,
    stream: TcpStream,
    peer: SocketAddr,
    service: Guarded,
    serving: Serving,
) {
    let Serving {
        http1,
        http2,
        idle_timeout,
        graceful,
        mut closing,
    } = serving;
    let timeout = tls.options.handshake_timeout;
    let handshake = tokio::time::timeout(timeout, tls.acceptor.accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                tls.handshake_failed("failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, ?timeout, "TLS handshake not completed in time (--tls-handshake-timeout)");
                tls.handshake_failed("timeout");
                return;
            }
        },
        _ = closed(&mut closing) => return,
    };
    let (_, session) = stream.get_ref();
    let h2 = session.alpn_protocol() == Some(b"h2".as_slice());
    let identity = match session.peer_certificates().and_then(|chain| chain.first()) {
        None => None,
        Some(leaf) => match peer::identity_of(leaf.as_ref()) {
            Ok(identity) => Some(identity),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "client certificate refused");
                tls.handshake_failed("client_certificate");
                return;
            }
        },
    };
    let service = service.with_identity(identity);
    let io = TokioIo::new(stream);
    let result = if h2 {
        let activity = Arc::new(Activity::default());
        let connection = http2.serve_connection(io, service.with_activity(activity.clone()));
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => result,
            _ = activity.idle_for(idle_timeout) => {
                tracing::debug!(%peer, ?idle_timeout, "idle HTTP/2 connection closed (--header-read-timeout)");
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            _ = closed(&mut closing) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    } else {
        graceful.watch(http1.serve_connection(io, service)).await
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = ?e, "connection ended with an error");
    }
}

/// Resolves once the listener is closing (or gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: dropped here, not held by the caller.
    let _ = closing.wait_for(|closing| *closing).await;
}
