//! The router of Herald's one listener.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{Ingress, IngressError};
use crate::binding::decode::decode;

pub fn router(ingress: Arc<Ingress>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // Broker paths are matched by hand: `/{namespace}/{name}` is looked up without
        // allocating, which matters at tens of thousands of requests per second.
        .fallback(broker)
        .with_state(ingress)
}

/// `200 ready` once started, the bus able to take events and every trigger subscribed (and
/// every source running); otherwise `503` with one line per reason.
async fn readyz(State(ingress): State<Arc<Ingress>>) -> Response {
    let unready = ingress.metrics.unready();
    if ingress.is_ready() && unready.is_empty() {
        "ready".into_response()
    } else {
        let mut body = String::from("not ready\n");
        for line in unready {
            body.push_str(&line);
            body.push('\n');
        }
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(ingress): State<Arc<Ingress>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ingress.metrics.encode(),
    )
        .into_response()
}

async fn broker(State(ingress): State<Arc<Ingress>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let key = parts.uri.path().strip_prefix('/').unwrap_or("");
    let key = key.strip_suffix('/').unwrap_or(key);
    let Some(entry) = ingress.broker(key) else {
        let mut segments = key.split('/');
        let error = match (segments.next(), segments.next(), segments.next()) {
            (Some(namespace), Some(name), None) if !namespace.is_empty() && !name.is_empty() => {
                IngressError::UnknownBroker {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                }
            }
            _ => return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": format!("no route for {}; brokers are at /{{namespace}}/{{name}}", parts.uri.path())}))).into_response(),
        };
        ingress.count_rejected(key, &error, 1);
        return error.into_response();
    };
    match parts.method {
        Method::POST => {
            let result = match read_limited(&parts.headers, body, ingress.max_body).await {
                Ok(body) => decode(&parts.headers, body).map_err(IngressError::from),
                Err(e) => Err(e),
            };
            let result = match result {
                Ok(events) => ingress.publish_to(entry, events).await,
                Err(e) => {
                    ingress.count_rejected(key, &e, 1);
                    Err(e)
                }
            };
            match result {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(e) => e.into_response(),
            }
        }
        Method::OPTIONS => handshake(&parts.headers),
        other => {
            let error = IngressError::MethodNotAllowed(other.to_string());
            ingress.count_rejected(key, &error, 1);
            error.into_response()
        }
    }
}

/// Reads at most `limit` bytes; a declared or actual larger body is refused without
/// buffering it whole.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, IngressError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(IngressError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(IngressError::PayloadTooLarge { limit }),
        Err(e) => Err(IngressError::Body(e.to_string())),
    }
}

/// The abuse-protection handshake of `http-webhook.md` §4: Herald accepts events from any
/// origin at any rate, so it answers every validation request positively.
fn handshake(headers: &HeaderMap) -> Response {
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    out.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    if let Some(origin) = headers.get("webhook-request-origin") {
        out.insert("webhook-allowed-origin", origin.clone());
    }
    if headers.contains_key("webhook-request-rate") {
        out.insert("webhook-allowed-rate", HeaderValue::from_static("*"));
    }
    response
}
