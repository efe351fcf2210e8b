//! One TLS connection: the handshake within `--tls-handshake-timeout` (a client that trickles
//! its ClientHello, or speaks plain HTTP, is closed), then HTTP/2 or HTTP/1.1 as ALPN chose,
//! behind the same body limits as plain connections and with the client certificate's
//! identity in every request's extensions.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;

use super::budget::Guarded;
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

/// Serves one accepted TCP connection over TLS until it ends or shutdown closes it.
pub async fn serve(
    tls: Arc<TlsServer>,
    stream: TcpStream,
    peer: SocketAddr,
    service: Guarded,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    graceful: Watcher,
) {
    let timeout = tls.options.handshake_timeout;
    let stream = match tokio::time::timeout(timeout, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, ?timeout, "TLS handshake not completed in time (--tls-handshake-timeout)");
            return;
        }
    };
    let (_, session) = stream.get_ref();
    let h2 = session.alpn_protocol() == Some(b"h2".as_slice());
    let identity = match session.peer_certificates().and_then(|chain| chain.first()) {
        None => None,
        Some(leaf) => match peer::identity_of(leaf.as_ref()) {
            Ok(identity) => Some(identity),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "client certificate refused");
                return;
            }
        },
    };
    let service = service.with_identity(identity);
    let io = TokioIo::new(stream);
    let result = if h2 {
        graceful.watch(http2.serve_connection(io, service)).await
    } else {
        graceful.watch(http1.serve_connection(io, service)).await
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = ?e, "connection ended with an error");
    }
}
