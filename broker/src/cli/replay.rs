//! `herald replay trigger NAME --from TIME [--to TIME] [--filter CESQL]`: asks a running
//! Herald to deliver a time window of its broker's events again, to that trigger only
//! (through the management API, or `/admin/` with `--url`; see [`super::pause::Server`]).

use anyhow::Context;
use bytes::Bytes;

use super::pause::{Server, post};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// A trigger: `name` (in --namespace) or `namespace/name`.
    Trigger {
        trigger: String,
        /// Events that arrived at or after this RFC 3339 time, e.g. 2026-12-01T06:00:00Z.
        #[arg(long)]
        from: String,
        /// ... and at or before this one (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Only events this CESQL expression matches, e.g. "type = 'order.created'".
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        server: Server,
    },
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let What::Trigger {
        trigger,
        from,
        to,
        filter,
        server,
    } = args.what;
    let (namespace, name) = server.trigger(&trigger)?;
    let body = serde_json::json!({ "from": from, "to": to, "filter": filter });
    let body = Bytes::from(serde_json::to_vec(&body)?);
    let answer = post(&server, "triggers", &namespace, &name, "replay", body).await?;
    let report: serde_json::Value =
        serde_json::from_slice(&answer).context("reading the answer")?;
    println!(
        "replay {}: {} of {} events read republished for trigger {namespace}/{name} (extension heraldreplay={})",
        report["id"].as_str().unwrap_or("?"),
        report["replayed"],
        report["read"],
        report["id"].as_str().unwrap_or("?"),
    );
    Ok(())
}
