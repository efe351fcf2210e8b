//! Outbound HTTP clients: one per distinct set of a destination's `CACerts`, each trusting the
//! system roots plus that set, all dialling through the egress-guarded connector.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::connect::GuardedConnector;
use super::egress::EgressPolicy;

pub type HttpClient = Client<HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// A destination's `CACerts` (Knative's `Destination.CACerts`): PEM certificates trusted in
/// addition to the system roots for that destination only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaCerts(Arc<[CertificateDer<'static>]>);

#[derive(Debug, thiserror::Error)]
pub enum CaCertsError {
    #[error("no PEM certificate (-----BEGIN CERTIFICATE-----) found")]
    Empty,
    #[error("certificate {index} is not valid PEM: {reason}")]
    Pem { index: usize, reason: String },
    #[error("certificate {index} cannot be a trust anchor: {reason}")]
    Anchor { index: usize, reason: String },
}

impl CaCerts {
    /// Parses every certificate of `pem` and checks each can serve as a trust anchor, so a bad
    /// `CACerts` fails the configuration load rather than every delivery.
    pub fn from_pem(pem: &str) -> Result<Self, CaCertsError> {
        let mut certs = Vec::new();
        for (index, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
            let cert = cert.map_err(|e| CaCertsError::Pem {
                index,
                reason: e.to_string(),
            })?;
            RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| CaCertsError::Anchor {
                    index,
                    reason: e.to_string(),
                })?;
            certs.push(cert);
        }
        if certs.is_empty() {
            return Err(CaCertsError::Empty);
        }
        Ok(Self(certs.into()))
    }
}

/// The clients of one Herald: built once per CA set (the configuration's sets at start, a set
/// first seen later when it is first used) and shared by every delivery to it.
pub struct Clients {
    system_roots: RootCertStore,
    egress: Arc<EgressPolicy>,
    clients: Mutex<HashMap<Option<CaCerts>, HttpClient>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("egress", &self.egress)
            .finish_non_exhaustive()
    }
}

impl Clients {
    /// Reads the operating system's trusted roots: blocking file I/O, call it off the async
    /// workers (`herald serve` does, on the blocking pool).
    #[allow(
        clippy::disallowed_methods,
        reason = "blocking by contract: callers run it off the async workers"
    )]
    pub fn load(egress: EgressPolicy) -> Self {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(error = %error, "a system trusted root could not be read");
        }
        let mut system_roots = RootCertStore::empty();
        let (added, ignored) = system_roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(
                ignored,
                "no trusted roots found: https deliveries fail unless the destination has CACerts"
            );
        }
        Self {
            system_roots,
            egress: Arc::new(egress),
            clients: Mutex::default(),
        }
    }

    /// The client for destinations trusting `ca` (besides the system roots).
    pub fn get(&self, ca: Option<&CaCerts>) -> HttpClient {
        let mut clients = self.clients.lock().unwrap();
        clients
            .entry(ca.cloned())
            .or_insert_with(|| self.build(ca))
            .clone()
    }

    fn build(&self, ca: Option<&CaCerts>) -> HttpClient {
        let mut roots = self.system_roots.clone();
        if let Some(ca) = ca {
            // Checked by `CaCerts::from_pem`.
            roots.add_parsable_certificates(ca.0.iter().cloned());
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(GuardedConnector::new(self.egress.clone()));
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_certs_are_named() {
        assert!(matches!(CaCerts::from_pem(""), Err(CaCertsError::Empty)));
        assert!(matches!(
            CaCerts::from_pem("hello"),
            Err(CaCertsError::Empty)
        ));
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            CaCerts::from_pem(garbage),
            Err(CaCertsError::Anchor { index: 0, .. })
        ));
    }
}
