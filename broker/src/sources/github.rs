//! `POST /sources/{namespace}/{name}`: one GitHubSource's webhook endpoint.
//!
//! The steps, in this order (see `herald_sources::github`):
//! 1. the body, size-limited like ingress (`413` without buffering it whole);
//! 2. the signature on the raw bytes (`401`; a missing `X-GitHub-Event`/`X-GitHub-Delivery`:
//!    `400`): nothing is parsed before this;
//! 3. `spec.eventTypes`: a name not listed is answered `204` and not emitted;
//! 4. the delivery log: an id emitted within the redelivery window is answered `200` and not
//!    emitted again; one being handled by another request right now: `503`;
//! 5. the conversion (`400` if the payload is not a JSON object);
//! 6. the sink: `202` once it took the event (durable on a Herald broker, delivered to a URL),
//!    then the id is recorded; `503` with `Retry-After` when it cannot take it now, `502` when it
//!    refused it for good. A failed delivery is not recorded, so GitHub's redelivery emits it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::Utc;
use herald_sources::Sink;
use herald_sources::github::{DeliveryLog, GitHubConfig, Seen, Unverified};
use serde_json::json;

use crate::ingress::read_limited;
use crate::metrics::SourceMetrics;

/// One GitHubSource as its endpoint serves it.
pub struct GitHubEndpoint {
    pub config: Arc<GitHubConfig>,
    pub log: Arc<DeliveryLog>,
    pub sink: Arc<dyn Sink>,
    pub metrics: SourceMetrics,
}

/// Every GitHubSource, keyed by `namespace/name`.
pub struct GitHubEndpoints {
    pub endpoints: HashMap<String, GitHubEndpoint>,
    pub max_body: usize,
}

impl GitHubEndpoints {
    pub fn empty(max_body: usize) -> Self {
        Self {
            endpoints: HashMap::new(),
            max_body,
        }
    }
}

/// The endpoints the webhook route serves now; replaced whole when the sources change.
pub struct LiveEndpoints(std::sync::RwLock<Arc<GitHubEndpoints>>);

impl LiveEndpoints {
    pub fn new(endpoints: Arc<GitHubEndpoints>) -> Self {
        Self(std::sync::RwLock::new(endpoints))
    }

    pub fn current(&self) -> Arc<GitHubEndpoints> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, endpoints: Arc<GitHubEndpoints>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = endpoints;
    }
}

/// The webhook route; merged into the listener's router ahead of the broker fallback.
pub fn router(endpoints: Arc<GitHubEndpoints>) -> Router {
    live_router(Arc::new(LiveEndpoints::new(endpoints)))
}

/// [`router`] over endpoints the running broker replaces on reload.
pub fn live_router(endpoints: Arc<LiveEndpoints>) -> Router {
    Router::new()
        .route("/sources/{namespace}/{name}", any(webhook))
        .with_state(endpoints)
}

fn answer(status: StatusCode, key: &str, message: impl Into<String>) -> Response {
    let body = if status.is_success() {
        json!({ "source": key, "message": message.into() })
    } else {
        json!({ "error": message.into() })
    };
    (status, axum::Json(body)).into_response()
}

fn retry_later(key: &str, message: impl Into<String>) -> Response {
    let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, key, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

async fn webhook(
    State(live): State<Arc<LiveEndpoints>>,
    Path((namespace, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let endpoints = live.current();
    let key = format!("{namespace}/{name}");
    let Some(endpoint) = endpoints.endpoints.get(&key) else {
        return answer(
            StatusCode::NOT_FOUND,
            &key,
            format!("no GitHubSource {key}"),
        );
    };
    if request.method() != Method::POST {
        let mut response = answer(
            StatusCode::METHOD_NOT_ALLOWED,
            &key,
            format!(
                "method {} is not allowed on a GitHubSource (use POST)",
                request.method()
            ),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    endpoint.metrics.received.inc();
    let (parts, body) = request.into_parts();
    let body = match read_limited(&parts.headers, body, endpoints.max_body).await {
        Ok(body) => body,
        Err(e) => {
            endpoint.metrics.rejected(e.reason());
            return e.into_response();
        }
    };
    let config = &endpoint.config;
    let verified = match Unverified::new(parts.headers, body)
        .verify(&config.secret, config.allow_sha1)
    {
        Ok(v) => v,
        Err(e) => {
            endpoint.metrics.rejected(e.reason());
            tracing::info!(source = %key, reason = e.reason(), error = ?e.to_string(), "github delivery refused");
            return answer(e.status(), &key, e.to_string());
        }
    };
    // Both checked by `verify` (`[a-z0-9_]{1,100}`, `[A-Za-z0-9_-]{1,128}`): safe to log as is.
    let (event_name, delivery) = (verified.event_name(), verified.delivery_id());
    if !config.event_types.allows(event_name) {
        endpoint.metrics.rejected("filtered");
        tracing::debug!(source = %key, event = event_name, delivery, "event type not in spec.eventTypes");
        return StatusCode::NO_CONTENT.into_response();
    }
    let now = Utc::now();
    let claim = match endpoint.log.claim(delivery, now) {
        Seen::New(claim) => claim,
        Seen::Delivered => {
            endpoint.metrics.rejected("duplicate");
            tracing::info!(source = %key, delivery, "redelivery of an emitted delivery: not emitted again");
            return answer(
                StatusCode::OK,
                &key,
                format!("delivery {delivery} was already emitted"),
            );
        }
        Seen::InFlight => {
            endpoint.metrics.rejected("in_flight");
            return retry_later(
                &key,
                format!("delivery {delivery} is being handled by another request"),
            );
        }
    };
    let event = match verified.to_event(config, now) {
        Ok(event) => event,
        Err(e) => {
            endpoint.metrics.rejected(e.reason());
            return answer(e.status(), &key, e.to_string());
        }
    };
    if let Err(e) = endpoint.sink.send(vec![event]).await {
        endpoint.metrics.rejected(e.reason());
        // The sink's message can quote the event (ingress validation): escaped.
        tracing::warn!(source = %key, delivery, error = ?e.to_string(), "github event not emitted");
        return if e.is_retryable() {
            retry_later(&key, e.to_string())
        } else {
            answer(StatusCode::BAD_GATEWAY, &key, e.to_string())
        };
    }
    // The record is an append and an fsync, done on the blocking pool.
    let id = delivery.to_owned();
    if let Err(e) = claim.commit(Utc::now()).await {
        // Emitted but not recorded: a redelivery would emit it again (at-least-once).
        tracing::warn!(source = %key, delivery = ?id, error = ?e.to_string(), "delivery id not recorded");
    }
    answer(StatusCode::ACCEPTED, &key, format!("delivery {id} emitted"))
}
