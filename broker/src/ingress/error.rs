//! Ingress errors and the status code each earns (the HTTP table of the README).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::binding::BindingError;
use herald_buses::BusError;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error(transparent)]
    Binding(#[from] BindingError),
    #[error("no broker {namespace}/{name}")]
    UnknownBroker { namespace: String, name: String },
    #[error("method {0} is not allowed on a broker (use POST)")]
    MethodNotAllowed(String),
    #[error("body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("the request body did not arrive within {after:?} (--body-read-timeout)")]
    BodyTimeout { after: std::time::Duration },
    #[error(
        "too many request body bytes in flight (limit {limit} bytes, \
         --max-body-bytes-in-flight); retry later"
    )]
    Busy { limit: usize },
    #[error("knativebrokerttl is {0}: the event was dropped by the loop guard")]
    TtlExhausted(i64),
    #[error("not authenticated: {0}")]
    Unauthenticated(crate::auth::AuthError),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("event could not be made durable, retry later: {0}")]
    Bus(#[from] BusError),
}

impl IngressError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngressError::Binding(BindingError::UnsupportedFormat(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngressError::Binding(_) => StatusCode::BAD_REQUEST,
            IngressError::UnknownBroker { .. } => StatusCode::NOT_FOUND,
            IngressError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            IngressError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::Body(_) | IngressError::TtlExhausted(_) => StatusCode::BAD_REQUEST,
            IngressError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            IngressError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            IngressError::Forbidden(_) => StatusCode::FORBIDDEN,
            IngressError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            IngressError::Bus(BusError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::Bus(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            IngressError::Bus(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The reason label of `herald_events_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngressError::Binding(e) => e.reason(),
            IngressError::UnknownBroker { .. } => "unknown_broker",
            IngressError::MethodNotAllowed(_) => "method",
            IngressError::PayloadTooLarge { .. } => "too_large",
            IngressError::Body(_) => "body",
            IngressError::BodyTimeout { .. } => "body_timeout",
            IngressError::Busy { .. } => "busy",
            IngressError::TtlExhausted(_) => "ttl",
            IngressError::Unauthenticated(_) => "unauthenticated",
            IngressError::Forbidden(_) => "forbidden",
            IngressError::Bus(BusError::Overloaded { .. }) => "bus_overloaded",
            IngressError::Bus(BusError::TooLarge { .. }) => "too_large",
            IngressError::Bus(_) => "bus_unavailable",
        }
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = serde_json::json!({ "error": self.to_string() });
        match &self {
            IngressError::Unauthenticated(e) => body["reason"] = e.code().into(),
            IngressError::Forbidden(_) => body["reason"] = "forbidden".into(),
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                let after = if matches!(
                    self,
                    IngressError::Bus(BusError::Overloaded { .. }) | IngressError::Busy { .. }
                ) {
                    "1"
                } else {
                    "5"
                };
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(after));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    super::auth::www_authenticate(&self),
                );
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            }
            _ => {}
        }
        if matches!(
            self,
            IngressError::Busy { .. } | IngressError::BodyTimeout { .. }
        ) {
            // The body was not read to its end: the connection cannot carry another request.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
