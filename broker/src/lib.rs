//! Herald: a CloudEvents broker with Knative Eventing's data plane.
//!
//! # Layout
//! - [`config`]: Knative manifests into a typed configuration.
//! - [`binding`]: the CloudEvents HTTP binding (decode requests, encode deliveries).
//! - [`ingress`]: `POST /{namespace}/{broker}`, health, readiness and metrics.
//! - [`filter`]: trigger filters.
//! - [`dispatch`]: consumer group per trigger, retries, dead letters, replies.
//! - [`bus`]: choosing and opening the bus.
//! - [`sources`]: GitHub, Ping and ApiServerSource running against their sinks.
//! - [`auth`]: bearer tokens (OIDC) and EventPolicy authorization.
//! - [`identity`]: who sent a request (mTLS subject, OIDC token, Herald's own resources).
//! - [`live`]: configuration changed while running (watched files, the management API).
//! - [`api`]: the Kubernetes-shaped management API (kubectl works against it).
//! - [`metrics`]: Prometheus metrics.
//! - [`outbound`]: egress policy, destination CAs, signed deliveries, Herald's OIDC issuer.
//! - [`listener`]: the serve loop (HTTP/1.1, or HTTPS with h2) with its connection limits.
//! - [`units`]: flag values with units (durations, byte sizes).
//! - [`server`]: [`run`], which ties them together on one listener.

pub mod api;
pub mod auth;
pub mod binding;
pub mod bus;
pub mod config;
pub mod dispatch;
pub mod filter;
pub mod identity;
pub mod ingress;
pub mod listener;
pub mod live;
pub mod metrics;
pub mod outbound;
mod server;
pub mod sources;
pub mod units;

pub use server::{ConfigFiles, Listeners, ServeOptions, run};
