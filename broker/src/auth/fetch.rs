//! Reading a JWKS: a file (tokio::fs) or an `https` URL (hyper + rustls, trusting the
//! operating system's roots — which `SSL_CERT_FILE` replaces — plus `--oidc-ca`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::AuthError;
use super::jwks::KeySet;
use super::oidc::JwksSource;

pub struct JwksFetcher {
    client: Option<Client<HttpsConnector<HttpConnector>, Empty<Bytes>>>,
    max_bytes: usize,
    timeout: Duration,
}

impl JwksFetcher {
    /// `extra_ca`: PEM certificates (`--oidc-ca`) trusted besides the system's roots.
    pub fn new(max_bytes: usize, timeout: Duration, extra_ca: &[u8]) -> Result<Self, AuthError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(error = %error, "a system root certificate could not be read");
        }
        roots.add_parsable_certificates(native.certs);
        let bad_ca = |message: String| AuthError::JwksUnavailable {
            location: "--oidc-ca".to_owned(),
            message,
        };
        for cert in CertificateDer::pem_slice_iter(extra_ca) {
            let cert = cert.map_err(|e| bad_ca(format!("not PEM certificates: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad_ca(format!("not a usable CA certificate: {e}")))?;
        }
        if !extra_ca.is_empty() && roots.is_empty() {
            return Err(bad_ca("no certificate in the file".to_owned()));
        }
        let client = if roots.is_empty() {
            tracing::warn!("no trusted roots found: JWKS URLs cannot be fetched");
            None
        } else {
            let tls = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_connect_timeout(Some(timeout));
            let connector = HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            Some(Client::builder(TokioExecutor::new()).build(connector))
        };
        Ok(Self {
            client,
            max_bytes,
            timeout,
        })
    }

    pub async fn load(&self, source: &JwksSource) -> Result<KeySet, AuthError> {
        let bytes = match source {
            JwksSource::File(path) => {
                let unavailable = |message: String| AuthError::JwksUnavailable {
                    location: source.to_string(),
                    message,
                };
                let meta = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                if meta.len() > self.max_bytes as u64 {
                    return Err(unavailable(format!(
                        "{} bytes, more than --oidc-jwks-max-bytes {}",
                        meta.len(),
                        self.max_bytes
                    )));
                }
                Bytes::from(
                    tokio::fs::read(path)
                        .await
                        .map_err(|e| unavailable(e.to_string()))?,
                )
            }
            JwksSource::Url(url) => tokio::time::timeout(self.timeout, self.get(url))
                .await
                .map_err(|_| AuthError::JwksUnavailable {
                    location: source.to_string(),
                    message: format!("no answer within {:?}", self.timeout),
                })??,
        };
        KeySet::parse(&bytes).map_err(|e| AuthError::JwksUnavailable {
            location: source.to_string(),
            message: e.to_string(),
        })
    }

    async fn get(&self, url: &url::Url) -> Result<Bytes, AuthError> {
        let unavailable = |message: String| AuthError::JwksUnavailable {
            location: url.to_string(),
            message,
        };
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| unavailable("no trusted roots".to_owned()))?;
        let request = http::Request::get(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| unavailable(e.to_string()))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| unavailable(format!("{e:?}")))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("answered {}", response.status())));
        }
        let body = Limited::new(response.into_body(), self.max_bytes)
            .collect()
            .await
            .map_err(|e| unavailable(format!("body: {e} (limit {} bytes)", self.max_bytes)))?;
        Ok(body.to_bytes())
    }
}
