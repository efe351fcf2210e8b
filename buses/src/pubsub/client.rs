//! The Pub/Sub REST/JSON API over hyper and rustls: one JSON request, one JSON answer.
//!
//! Errors keep Pub/Sub's HTTP status and `error.status` (`NOT_FOUND`, `ALREADY_EXISTS`, ...),
//! which the bus maps onto [`BusError`]s. Request bodies may hold event data: they are never
//! logged, nor are tokens.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::auth::{AuthError, TokenSource};
use crate::BusError;

pub(super) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{method} {path}: HTTP {code} {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        code: u16,
        status: String,
        message: String,
    },
    #[error("{method} {path}: {reason}")]
    Transport {
        method: &'static str,
        path: String,
        reason: String,
    },
    #[error("{method} {path}: no answer within {after:?}")]
    Timeout {
        method: &'static str,
        path: String,
        after: Duration,
    },
    #[error("credentials: {0}")]
    Auth(#[from] AuthError),
}

impl ApiError {
    /// Pub/Sub's `error.status`, if the server answered.
    pub fn status(&self) -> Option<&str> {
        match self {
            ApiError::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The [`BusError`] for this failure: refusals of the request itself are final, quota and
    /// overload answers are `Overloaded`, everything else `Unavailable` (retry later).
    pub fn into_bus_error(self) -> BusError {
        let reason = self.to_string();
        match self.code() {
            Some(400) => BusError::Rejected { reason },
            Some(429) => BusError::Overloaded { reason },
            _ if self.status() == Some("RESOURCE_EXHAUSTED") => BusError::Overloaded { reason },
            _ => BusError::Unavailable { reason },
        }
    }
}

/// A client of one Pub/Sub endpoint.
pub(super) struct Api {
    http: HttpClient,
    base: String,
    auth: Option<TokenSource>,
}

/// An HTTP(S) client with the operating system's trusted roots.
pub(super) fn http_client() -> Result<HttpClient, BusError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs_or_empty() {
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

fn rustls_native_certs_or_empty() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "a trusted root could not be loaded");
    }
    found.certs
}

impl Api {
    pub fn new(http: HttpClient, base: String, auth: Option<TokenSource>) -> Self {
        Self { http, base, auth }
    }

    /// `method` on `{base}/{path}` with a JSON body (none for `Value::Null`), within
    /// `timeout`; the JSON answer.
    pub async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        tokio::time::timeout(timeout, self.call_unbounded(method, path, body))
            .await
            .map_err(|_| ApiError::Timeout {
                method,
                path: path.to_owned(),
                after: timeout,
            })?
    }

    async fn call_unbounded(
        &self,
        method: &'static str,
        path: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let transport = |reason: String| ApiError::Transport {
            method,
            path: path.to_owned(),
            reason,
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}/{path}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(auth) = &self.auth {
            let token = auth.token(&self.http).await?;
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(if body.is_null() {
                Bytes::new()
            } else {
                Bytes::from(body.to_string())
            }))
            .map_err(|e| transport(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let code = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(e.to_string()))?
            .to_bytes();
        let json: Value = if bytes.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| transport(format!("HTTP {code}, answer is not JSON ({e})")))?
        };
        if (200..300).contains(&code) {
            return Ok(json);
        }
        let error = &json["error"];
        Err(ApiError::Status {
            method,
            path: path.to_owned(),
            code,
            status: error["status"].as_str().unwrap_or("").to_owned(),
            message: error["message"].as_str().unwrap_or("").to_owned(),
        })
    }
}
