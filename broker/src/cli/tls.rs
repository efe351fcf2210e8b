//! `herald serve` flags of the TLS listener and the admin listener.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use herald::listener::TlsOptions;
use herald::listener::tls::{DEFAULT_H2_MAX_CONCURRENT_STREAMS, DEFAULT_H2_MAX_HEADER_LIST_SIZE};

#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain (leaf first): with --tls-key, the listeners speak HTTPS (TLS 1.2
    /// and 1.3; ALPN h2 and http/1.1). Re-read when the file changes.
    #[arg(
        long,
        env = "HERALD_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1). Re-read when the file changes.
    #[arg(
        long,
        env = "HERALD_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate chained to one of them (mTLS);
    /// its subject becomes the sender identity.
    #[arg(
        long,
        env = "HERALD_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_client_ca: Option<PathBuf>,
    /// Time a connection has to complete the TLS handshake before it is closed.
    #[arg(long, env = "HERALD_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = herald::units::parse_duration)]
    tls_handshake_timeout: Duration,
    /// How often --tls-cert and --tls-key are checked for changes (`0s`: never).
    #[arg(long, env = "HERALD_TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = herald::units::parse_duration)]
    tls_reload_interval: Duration,
    /// HTTP/2 (TLS only): most streams one connection may have open at once.
    #[arg(long, env = "HERALD_H2_MAX_CONCURRENT_STREAMS", default_value_t = DEFAULT_H2_MAX_CONCURRENT_STREAMS, value_parser = clap::value_parser!(u32).range(1..))]
    h2_max_concurrent_streams: u32,
    /// HTTP/2 (TLS only): largest header list of one request, in bytes, as HTTP/2 counts it.
    #[arg(long, env = "HERALD_H2_MAX_HEADER_LIST_SIZE", default_value_t = DEFAULT_H2_MAX_HEADER_LIST_SIZE, value_parser = clap::value_parser!(u32).range(1024..))]
    h2_max_header_list_size: u32,
    /// A second listener for /metrics, /healthz, /readyz and /admin/... (same TLS settings);
    /// the --listen port then no longer serves them.
    #[arg(long, env = "HERALD_ADMIN_LISTEN", value_name = "ADDR")]
    admin_listen: Option<String>,
}

impl TlsArgs {
    pub fn options(&self) -> Option<TlsOptions> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(TlsOptions {
            client_ca: self.tls_client_ca.clone(),
            handshake_timeout: self.tls_handshake_timeout,
            reload_interval: self.tls_reload_interval,
            h2_max_concurrent_streams: self.h2_max_concurrent_streams,
            h2_max_header_list_size: self.h2_max_header_list_size,
            ..TlsOptions::new(cert, key)
        })
    }

    /// Binds `--admin-listen`, if given.
    pub async fn bind_admin(&self) -> anyhow::Result<Option<tokio::net::TcpListener>> {
        let Some(addr) = &self.admin_listen else {
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --admin-listen {addr}"))?;
        Ok(Some(listener))
    }
}
