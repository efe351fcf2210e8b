//! The two routers: the public one (publishers and webhooks) and the admin one (metrics,
//! health, the admin endpoints; the management API merges into it). Without
//! `--admin-listen` both are served on the one listener; with it, each on its own, so the
//! public port answers `404` for `/metrics`, `/healthz`, `/readyz` and `/admin/...`.

use std::sync::Arc;

use axum::Router;
use herald_buses::Bus;
use tokio::net::TcpListener;

use crate::ingress::{self, Ingress};
use crate::sources::github::{self, LiveEndpoints};

/// The listening sockets `run` serves: the public one (`--listen`) and, optionally, the
/// admin one (`--admin-listen`).
#[derive(Debug)]
pub struct Listeners {
    pub public: TcpListener,
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(public: TcpListener) -> Self {
        Self {
            public,
            admin: None,
        }
    }
}

/// What publishers reach: broker ingress and GitHubSource webhooks.
pub fn public_router(ingress: Arc<Ingress>, github: Arc<LiveEndpoints>) -> Router {
    ingress::events_router(ingress).merge(github::live_router(github))
}

/// What operators reach: health, readiness, metrics and, with `--admin-token-file`, the
/// `/admin/...` endpoints.
pub fn admin_router(
    ingress: Arc<Ingress>,
    admin_auth: Option<crate::auth::admin::AdminAuth>,
    bus: Arc<dyn Bus>,
    triggers: crate::dispatch::admin::TriggerNames,
) -> Router {
    let mut router = ingress::health_router(ingress);
    if let Some(auth) = admin_auth {
        router = router.merge(crate::dispatch::admin::router(auth, bus, triggers));
    }
    router
}
