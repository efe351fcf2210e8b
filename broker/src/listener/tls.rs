//! HTTPS on the listener (`--tls-cert`, `--tls-key`, `--tls-client-ca`): rustls with ring,
//! TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`.
//!
//! The certified key sits behind a resolver that hands out the current pair to each new
//! handshake; [`TlsServer::watch_files`] polls the files (metadata only, every
//! `--tls-reload-interval`), re-reads them off the async workers when they change and swaps
//! the pair in one step. Open connections keep the session they negotiated; a new pair that
//! does not load (unreadable, not PEM, key not matching the certificate) is logged, counted
//! in `herald_tls_reloads_total{outcome="failed"}`, and the old pair stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::metrics::{Metrics, TlsHandshakeLabels, TlsReloadLabels};

pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 100;
pub const DEFAULT_H2_MAX_HEADER_LIST_SIZE: u32 = 64 << 10;

/// The TLS settings of the listeners (both of them, with `--admin-listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM certificate chain, leaf first (`--tls-cert`).
    pub cert: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 or SEC1 (`--tls-key`).
    pub key: PathBuf,
    /// PEM CA certificates a client certificate must chain to (`--tls-client-ca`): mTLS.
    pub client_ca: Option<PathBuf>,
    /// Time a connection has to complete its handshake (`--tls-handshake-timeout`).
    pub handshake_timeout: Duration,
    /// How often the certificate and key files are checked for changes
    /// (`--tls-reload-interval`; zero: never).
    pub reload_interval: Duration,
    /// HTTP/2: streams one connection may have open at once (`--h2-max-concurrent-streams`).
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: largest decoded header list of one request (`--h2-max-header-list-size`).
    pub h2_max_header_list_size: u32,
}

impl TlsOptions {
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            cert,
            key,
            client_ca: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            h2_max_concurrent_streams: DEFAULT_H2_MAX_CONCURRENT_STREAMS,
            h2_max_header_list_size: DEFAULT_H2_MAX_HEADER_LIST_SIZE,
        }
    }
}

/// Why a certificate, key or CA file could not be used. Never carries file contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {path}: {message}")]
    File {
        flag: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("--tls-key {key} does not belong to --tls-cert {cert}: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("TLS settings refused: {0}")]
    Config(String),
}

fn file_error(flag: &'static str, path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        flag,
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The acceptor of both listeners, the swappable certified key, and the limits that apply
/// to TLS connections.
pub struct TlsServer {
    pub acceptor: TlsAcceptor,
    pub options: TlsOptions,
    current: Arc<CurrentKey>,
    /// Where handshake failures and reloads are counted (`herald_tls_*`).
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The certified key new handshakes get.
#[derive(Debug)]
struct CurrentKey(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsServer {
    /// Reads the files (off the async workers) and builds the acceptor; `metrics` counts its
    /// handshake failures and reloads.
    pub async fn load(options: TlsOptions, metrics: Arc<Metrics>) -> Result<Self, TlsError> {
        tokio::task::spawn_blocking(move || Self::load_blocking(options, metrics))
            .await
            .map_err(|e| TlsError::Config(format!("loading task failed: {e}")))?
    }

    fn load_blocking(options: TlsOptions, metrics: Arc<Metrics>) -> Result<Self, TlsError> {
        let key = load_pair(&options.cert, &options.key)?;
        let current = Arc::new(CurrentKey(RwLock::new(Arc::new(key))));
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &options.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certificates("--tls-client-ca", path)? {
                    roots
                        .add(cert)
                        .map_err(|e| file_error("--tls-client-ca", path, e.to_string()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| file_error("--tls-client-ca", path, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            options,
            current,
            metrics,
        })
    }

    /// Counts a connection closed before HTTP (`reason` from a closed set).
    pub fn handshake_failed(&self, reason: &'static str) {
        self.metrics
            .tls_handshake_failures
            .get_or_create(&TlsHandshakeLabels { reason })
            .inc();
    }

    /// Polls the certificate and key files until `stop`; on a change, loads the new pair and
    /// swaps it in, or logs and counts why it could not and keeps the old one.
    pub async fn watch_files(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let metrics = self.metrics.clone();
        let interval = self.options.reload_interval;
        if interval.is_zero() {
            return;
        }
        // Visible while it runs: `herald_task_running{task="tls-reload"}`.
        let running = metrics
            .task_running
            .get_or_create(&crate::metrics::TaskLabels {
                task: "tls-reload".into(),
            })
            .clone();
        running.set(1);
        let _stopped = Finally(move || {
            running.set(0);
        });
        let (cert, key) = (self.options.cert.clone(), self.options.key.clone());
        let mut seen = fingerprint(&cert, &key).await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            let now = fingerprint(&cert, &key).await;
            if now == seen {
                continue;
            }
            seen = now;
            let (c, k) = (cert.clone(), key.clone());
            let loaded = tokio::task::spawn_blocking(move || load_pair(&c, &k))
                .await
                .unwrap_or_else(|e| Err(TlsError::Config(format!("loading task failed: {e}"))));
            let outcome = match loaded {
                Ok(pair) => {
                    *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                    tracing::info!(cert = %cert.display(), "TLS certificate reloaded; new handshakes use it");
                    "loaded"
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS certificate not reloaded; the previous one stays in use");
                    "failed"
                }
            };
            metrics
                .tls_reloads
                .get_or_create(&TlsReloadLabels { outcome })
                .inc();
        }
    }
}

/// Runs its closure when dropped (the task ended, returned or panicked).
struct Finally<F: FnMut()>(F);

impl<F: FnMut()> Drop for Finally<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// What tells a changed file: inode (a Kubernetes secret mount swaps a symlink), size and
/// modification time of both files; `None` for a file that cannot be read now.
type Fingerprint = [Option<(u64, u64, std::time::SystemTime)>; 2];

async fn fingerprint(cert: &Path, key: &Path) -> Fingerprint {
    async fn one(path: &Path) -> Option<(u64, u64, std::time::SystemTime)> {
        use std::os::unix::fs::MetadataExt;
        let meta = tokio::fs::metadata(path).await.ok()?;
        Some((meta.ino(), meta.len(), meta.modified().ok()?))
    }
    [one(cert).await, one(key).await]
}

fn read_certificates(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(flag, path, pem_message(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(flag, path, pem_message(e)))?;
    if certs.is_empty() {
        return Err(file_error(flag, path, "no PEM CERTIFICATE block"));
    }
    Ok(certs)
}

/// Loads a certificate chain and its private key, checking that they belong together.
fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certificates("--tls-cert", cert)?;
    // The key's own parse errors could quote key material: only their kind is reported.
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(e) => file_error("--tls-key", key, e.to_string()),
        rustls::pki_types::pem::Error::NoItemsFound => {
            file_error("--tls-key", key, "no PEM PRIVATE KEY block")
        }
        _ => file_error("--tls-key", key, "not a readable PEM private key"),
    })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    })
}

fn pem_message(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM CERTIFICATE block".into(),
        other => format!("not readable PEM ({other:?})"),
    }
}
