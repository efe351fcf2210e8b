//! Black-box tests of the real `herald` binary: it runs as a child process on a loopback port,
//! and real HTTP subscribers on `127.0.0.1` record what it delivers.
//!
//! # Layout
//! - [`process`]: [`Herald`], one `herald serve` child with its own temp dir (manifests, data,
//!   stderr); killed on drop, its stderr printed when a test panics.
//! - [`binary`]: where the built `herald` is (`HERALD_BIN`, else next to the test executable).
//! - [`subscriber`]: [`Subscriber`], an axum server that records requests and answers from a
//!   script.
//! - [`client`]: a small HTTP client for publishing (also chunked and raw requests).
//! - [`manifests`]: Knative Broker/Trigger manifests built as JSON (valid YAML).
//! - [`fixtures`]: canonical events in binary, structured and batch form.
//! - [`https`]: starting a Herald with a certificate, publishing and reading metrics over
//!   HTTPS.
//! - [`tls`]: certificates made with `openssl`, and an HTTPS client (h2 or http/1.1) that
//!   verifies the chain and reports what it negotiated.
//! - [`load`]: concurrent publishers that record every `202`, and the zero-loss check.
//!
//! Every wait is bounded: helpers take or imply a timeout and panic with what they saw.
//!
//! # Running
//! The tests run the binary, they do not build it: `cargo build -p herald --bins` first, with
//! the same `CARGO_TARGET_DIR` and profile as `cargo test -p herald-tests` (or point
//! `HERALD_BIN` at a binary). `HERALD_TEST_LOG` sets herald's log filter (default `info`);
//! `HERALD_TEST_SHOW_STDERR=1` prints herald's stderr after every test, not only failed ones.

pub mod api_replicas;
pub mod binary;
pub mod client;
pub mod fixtures;
pub mod https;
pub mod load;
pub mod manifests;
pub mod process;
pub mod replicas;
pub mod subscriber;
pub mod tls;

pub use client::{Client, Response};
pub use process::{Herald, HeraldOptions};
pub use subscriber::{Recorded, Reply, Subscriber};

use std::future::Future;
use std::time::Duration;

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
