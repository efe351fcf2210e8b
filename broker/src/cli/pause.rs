//! `herald pause|resume trigger NS/NAME --url URL --admin-token-file FILE`: asks a running
//! Herald to stop or restart delivering to a trigger (which keeps its position meanwhile).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// A trigger, `namespace/name`.
    Trigger {
        #[arg(value_parser = super::parked::parse_trigger)]
        trigger: (String, String),
        #[command(flatten)]
        server: Server,
    },
    /// A subscription (a flow's step too, e.g. `ns/flow-kn-sequence-1`), `namespace/name`.
    Subscription {
        #[arg(value_parser = super::parked::parse_trigger)]
        subscription: (String, String),
        #[command(flatten)]
        server: Server,
    },
}

/// The running Herald to ask.
#[derive(Debug, clap::Args)]
pub struct Server {
    /// Its base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "HERALD_URL")]
    pub url: String,
    /// The file holding its admin bearer token.
    #[arg(long, env = "HERALD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: PathBuf,
}

/// `herald pause ...` (`paused`) or `herald resume ...`.
pub async fn run(args: PauseArgs, paused: bool) -> anyhow::Result<()> {
    let (kind, (namespace, name), server) = match args.what {
        What::Trigger { trigger, server } => ("trigger", trigger, server),
        What::Subscription {
            subscription,
            server,
        } => ("subscription", subscription, server),
    };
    let action = if paused { "pause" } else { "resume" };
    let path = format!("/admin/{kind}s/{namespace}/{name}/{action}");
    let body = post(&server, &path, Bytes::new()).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body).context("reading the answer")?;
    let changed = answer["changed"].as_bool().unwrap_or(false);
    match (paused, changed) {
        (true, true) => println!("{kind} {namespace}/{name} paused"),
        (true, false) => println!("{kind} {namespace}/{name} was already paused"),
        (false, true) => println!("{kind} {namespace}/{name} resumed"),
        (false, false) => println!("{kind} {namespace}/{name} was not paused"),
    }
    Ok(())
}

/// POSTs `body` (JSON) to `server` + `path` with the admin token; the answer's body, or an
/// error with the status and the server's message.
pub async fn post(server: &Server, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
    let token = tokio::fs::read_to_string(&server.admin_token_file)
        .await
        .with_context(|| format!("reading {}", server.admin_token_file.display()))?;
    let uri = format!("{}{path}", server.url.trim_end_matches('/'));
    let request = http::Request::builder()
        .method("POST")
        .uri(&uri)
        .header("authorization", format!("Bearer {}", token.trim()))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .context("building the request")?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(Duration::from_secs(60), client.request(request))
        .await
        .context("timed out after 60 s")?
        .with_context(|| format!("asking {uri}"))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}
