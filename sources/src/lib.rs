//! Herald's event sources: GitHub webhooks, Kubernetes API changes and Ping schedules.
//!
//! Each source is a pure conversion (a verified request, an object change, a scheduled time ->
//! a CloudEvent) plus a thin transport; events go to a [`Sink`], which the broker implements
//! (its own ingress, durable before it returns, or a URL with retries). This crate never
//! depends on the broker or on the buses.
//!
//! # Layout
//! - [`attribute`]: values from payloads and cluster objects made safe as attributes (control
//!   characters percent-encoded, length bounded), so ingress never refuses a source's event.
//! - [`cleanup`]: the state directory's layout, and removing the state of sources that are no
//!   longer configured.
//! - [`sink`]: the [`Sink`] trait and [`SinkError`].
//! - [`manifest`]: the Knative `PingSource`, `ApiServerSource` and `GitHubSource` specs as
//!   written in YAML, and their `compile` steps into the typed configs below.
//! - [`github`]: `Unverified -> verify -> Verified -> to_event`, both mappings (Knative and the
//!   CloudEvents GitHub adapter), `eventTypes` filtering and the redelivery [`github::DeliveryLog`].
//! - [`ping`]: cron schedules with time zones, the event, and a scheduler that persists the last
//!   emitted time so no scheduled time is emitted twice.
//! - [`kubernetes`]: the pure object-change conversion, the persisted "seen" state, and a
//!   watcher (kube-rs) that relists after a restart or `410 Gone` and emits what it missed.
//! - [`pubsub`]: `CloudPubSubSource`'s message → event conversion (Knative GCP's mapping).
//! - [`state`]: checksummed, atomically written state files, read and written on the blocking
//!   pool; corrupt files are detected and moved aside.

pub mod attribute;
pub mod cleanup;
pub mod github;
pub mod kubernetes;
pub mod manifest;
pub mod ping;
pub mod pubsub;
pub mod sink;
pub mod state;

pub use sink::{Sink, SinkError};
