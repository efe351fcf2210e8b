//! One request to a running Herald's `/admin/` endpoints (`--url` with `--admin-token-file`),
//! shared by `herald parked` and `herald pause|resume|replay`.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one admin request may take (a parking-lot list waits for the bus to go idle).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `method uri` with `body` (JSON) and the bearer `token`; the answer's body, or an
/// error with the status and the server's message.
pub async fn request(method: &str, uri: &str, token: &str, body: Bytes) -> anyhow::Result<Bytes> {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .context("building the request")?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .with_context(|| format!("timed out after {} s", TIMEOUT.as_secs()))?
        .with_context(|| format!("asking {uri}"))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}
