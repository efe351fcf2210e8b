//! The router of Herald's one listener.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use super::{Ingress, IngressError};
use crate::binding::decode::decode;
use crate::listener::BodyError;

/// Health, readiness, metrics and event ingress on one router (no `--admin-listen`).
pub fn router(ingress: Arc<Ingress>) -> Router {
    health_router(ingress.clone()).merge(events_router(ingress))
}

/// `/healthz`, `/readyz`, `/metrics`: the operator's part, on the admin listener when there
/// is one.
pub fn health_router(ingress: Arc<Ingress>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ingress)
}

/// Broker ingress: the publishers' part.
pub fn events_router(ingress: Arc<Ingress>) -> Router {
    Router::new()
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
        // Say why when the bus knows (a writer on a full disk, cursors not persisted).
        if let Some(reason) = ingress.bus.unready_reason() {
            body.push_str(&format!("bus: {reason}\n"));
        }
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
    // From here on `key` is a configured broker's id (the lookup found it), safe as a label.
    // A flow's internal channels take in-process hops only.
    let entry = ingress
        .broker(key)
        .filter(|e| e.id.kind != crate::config::AddressKind::FlowChannel);
    let Some(entry) = entry else {
        let mut segments = key.split('/');
        let error = match (segments.next(), segments.next(), segments.next()) {
            (Some(namespace), Some(name), None) if !namespace.is_empty() && !name.is_empty() => {
                IngressError::UnknownBroker {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                }
            }
            _ => return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": format!("no route for {}; brokers are at /{{namespace}}/{{name}}, channels at /channels/{{namespace}}/{{name}}, flows at /flows/sequences|parallels/{{namespace}}/{{name}}", parts.uri.path())}))).into_response(),
        };
        ingress.count_rejected(super::UNKNOWN_BROKER, &error, 1);
        return error.into_response();
    };
    match parts.method {
        Method::POST => {
            let identity = match ingress.authenticate(&entry, &parts).await {
                Ok(identity) => identity,
                Err(e) => {
                    ingress.count_rejected(key, &e, 1);
                    return e.into_response();
                }
            };
            let result = match read_limited(&parts.headers, body, ingress.max_body).await {
                Ok(body) => decode(&parts.headers, body).map_err(IngressError::from),
                Err(e) => Err(e),
            };
            let result = match result {
                Ok(events) => ingress.publish_to(&entry, events, identity.as_ref()).await,
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
        Method::OPTIONS => match ingress.handshake_allowed(&entry, &parts).await {
            Ok(()) => handshake(&parts.headers),
            Err(e) => e.into_response(),
        },
        other => {
            let error = IngressError::MethodNotAllowed(other.to_string());
            ingress.count_rejected(key, &error, 1);
            error.into_response()
        }
    }
}

/// Reads at most `limit` bytes; a declared or actual larger body is refused without
/// buffering it whole. The listener's body timeout and byte budget surface here as `408` and
/// `503`. A body of several frames is copied into one buffer as it arrives (sized by
/// `Content-Length`), so hyper's read buffers are reused instead of being held by slices: a
/// half-received body costs its own size, not its size plus the buffers it was read into.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Bytes, IngressError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(IngressError::PayloadTooLarge { limit });
    }
    let too_large = || IngressError::PayloadTooLarge { limit };
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(body_error)?.into_data() else {
            continue; // trailers
        };
        let so_far =
            first.as_ref().map_or(0, Bytes::len) + joined.as_ref().map_or(0, BytesMut::len);
        if so_far + data.len() > limit {
            return Err(too_large());
        }
        match (&mut first, &mut joined) {
            (None, None) => first = Some(data),
            (Some(_), None) => {
                let capacity = declared
                    .map_or(0, |len| len as usize)
                    .max(so_far + data.len());
                let mut buffer = BytesMut::with_capacity(capacity);
                buffer.extend_from_slice(&first.take().unwrap_or_default());
                buffer.extend_from_slice(&data);
                joined = Some(buffer);
            }
            (_, Some(buffer)) => buffer.extend_from_slice(&data),
        }
    }
    Ok(match joined {
        Some(buffer) => buffer.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// The ingress error of a body that could not be read.
fn body_error(error: axum::Error) -> IngressError {
    match crate::listener::body_error(&error) {
        Some(BodyError::Timeout { after }) => IngressError::BodyTimeout { after: *after },
        Some(BodyError::Busy { limit }) => IngressError::Busy { limit: *limit },
        _ => IngressError::Body(error.to_string()),
    }
}

/// The abuse-protection handshake of `http-webhook.md` §4, for a sender authorization lets
/// publish (anyone when no authorization is configured): Herald has no per-origin rate, so
/// it allows the origin at any rate.
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
