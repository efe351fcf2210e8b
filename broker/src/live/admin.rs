//! Admin endpoints of live operations, beside the parking lot's (same bearer token):
//!
//! - `POST /admin/triggers/{ns}/{name}/pause` → `{"trigger": "ns/name", "paused": true, "changed": bool}`
//! - `POST /admin/triggers/{ns}/{name}/resume` → the same with `"paused": false`
//!
//! - `POST /admin/triggers/{ns}/{name}/replay` `{"from": RFC3339, "to": RFC3339?,
//!   "filter": CESQL?}` → `{"id", "trigger", "read", "replayed"}` (see [`super::replay`])
//!
//! The same answer under the management API's paths,
//! `/apis/herald.dev/v1alpha1/namespaces/{ns}/triggers/{name}/{pause|resume|replay}`.
//!
//! `404` for a trigger not configured, `409` to resume a trigger paused by its annotation,
//! `400` for a replay request that does not parse (naming the field).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::SharedLive;
use super::pause::PauseError;
use super::replay::{ReplayError, ReplayRequest};
use crate::auth::admin::AdminAuth;
use crate::dispatch::admin::error;
use crate::filter::Filter;

/// Where the management API's trigger subresources live.
const API_TRIGGERS: &str = "/apis/herald.dev/v1alpha1/namespaces";

#[derive(Clone)]
struct LiveAdmin {
    auth: AdminAuth,
    live: SharedLive,
}

/// The pause/resume/replay router; `auth` checks the admin token or an OIDC token.
pub fn router(auth: AdminAuth, live: SharedLive) -> Router {
    Router::new()
        .route(
            "/admin/triggers/{namespace}/{name}/pause",
            post(|s, h, p| set(s, h, p, true)),
        )
        .route(
            "/admin/triggers/{namespace}/{name}/resume",
            post(|s, h, p| set(s, h, p, false)),
        )
        .route(
            "/admin/subscriptions/{namespace}/{name}/pause",
            post(|s, h, Path((ns, name)): Path<(String, String)>| {
                set_key(s, h, format!("subscriptions/{ns}/{name}"), true)
            }),
        )
        .route(
            "/admin/subscriptions/{namespace}/{name}/resume",
            post(|s, h, Path((ns, name)): Path<(String, String)>| {
                set_key(s, h, format!("subscriptions/{ns}/{name}"), false)
            }),
        )
        .route("/admin/triggers/{namespace}/{name}/replay", post(replay))
        // The same, under the management API's paths (`herald pause|resume|replay --server`).
        .route(
            &format!("{API_TRIGGERS}/{{namespace}}/triggers/{{name}}/pause"),
            post(|s, h, p| set(s, h, p, true)),
        )
        .route(
            &format!("{API_TRIGGERS}/{{namespace}}/triggers/{{name}}/resume"),
            post(|s, h, p| set(s, h, p, false)),
        )
        .route(
            &format!("{API_TRIGGERS}/{{namespace}}/triggers/{{name}}/replay"),
            post(replay),
        )
        .route(
            &format!("{API_TRIGGERS}/{{namespace}}/subscriptions/{{name}}/pause"),
            post(|s, h, Path((ns, name)): Path<(String, String)>| {
                set_key(s, h, format!("subscriptions/{ns}/{name}"), true)
            }),
        )
        .route(
            &format!("{API_TRIGGERS}/{{namespace}}/subscriptions/{{name}}/resume"),
            post(|s, h, Path((ns, name)): Path<(String, String)>| {
                set_key(s, h, format!("subscriptions/{ns}/{name}"), false)
            }),
        )
        .with_state(LiveAdmin { auth, live })
}

async fn set(
    State(admin): State<LiveAdmin>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    paused: bool,
) -> Response {
    set_key(State(admin), headers, format!("{namespace}/{name}"), paused).await
}

/// Pauses or resumes the dispatcher named `trigger` (`ns/name`, or `subscriptions/ns/name`
/// for a subscription, as the running set names them).
async fn set_key(
    State(admin): State<LiveAdmin>,
    headers: HeaderMap,
    trigger: String,
    paused: bool,
) -> Response {
    if let Err(refusal) = admin.auth.check(&headers).await {
        return error(StatusCode::UNAUTHORIZED, refusal.to_string());
    }
    match admin.live.set_paused(&trigger, paused).await {
        Ok(changed) => Json(serde_json::json!({
            "trigger": trigger, "paused": paused, "changed": changed,
        }))
        .into_response(),
        Err(e) => {
            let status = match e {
                PauseError::NotFound { .. } => StatusCode::NOT_FOUND,
                PauseError::PausedByAnnotation { .. } => StatusCode::CONFLICT,
                PauseError::Save { .. } | PauseError::Apply(_) => {
                    tracing::error!(trigger = ?trigger, error = %e, "pause or resume failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            error(status, e.to_string())
        }
    }
}

/// The body of a replay request.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    from: String,
    to: Option<String>,
    filter: Option<String>,
}

fn parse_time(field: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{field}: {text:?} is not an RFC 3339 time ({e})"))
}

fn parse_replay(body: &[u8]) -> Result<ReplayRequest, String> {
    let body: ReplayBody =
        serde_json::from_slice(body).map_err(|e| format!("not a replay request: {e}"))?;
    let filter = match &body.filter {
        None => None,
        Some(text) => Some(Filter::Cesql(
            cesql::Expression::compile(text).map_err(|e| format!("filter: {e}"))?,
        )),
    };
    Ok(ReplayRequest {
        from: parse_time("from", &body.from)?,
        to: body
            .to
            .as_deref()
            .map(|t| parse_time("to", t))
            .transpose()?,
        filter,
    })
}

async fn replay(
    State(admin): State<LiveAdmin>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refusal) = admin.auth.check(&headers).await {
        return error(StatusCode::UNAUTHORIZED, refusal.to_string());
    }
    let request = match parse_replay(&body) {
        Ok(request) => request,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(config) = admin.live.runtime().config_now() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "not started yet");
    };
    let trigger = format!("{namespace}/{name}");
    let bus = admin.live.runtime().bus();
    match super::replay::replay(&*bus, &config, &trigger, &request).await {
        Ok(report) => Json(report).into_response(),
        Err(e @ ReplayError::NotFound { .. }) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ ReplayError::EmptyWindow { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ ReplayError::Bus(_)) => {
            tracing::error!(trigger = ?trigger, error = %e, "replay failed");
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}
