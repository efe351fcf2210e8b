//! `herald pause|resume trigger|subscription NAME`: asks a running Herald to stop or restart
//! delivering to a trigger or subscription (which keeps its position meanwhile), through its management API (`--server`,
//! `--token`/`--token-file`) or, with `--url` and `--admin-token-file`, its `/admin/` paths.

use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;

use super::api_client::{ApiClient, ServerArgs};

#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// A trigger: `name` (in --namespace) or `namespace/name`.
    Trigger {
        trigger: String,
        #[command(flatten)]
        server: Server,
    },
    /// A subscription (a flow's step too, e.g. `ns/flow-kn-sequence-1`): `name` (in
    /// --namespace) or `namespace/name`.
    Subscription {
        subscription: String,
        #[command(flatten)]
        server: Server,
    },
}

/// The running Herald to ask.
#[derive(Debug, clap::Args)]
pub struct Server {
    /// The trigger's namespace when NAME does not say it.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Instead of the management API: a Herald's base URL for its `/admin/` paths, e.g.
    /// http://127.0.0.1:8080 (with --admin-token-file).
    #[arg(long, env = "HERALD_URL")]
    pub url: Option<String>,
    /// The file holding its admin bearer token (with --url).
    #[arg(long, env = "HERALD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub api: ServerArgs,
}

impl Server {
    /// `(namespace, name)` of `trigger` (`name` or `namespace/name`).
    pub fn trigger(&self, trigger: &str) -> anyhow::Result<(String, String)> {
        if trigger.contains('/') {
            return super::parked::parse_trigger(trigger).map_err(anyhow::Error::msg);
        }
        if trigger.is_empty() {
            bail!("a trigger name is required");
        }
        Ok((self.namespace.clone(), trigger.to_owned()))
    }
}

/// `herald pause ...` (`paused`) or `herald resume ...`.
pub async fn run(args: PauseArgs, paused: bool) -> anyhow::Result<()> {
    let (kind, named, server) = match args.what {
        What::Trigger { trigger, server } => ("trigger", trigger, server),
        What::Subscription {
            subscription,
            server,
        } => ("subscription", subscription, server),
    };
    let (namespace, name) = server.trigger(&named)?;
    let action = if paused { "pause" } else { "resume" };
    let plural = format!("{kind}s");
    let body = post(&server, &plural, &namespace, &name, action, Bytes::new()).await?;
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

/// POSTs `body` (JSON) to the `action` (`pause`, `resume`, `replay`) of a trigger or
/// subscription (`plural`: `triggers`, `subscriptions`): through the management API, or
/// `/admin/{plural}/...` with `--url`. The answer's body, or an error with
/// the status and the server's message.
pub async fn post(
    server: &Server,
    plural: &str,
    namespace: &str,
    name: &str,
    action: &str,
    body: Bytes,
) -> anyhow::Result<Bytes> {
    let Some(url) = &server.url else {
        let client = ApiClient::new(&server.api).await?;
        let path =
            format!("/apis/herald.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}/{action}");
        let json: serde_json::Value = if body.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(&body).context("request body")?
        };
        let answer = client
            .request("POST", &path, "application/json", Some(&json))
            .await?;
        if !(200..300).contains(&answer.status) {
            bail!("{}", answer.error());
        }
        return Ok(Bytes::from(answer.body.to_string()));
    };
    let Some(file) = &server.admin_token_file else {
        bail!("--url needs --admin-token-file");
    };
    let token = tokio::fs::read_to_string(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    let uri = format!(
        "{}/admin/{plural}/{namespace}/{name}/{action}",
        url.trim_end_matches('/')
    );
    super::admin_http::request("POST", &uri, token.trim(), body).await
}
