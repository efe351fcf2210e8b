//! The router of Herald's one listener.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{Ingress, IngressError};
use crate::binding::decode::decode;
use crate::config::BrokerId;

pub fn router(ingress: Arc<Ingress>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/{namespace}/{broker}", any(broker))
        .with_state(ingress)
}

async fn readyz(State(ingress): State<Arc<Ingress>>) -> Response {
    if ingress.is_ready() {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
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

async fn broker(
    State(ingress): State<Arc<Ingress>>,
    Path((namespace, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = BrokerId { namespace, name };
    if !ingress.has_broker(&id) {
        return reject(
            &ingress,
            &id,
            IngressError::UnknownBroker {
                namespace: id.namespace.clone(),
                name: id.name.clone(),
            },
        );
    }
    match method {
        Method::POST => match ingest(&ingress, &id, &headers, body).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(e) => e.into_response(),
        },
        Method::OPTIONS => handshake(&headers),
        other => reject(
            &ingress,
            &id,
            IngressError::MethodNotAllowed(other.to_string()),
        ),
    }
}

fn reject(ingress: &Ingress, id: &BrokerId, error: IngressError) -> Response {
    ingress
        .metrics
        .events_rejected
        .get_or_create(&crate::metrics::RejectLabels {
            broker: id.to_string(),
            reason: error.reason(),
        })
        .inc();
    error.into_response()
}

async fn ingest(
    ingress: &Ingress,
    id: &BrokerId,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), IngressError> {
    let body = read_limited(headers, body, ingress.max_body)
        .await
        .inspect_err(|e| {
            ingress
                .metrics
                .events_rejected
                .get_or_create(&crate::metrics::RejectLabels {
                    broker: id.to_string(),
                    reason: e.reason(),
                })
                .inc();
        })?;
    let events = decode(headers, body).map_err(|e| {
        let e = IngressError::from(e);
        ingress
            .metrics
            .events_rejected
            .get_or_create(&crate::metrics::RejectLabels {
                broker: id.to_string(),
                reason: e.reason(),
            })
            .inc();
        e
    })?;
    ingress.publish(id, events).await
}

/// Reads at most `limit` bytes; a declared or actual larger body is refused without
/// buffering it whole.
async fn read_limited(
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
