//! One HTTP delivery attempt: encode, send with a deadline, classify the answer.

use std::time::Duration;

use bytes::Bytes;
use cloudevents::Event;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use crate::binding::{self, BindingError};
use crate::config::Format;

/// Largest reply body read from a subscriber.
const MAX_RESPONSE: usize = 1 << 20;

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt {
    /// 2xx; `reply` holds the events of a 200/201 response that carried CloudEvents.
    Delivered {
        reply: Vec<Event>,
    },
    Failed(Failure),
}

#[derive(Debug, Clone)]
pub struct Failure {
    /// The HTTP status, absent for connection errors and timeouts.
    pub status: Option<StatusCode>,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
    /// The response body, for `knativeerrordata`.
    pub body: Bytes,
    pub message: String,
}

impl Failure {
    fn transport(message: String) -> Self {
        Failure {
            status: None,
            retryable: true,
            retry_after: None,
            body: Bytes::new(),
            message,
        }
    }
}

/// Knative's retry table: connection errors, timeouts, 404, 408, 409, 429 and 5xx.
pub fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 408 | 409 | 429) || status.is_server_error()
}

/// A pooled HTTP/1.1 client with keep-alive; redirects are never followed.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sender")
    }
}

impl Default for Sender {
    fn default() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        // `https` checks certificates against the operating system's trusted roots.
        let builder = HttpsConnectorBuilder::new()
            .with_native_roots()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "no trusted roots found: https deliveries will fail");
                HttpsConnectorBuilder::new().with_tls_config(rustls_config_without_roots())
            });
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self { client }
    }
}

impl Sender {
    pub async fn send(
        &self,
        url: &Url,
        event: &Event,
        format: Format,
        timeout: Duration,
    ) -> Attempt {
        match tokio::time::timeout(timeout, self.attempt(url, event, format)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::Failed(Failure::transport(format!("timed out after {timeout:?}"))),
        }
    }

    async fn attempt(&self, url: &Url, event: &Event, format: Format) -> Attempt {
        let (headers, body) = match format {
            Format::Binary => binding::encode::binary(event),
            Format::Structured => binding::encode::structured(event),
        };
        let mut request = Request::post(url.as_str()).header("prefer", "reply");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = match request.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failed(Failure {
                    retryable: false,
                    ..Failure::transport(format!("cannot build request: {e}"))
                });
            }
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failed(Failure::transport(format!(
                    "request to {url} failed: {e}"
                )));
            }
        };
        let (parts, body) = response.into_parts();
        let body = match Limited::new(body, MAX_RESPONSE).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                if parts.status.is_success() {
                    // Delivered, but the reply is unreadable: the event is done, the reply lost.
                    // `url` comes from configuration (and `Url` escapes controls); the error
                    // may carry the subscriber's bytes, so it is Debug-escaped.
                    tracing::warn!(%url, error = ?e.to_string(), "reply body unreadable; reply ignored");
                }
                Bytes::new()
            }
        };
        if parts.status.is_success() {
            let reply = reply_events(parts.status, &parts.headers, body).unwrap_or_else(|e| {
                tracing::warn!(%url, error = ?e.to_string(), "subscriber replied with an invalid CloudEvent; reply ignored");
                Vec::new()
            });
            return Attempt::Delivered { reply };
        }
        let retry_after = match parts.status.as_u16() {
            429 | 503 => parts
                .headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
            _ => None,
        };
        Attempt::Failed(Failure {
            status: Some(parts.status),
            retryable: is_retryable(parts.status),
            retry_after,
            message: format!("subscriber answered {}", parts.status),
            body,
        })
    }
}

fn rustls_config_without_roots() -> rustls::ClientConfig {
    // Only reached where the system has no CA store: https then fails with a clear error.
    rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// A 200/201 answer carrying a CloudEvent (binary or structured) is a reply.
fn reply_events(
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Vec<Event>, BindingError> {
    if !matches!(status.as_u16(), 200 | 201) {
        return Ok(Vec::new());
    }
    let structured = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/cloudevents")
        });
    if !structured && !headers.contains_key("ce-specversion") {
        return Ok(Vec::new());
    }
    binding::decode::decode(headers, body)
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_table_matches_knative() {
        for code in [404, 408, 409, 429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [300, 301, 302, 400, 401, 403, 405, 410, 413, 415, 422] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
