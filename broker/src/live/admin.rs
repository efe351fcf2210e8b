//! Admin endpoints of live operations, beside the parking lot's (same bearer token):
//!
//! - `POST /admin/triggers/{ns}/{name}/pause` → `{"trigger": "ns/name", "paused": true, "changed": bool}`
//! - `POST /admin/triggers/{ns}/{name}/resume` → the same with `"paused": false`
//!
//! `404` for a trigger not configured, `409` to resume a trigger paused by its annotation.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::SharedLive;
use super::pause::PauseError;
use crate::dispatch::admin::{bearer_matches, error};

#[derive(Clone)]
struct LiveAdmin {
    token: std::sync::Arc<str>,
    live: SharedLive,
}

/// The pause/resume router; `token` is the content of `--admin-token-file`.
pub fn router(token: String, live: SharedLive) -> Router {
    Router::new()
        .route(
            "/admin/triggers/{namespace}/{name}/pause",
            post(|s, h, p| set(s, h, p, true)),
        )
        .route(
            "/admin/triggers/{namespace}/{name}/resume",
            post(|s, h, p| set(s, h, p, false)),
        )
        .with_state(LiveAdmin {
            token: token.into(),
            live,
        })
}

async fn set(
    State(admin): State<LiveAdmin>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    paused: bool,
) -> Response {
    if !bearer_matches(&headers, &admin.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (see --admin-token-file)",
        );
    }
    let trigger = format!("{namespace}/{name}");
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
