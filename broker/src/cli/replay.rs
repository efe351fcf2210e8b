//! `herald replay trigger NS/NAME --from TIME [--to TIME] [--filter CESQL]`: asks a running
//! Herald to deliver a time window of its broker's events again, to that trigger only.

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
    /// A trigger, `namespace/name`.
    Trigger {
        #[arg(value_parser = super::parked::parse_trigger)]
        trigger: (String, String),
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
        trigger: (namespace, name),
        from,
        to,
        filter,
        server,
    } = args.what;
    let body = serde_json::json!({ "from": from, "to": to, "filter": filter });
    let path = format!("/admin/triggers/{namespace}/{name}/replay");
    let answer = post(&server, &path, Bytes::from(serde_json::to_vec(&body)?)).await?;
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
