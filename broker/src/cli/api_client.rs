//! The management API as the CLI talks to it: `--server` / `HERALD_SERVER` and `--token` /
//! `HERALD_TOKEN` (or `--token-file`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one API request may take (a watch is not one).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the management API is and how to authenticate.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The running Herald's management API, e.g. http://127.0.0.1:8080.
    #[arg(
        long,
        global = true,
        env = "HERALD_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// The bearer token (the content of the server's --admin-token-file). Prefer
    /// --token-file or HERALD_TOKEN: a flag shows in the process list.
    #[arg(long, global = true, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long, global = true, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
}

/// An API answer: status code and JSON body (`Null` when it was not JSON).
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The Status message of a failed request, or the raw status.
    pub fn error(&self) -> String {
        // A Kubernetes Status has `message`; the admin endpoints answer `{"error": ...}`.
        match self.body["message"]
            .as_str()
            .or(self.body["error"].as_str())
        {
            Some(message) => format!("{} ({})", message, self.status),
            None => format!("HTTP {}", self.status),
        }
    }
}

pub struct ApiClient {
    base: String,
    token: String,
    client: Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
}

impl ApiClient {
    pub async fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let token = match (&args.token, &args.token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(file)) => tokio::fs::read_to_string(file)
                .await
                .with_context(|| format!("reading --token-file {}", file.display()))?,
            (None, None) => bail!("give the API token with --token-file, --token or HERALD_TOKEN"),
        };
        let connector = HttpsConnectorBuilder::new()
            .with_native_roots()
            .context("loading the trusted roots for https")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            base: args.server.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends `body` (JSON) with `content_type` to `path`; transport errors are errors, HTTP
    /// errors are answers.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(Full::new(bytes))
            .with_context(|| format!("building a request to {url:?}"))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .with_context(|| format!("{url}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("asking {url}"))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// A plain-text GET (`/metrics`); `None` unless it answered 200.
    pub async fn get_text(&self, path: &str) -> Option<String> {
        let url = format!("{}{path}", self.base);
        let request = http::Request::builder()
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))
            .ok()?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .ok()?
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.request("GET", path, "application/json", None).await
    }

    /// GET that must succeed.
    pub async fn get_ok(&self, path: &str) -> anyhow::Result<Value> {
        let answer = self.get(path).await?;
        if answer.status != 200 {
            bail!("{path}: {}", answer.error());
        }
        Ok(answer.body)
    }
}
