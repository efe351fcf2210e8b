//! The parking-lot endpoints of a running Herald, mounted only with `--admin-token-file`
//! (they change data): `herald parked --url` talks to them.
//!
//! - `GET  /admin/triggers/{ns}/{name}/parked?limit=N` → `{"events": [...]}`
//! - `POST /admin/triggers/{ns}/{name}/parked/redrive` `{"ids": [...]}` or `{"all": true}`
//! - `POST /admin/triggers/{ns}/{name}/parked/purge` (same body) → `{"taken": [ids], "missing": [ids]}`
//! - the same under `/admin/subscriptions/{ns}/{name}/...` for a subscription's lot.
//!
//! The same endpoints answer under the management API's paths:
//! `/apis/herald.dev/v1alpha1/namespaces/{ns}/triggers/{name}/parked[/{action}]`.
//!
//! Every request needs `Authorization: Bearer {token}`, compared in constant time (or an OIDC
//! token of an allowed subject, see [`crate::auth::admin`]).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cloudevents::AttributesReader;
use herald_buses::Bus;
use serde::{Deserialize, Serialize};

use super::parked::{DEFAULT_IDLE, ParkingLot, Selection};

/// Largest `limit` a list request may ask for.
pub const MAX_LIST: usize = 10_000;
/// `limit` of a list request that names none.
pub const DEFAULT_LIST: usize = 100;

struct Admin {
    auth: crate::auth::admin::AdminAuth,
    bus: Arc<dyn Bus>,
    /// `namespace/name` of every configured trigger (`subscriptions/namespace/name` of every
    /// subscription), kept current by the running broker.
    triggers: TriggerNames,
    /// One parking-lot operation at a time: two readers of one lot would split it.
    busy: tokio::sync::Mutex<()>,
}

/// The names (`namespace/name`) of the configured triggers, replaced on every reload.
pub type TriggerNames = Arc<std::sync::RwLock<HashSet<String>>>;

/// The admin router; `auth` checks the admin token (`--admin-token-file`) or an OIDC token.
pub fn router(
    auth: crate::auth::admin::AdminAuth,
    bus: Arc<dyn Bus>,
    triggers: TriggerNames,
) -> Router {
    let admin = Arc::new(Admin {
        auth,
        bus,
        triggers,
        busy: tokio::sync::Mutex::new(()),
    });
    Router::new()
        .route("/admin/{kind}/{namespace}/{name}/parked", get(list))
        .route(
            "/admin/{kind}/{namespace}/{name}/parked/{action}",
            post(take),
        )
        // The same, under the management API's paths (`herald parked --server`).
        .route(
            "/apis/herald.dev/v1alpha1/namespaces/{namespace}/{kind}/{name}/parked",
            get(list),
        )
        .route(
            "/apis/herald.dev/v1alpha1/namespaces/{namespace}/{kind}/{name}/parked/{action}",
            post(take),
        )
        .with_state(admin)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

/// Which events `redrive` and `purge` take: `ids` or `all`, never both, never neither.
#[derive(Debug, Serialize, Deserialize)]
pub struct TakeRequest {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TakeAnswer {
    pub taken: Vec<String>,
    pub missing: Vec<String>,
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

impl Admin {
    /// The trigger's parking lot, once the caller is authorised and the trigger exists.
    async fn lot(
        &self,
        headers: &HeaderMap,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<ParkingLot, Box<Response>> {
        if let Err(refusal) = self.auth.check(headers).await {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                refusal.to_string(),
            )));
        }
        let (trigger, lot) = match kind {
            "triggers" => (
                format!("{namespace}/{name}"),
                ParkingLot::new(namespace, name),
            ),
            "subscriptions" => (
                format!("subscriptions/{namespace}/{name}"),
                ParkingLot::subscription(namespace, name),
            ),
            _ => {
                return Err(Box::new(error(
                    StatusCode::NOT_FOUND,
                    "parking lots are under /admin/triggers/... and /admin/subscriptions/...",
                )));
            }
        };
        if !self
            .triggers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&trigger)
        {
            return Err(Box::new(error(
                StatusCode::NOT_FOUND,
                format!(
                    "no {} {trigger:?} is configured",
                    kind.trim_end_matches('s')
                ),
            )));
        }
        Ok(lot)
    }
}

/// A parking lot's path segments, by name: the `/admin/` and the API paths order them
/// differently.
#[derive(Debug, Deserialize)]
struct LotPath {
    kind: String,
    namespace: String,
    name: String,
    #[serde(default)]
    action: String,
}

async fn list(
    State(admin): State<Arc<Admin>>,
    Path(LotPath {
        kind,
        namespace,
        name,
        ..
    }): Path<LotPath>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let lot = match admin.lot(&headers, &kind, &namespace, &name).await {
        Ok(lot) => lot,
        Err(response) => return *response,
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIST);
    if limit > MAX_LIST {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit {limit} is above {MAX_LIST}"),
        );
    }
    let _busy = admin.busy.lock().await;
    match lot.list(&*admin.bus, limit, idle()).await {
        Ok(events) => Json(serde_json::json!({ "events": events })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn take(
    State(admin): State<Arc<Admin>>,
    Path(LotPath {
        kind,
        namespace,
        name,
        action,
    }): Path<LotPath>,
    headers: HeaderMap,
    Json(request): Json<TakeRequest>,
) -> Response {
    let lot = match admin.lot(&headers, &kind, &namespace, &name).await {
        Ok(lot) => lot,
        Err(response) => return *response,
    };
    let redrive = match action.as_str() {
        "redrive" => true,
        "purge" => false,
        _ => {
            return error(StatusCode::NOT_FOUND, "the actions are redrive and purge");
        }
    };
    let selection = match (request.all, request.ids.is_empty()) {
        (true, true) => Selection::All,
        (false, false) => Selection::Ids(request.ids.into_iter().collect::<BTreeSet<_>>()),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "name the events: either \"ids\": [...] or \"all\": true",
            );
        }
    };
    let _busy = admin.busy.lock().await;
    match lot.take(&*admin.bus, &selection, redrive, idle()).await {
        Ok(taken) => Json(TakeAnswer {
            taken: taken.taken.iter().map(|e| e.id().to_owned()).collect(),
            missing: taken.missing,
        })
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn idle() -> Duration {
    DEFAULT_IDLE
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const TOKEN: &str = "0123456789abcdef-token";

    fn app() -> (Router, Arc<dyn Bus>) {
        let bus: Arc<dyn Bus> = Arc::new(herald_buses::memory::MemoryBus::default());
        let triggers = Arc::new(std::sync::RwLock::new(HashSet::from(["ns/t".to_owned()])));
        (router(TOKEN.into(), bus.clone(), triggers), bus)
    }

    async fn call(
        app: &Router,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn every_request_needs_the_token() {
        let (app, _) = app();
        let path = "/admin/triggers/ns/t/parked";
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic 0123456789abcdef-token"),
            Some("Bearer 0123456789abcdef-toke"),
        ] {
            assert_eq!(call(&app, "GET", path, auth, "").await.0, 401, "{auth:?}");
            let purge = call(
                &app,
                "POST",
                &format!("{path}/purge"),
                auth,
                r#"{"all":true}"#,
            )
            .await;
            assert_eq!(purge.0, 401, "{auth:?}");
        }
    }

    #[tokio::test]
    async fn unknown_triggers_vague_selections_and_big_limits_are_refused() {
        let (app, _) = app();
        let auth = Some("bearer 0123456789abcdef-token");
        let unknown = call(&app, "GET", "/admin/triggers/ns/other/parked", auth, "").await;
        assert_eq!(unknown.0, 404, "{}", unknown.1);
        let path = "/admin/triggers/ns/t/parked";
        for body in ["{}", r#"{"ids":["a"],"all":true}"#] {
            let answer = call(&app, "POST", &format!("{path}/purge"), auth, body).await;
            assert_eq!(answer.0, 400, "{body}: {}", answer.1);
        }
        let big = call(&app, "GET", &format!("{path}?limit=10001"), auth, "").await;
        assert_eq!(big.0, 400);
        let verb = call(
            &app,
            "POST",
            &format!("{path}/delete"),
            auth,
            r#"{"all":true}"#,
        )
        .await;
        assert_eq!(verb.0, 404);
    }
}
