//! One HTTP delivery attempt: encode, send with a deadline, classify the answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudevents::{AttributesReader, Event};
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::binding::{self, BindingError};
use crate::config::Format;
use crate::outbound::connect::ConnectError;
use crate::outbound::egress::EgressPolicy;
use crate::outbound::issuer::{DEFAULT_TOKEN_LIFETIME, Issuer};
use crate::outbound::tls::Clients;
use crate::outbound::{Endpoint, FailureLabels, SendAs};

/// Largest reply body read from a subscriber.
const MAX_RESPONSE: usize = 1 << 20;

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt {
    /// 2xx: the event is delivered once the status line is in, whatever the body does.
    Delivered {
        reply: Reply,
    },
    Failed(Failure),
}

/// What a successful delivery's response body came to.
#[derive(Debug)]
pub enum Reply {
    /// No CloudEvent in the response.
    None,
    /// One reply event (a 200/201 carrying a CloudEvent), to publish to the broker.
    One(Box<Event>),
    /// A reply Herald does not publish; `reason` is a metric label from a closed set.
    Refused {
        reason: &'static str,
        message: String,
    },
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

/// Pooled HTTP/1.1 clients with keep-alive (one per destination CA set), dialling through the
/// egress policy; redirects are never followed. Adds the bearer token of destinations with an
/// `audience` and the Standard Webhooks signature of senders with a signing secret.
#[derive(Clone)]
pub struct Sender {
    clients: Arc<Clients>,
    issuer: Arc<Issuer>,
    failures: Family<FailureLabels, Counter>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sender")
    }
}

impl Default for Sender {
    /// The default egress policy, an in-memory issuer, metrics counted nowhere (tests).
    fn default() -> Self {
        Self::new(
            Arc::new(Clients::load(EgressPolicy::default())),
            Arc::new(Issuer::ephemeral(
                "http://localhost",
                DEFAULT_TOKEN_LIFETIME,
            )),
            Family::default(),
        )
    }
}

impl Sender {
    /// `failures` is `herald_delivery_failures_total`.
    pub fn new(
        clients: Arc<Clients>,
        issuer: Arc<Issuer>,
        failures: Family<FailureLabels, Counter>,
    ) -> Self {
        Self {
            clients,
            issuer,
            failures,
        }
    }

    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// Builds the client of a CA set now rather than at its first delivery.
    pub fn prepare(&self, endpoint: &Endpoint) {
        let _ = self.clients.get(endpoint.ca_certs.as_ref());
    }

    pub async fn send(
        &self,
        endpoint: &Endpoint,
        event: &Event,
        format: Format,
        timeout: Duration,
        from: &SendAs,
    ) -> Attempt {
        let now = tokio::time::Instant::now();
        // A timeout too large to add is "no deadline" in practice: 30 years, as tokio does.
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        match self
            .attempt(endpoint, event, format, deadline, timeout, from)
            .await
        {
            Ok(reply) => Attempt::Delivered { reply },
            Err((reason, failure)) => {
                if reason == FailureReason::EgressDenied {
                    tracing::warn!(sender = %from.label, url = %endpoint.url, reason = reason.label(),
                        error = %failure.message, "delivery attempt refused by the egress policy: no connection made");
                }
                self.failures
                    .get_or_create(&FailureLabels {
                        sender: from.label.clone(),
                        reason: reason.label(),
                    })
                    .inc();
                Attempt::Failed(failure)
            }
        }
    }

    /// `timeout` bounds the whole exchange; once a 2xx status line is in, the event is
    /// delivered: a body that does not arrive by then only loses the reply.
    async fn attempt(
        &self,
        endpoint: &Endpoint,
        event: &Event,
        format: Format,
        deadline: tokio::time::Instant,
        timeout: Duration,
        from: &SendAs,
    ) -> Result<Reply, (FailureReason, Failure)> {
        let url = &endpoint.url;
        let (headers, body) = match format {
            Format::Binary => binding::encode::binary(event),
            Format::Structured => binding::encode::structured(event),
        };
        let mut request = Request::post(url.as_str()).header("prefer", "reply");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(audience) = &endpoint.audience {
            let token = self.issuer.token(&from.subject, audience);
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(signer) = &from.signer {
            // Signed per attempt: the receiver checks the timestamp's freshness.
            let timestamp = chrono::Utc::now().timestamp();
            request = request
                .header("webhook-id", event.id())
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signer.signature(event.id(), timestamp, &body),
                );
        }
        let request = match request.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                let failure = Failure {
                    retryable: false,
                    ..Failure::transport(format!("cannot build request: {e}"))
                };
                return Err((FailureReason::Connect, failure));
            }
        };
        let client = self.clients.get(endpoint.ca_certs.as_ref());
        let response = match tokio::time::timeout_at(deadline, client.request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                if let Some(denied) = ConnectError::egress_denied_in(&e) {
                    // Retryable like an unreachable destination: retries, then the dead
                    // letter sink or the parking lot; the message carries the reason.
                    let failure = Failure::transport(denied.to_string());
                    return Err((FailureReason::EgressDenied, failure));
                }
                let message = format!("request to {url} failed: {}", error_chain(&e));
                return Err((FailureReason::Connect, Failure::transport(message)));
            }
            Err(_) => {
                let message = format!("timed out after {timeout:?}");
                return Err((FailureReason::Timeout, Failure::transport(message)));
            }
        };
        let (parts, body) = response.into_parts();
        let body =
            tokio::time::timeout_at(deadline, Limited::new(body, MAX_RESPONSE).collect()).await;
        let body = match body {
            Ok(Ok(b)) => Ok(b.to_bytes()),
            Ok(Err(e)) => Err(format!("reply body unreadable: {e}")),
            Err(_) => Err(format!("reply body not complete after {timeout:?}")),
        };
        if parts.status.is_success() {
            let reply = match body {
                // Delivered, but the reply is unreadable: the event is done, the reply lost.
                Err(message) => Reply::Refused {
                    reason: "unreadable",
                    message,
                },
                Ok(body) => reply_event(parts.status, &parts.headers, body),
            };
            return Ok(reply);
        }
        let body = body.unwrap_or_default();
        let retry_after = match parts.status.as_u16() {
            429 | 503 => parts
                .headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
            _ => None,
        };
        let failure = Failure {
            status: Some(parts.status),
            retryable: is_retryable(parts.status),
            retry_after,
            message: format!("subscriber answered {}", parts.status),
            body,
        };
        Err((FailureReason::Status, failure))
    }
}

/// Why an attempt failed: the `reason` of `herald_delivery_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureReason {
    /// Refused by the egress policy before any connection.
    EgressDenied,
    /// No answer: connection, TLS or protocol error (or a request that could not be built).
    Connect,
    Timeout,
    /// A non-2xx answer.
    Status,
}

impl FailureReason {
    fn label(self) -> &'static str {
        match self {
            FailureReason::EgressDenied => "egress_denied",
            FailureReason::Connect => "connect",
            FailureReason::Timeout => "timeout",
            FailureReason::Status => "status",
        }
    }
}

/// An error with its sources (hyper's own message hides the connector's reason).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// A 200/201 answer carrying one CloudEvent (binary or structured) is a reply. A batch is
/// refused unread: one delivery fanning out into several events would let a subscriber
/// multiply the broker's traffic at every hop.
fn reply_event(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Reply {
    if !matches!(status.as_u16(), 200 | 201) {
        return Reply::None;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if content_type.starts_with("application/cloudevents-batch") {
        return Reply::Refused {
            reason: "batch",
            message: "a reply is one event; a batch reply is not published".into(),
        };
    }
    if !content_type.starts_with("application/cloudevents")
        && !headers.contains_key("ce-specversion")
    {
        return Reply::None;
    }
    match binding::decode::decode(headers, body).map(Vec::into_iter) {
        Ok(mut events) => match (events.next(), events.next()) {
            (Some(event), None) => Reply::One(Box::new(event)),
            (None, _) => Reply::None,
            (Some(_), Some(_)) => Reply::Refused {
                reason: "batch",
                message: "a reply is one event; a batch reply is not published".into(),
            },
        },
        Err(e) => Reply::Refused {
            reason: "invalid",
            message: invalid_reply(e),
        },
    }
}

fn invalid_reply(e: BindingError) -> String {
    format!("subscriber replied with an invalid CloudEvent: {e}")
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
