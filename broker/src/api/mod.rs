//! The management API: Kubernetes-shaped, so `kubectl` works against Herald.
//!
//! - discovery: `/version`, `/api`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`,
//!   `/openapi/v3` (schemas that keep unknown fields: the API itself validates);
//! - `/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]`: list (`?watch=true`), get,
//!   create, update, patch, delete; `/apis/{group}/{version}/{plural}` lists all namespaces;
//! - `/subscriptions[/{id}]`: the CloudEvents Subscriptions API over triggers.
//!
//! Every request needs `Authorization: Bearer {token}` (`--admin-token-file`), compared in
//! constant time, or an OIDC token of an allowed subject ([`crate::auth::admin`]). Objects come from [`registry::Registry`]: the `-f` files' (read-only) and
//! those created here, stored by a [`store::Store`] and applied through [`crate::live::Apply`].

mod conditions;
mod discovery;
mod follow;
mod handlers;
pub mod kinds;
pub mod merge;
pub mod names;
mod prepare;
pub mod registry;
mod selectors;
pub mod status;
pub mod store;
#[cfg(feature = "kafka")]
pub mod store_kafka;
#[cfg(feature = "nats")]
pub mod store_nats;
mod subscriptions;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use registry::Registry;
use status::ApiError;

/// Most objects created through the API unless `--api-max-objects` says otherwise.
pub const DEFAULT_MAX_OBJECTS: usize = 10_000;
/// Largest request body the API reads unless `--api-max-body` says otherwise.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// How often a watch looks for status changes unless `--api-watch-status-interval` says
/// otherwise.
pub const DEFAULT_WATCH_STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a watch stays open unless `--api-watch-max` says otherwise (a client's
/// `timeoutSeconds` may ask for less).
pub const DEFAULT_WATCH_MAX: Duration = Duration::from_secs(30 * 60);

/// Where the API's resources are stored.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// `{dir}/api/`, one file per object (embedded and memory buses).
    Dir(std::path::PathBuf),
    /// A JetStream key-value bucket every replica follows (NATS bus).
    #[cfg(feature = "nats")]
    Nats {
        url: String,
        bucket: String,
        /// How long connecting and opening the bucket may take at start.
        connect_timeout: Duration,
    },
    /// A compacted topic every replica follows (Kafka bus).
    #[cfg(feature = "kafka")]
    Kafka {
        config: herald_buses::kafka::KafkaConfig,
        topic: String,
        /// How long one request (topic creation, a write, reading at start) may take.
        timeout: Duration,
    },
}

/// Settings of the management API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub store: StoreConfig,
    /// Most objects created through the API (all kinds together).
    pub max_objects: usize,
    pub max_body: usize,
    pub watch_status_interval: Duration,
    pub watch_max: Duration,
    /// Which OIDC tokens are accepted besides the admin token (`--api-audience`,
    /// `--api-subject`).
    pub access: crate::auth::admin::ApiAccess,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            store: StoreConfig::Dir(std::path::PathBuf::from("herald-data")),
            max_objects: DEFAULT_MAX_OBJECTS,
            max_body: DEFAULT_MAX_BODY,
            watch_status_interval: DEFAULT_WATCH_STATUS_INTERVAL,
            watch_max: DEFAULT_WATCH_MAX,
            access: crate::auth::admin::ApiAccess::default(),
        }
    }
}

struct Api {
    auth: crate::auth::admin::AdminAuth,
    registry: Arc<Registry>,
    options: ApiOptions,
    /// Becomes true at shutdown: open watches end.
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Opens the store, applies the resources stored there through `apply`, and returns the
/// API's router; `auth` checks the admin token (`--admin-token-file`) or an OIDC token.
pub async fn mount(
    auth: crate::auth::admin::AdminAuth,
    apply: Arc<dyn crate::live::Apply>,
    metrics: Arc<crate::metrics::Metrics>,
    options: ApiOptions,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Router> {
    let store: Arc<dyn store::Store> = match &options.store {
        StoreConfig::Dir(dir) => Arc::new(store::DirStore::open(dir).await?),
        #[cfg(feature = "nats")]
        StoreConfig::Nats {
            url,
            bucket,
            connect_timeout,
        } => Arc::new(store_nats::NatsStore::open(url, bucket, *connect_timeout).await?),
        #[cfg(feature = "kafka")]
        StoreConfig::Kafka {
            config,
            topic,
            timeout,
        } => Arc::new(store_kafka::KafkaStore::open(config.clone(), topic, *timeout).await?),
    };
    let registry = Arc::new(
        Registry::open(apply, store)
            .await?
            .with_max_objects(options.max_objects),
    );
    supervise_follow(registry.clone(), metrics, stop.clone());
    Ok(router(auth, registry, options, stop))
}

/// The task name of following a shared store in `herald_task_running` and `/readyz`.
const FOLLOW_TASK: &str = "api-store";

/// Follows other replicas' changes until shutdown (at once done for the data directory); a
/// follower that ends early (it panicked) shows in `/readyz` and `herald_task_running`.
fn supervise_follow(
    registry: Arc<Registry>,
    metrics: Arc<crate::metrics::Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let running = metrics
        .task_running
        .get_or_create(&crate::metrics::TaskLabels {
            task: FOLLOW_TASK.into(),
        })
        .clone();
    running.set(1);
    let follower = tokio::spawn(registry.follow(stop.clone()));
    tokio::spawn(async move {
        let outcome = follower.await;
        running.set(0);
        if let Err(e) = outcome
            && !*stop.borrow()
        {
            tracing::error!(error = %e, "following the API store stopped");
            metrics.set_unready(
                FOLLOW_TASK,
                Some(format!("following the API store stopped: {e}")),
            );
        }
    });
}

/// The API's router; `auth` checks the admin token (`--admin-token-file`) or an OIDC token.
pub fn router(
    auth: crate::auth::admin::AdminAuth,
    registry: Arc<Registry>,
    options: ApiOptions,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let api = Arc::new(Api {
        auth,
        registry,
        options,
        stop,
    });
    let objects = "/apis/{group}/{version}/namespaces/{namespace}/{plural}";
    Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core))
        .route("/apis", get(discovery::groups))
        .route("/apis/{group}", get(discovery::group))
        .route("/apis/{group}/{version}", get(discovery::resources))
        .route("/openapi/v3", get(discovery::openapi_v3))
        .route(
            "/openapi/v3/apis/{group}/{version}",
            get(discovery::openapi_v3_group),
        )
        .route(
            "/subscriptions",
            get(subscriptions::query)
                .post(subscriptions::create)
                .options(subscriptions::features),
        )
        .route(
            "/subscriptions/{id}",
            get(subscriptions::retrieve)
                .put(subscriptions::update)
                .delete(subscriptions::delete)
                .options(subscriptions::features_of_one),
        )
        .route("/apis/{group}/{version}/{plural}", get(handlers::list_all))
        .route(objects, get(handlers::list).post(handlers::create))
        .route(
            &format!("{objects}/{{name}}"),
            get(handlers::get)
                .put(handlers::replace)
                .patch(handlers::patch)
                .delete(handlers::delete),
        )
        // `route_layer`: a path the API does not serve falls through to the other routers'
        // answer (404 on the admin listener) instead of a 401 from here.
        .route_layer(middleware::from_fn_with_state(api.clone(), authorize))
        .with_state(api)
}

/// The API's parsers of untrusted request bodies and query strings, for the fuzz target
/// `api_request` (`scripts/fuzz api_request`): each answers a value or an error, never panics.
#[doc(hidden)]
pub fn fuzz_request(body: &[u8], query: &str) {
    let _ = selectors::Selectors::parse(Some(query), Some(query));
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let _ = subscriptions::to_trigger("00000000-0000-0000-0000-000000000000", &value);
    for kind in kinds::KINDS {
        if let Ok(mut object) = prepare::prepare(kind, "ns", Some("name"), value.clone()) {
            merge::merge_patch(&mut object, &value);
        }
    }
}

/// Refuses a request without the right credentials, with a `Status` body.
async fn authorize(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    if let Err(refusal) = api.auth.check(request.headers()).await {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            refusal.to_string(),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod subscriptions_tests;
#[cfg(test)]
mod tests;
