//! `herald send`: publish one event, print the answer.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesWriter, Event};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use herald::binding::encode;

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Broker URL, e.g. http://localhost:8080/default/default
    url: String,
    /// The event's type attribute.
    #[arg(long = "type")]
    ty: String,
    /// The event's source attribute (a URI-reference).
    #[arg(long)]
    source: String,
    /// The event's id (default: a random UUID).
    #[arg(long)]
    id: Option<String>,
    /// JSON data, or @FILE to read it from a file.
    #[arg(long)]
    data: Option<String>,
    /// Extension attribute NAME=VALUE (repeatable).
    #[arg(long = "ext", value_name = "NAME=VALUE")]
    extensions: Vec<String>,
    /// binary (attributes as ce- headers) or structured (application/cloudevents+json).
    #[arg(long, default_value = "binary", value_parser = ["binary", "structured"])]
    mode: String,
}

pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let mut event = Event::default();
    event.set_id(args.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
    event.set_source(args.source);
    event.set_type(args.ty);
    event.set_time(Some(chrono::Utc::now()));
    for ext in &args.extensions {
        let (name, value) = ext
            .split_once('=')
            .with_context(|| format!("--ext {ext:?} is not NAME=VALUE"))?;
        event.set_extension(name, ExtensionValue::String(value.to_owned()));
    }
    if let Some(data) = args.data {
        let text = match data.strip_prefix('@') {
            Some(path) => tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("reading {path}"))?,
            None => data,
        };
        let json: serde_json::Value = serde_json::from_str(&text).context("--data is not JSON")?;
        event.set_data("application/json", json);
    }
    let (headers, body) = if args.mode == "structured" {
        encode::structured(&event)
    } else {
        encode::binary(&event)
    };
    let mut request = http::Request::post(&args.url);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let request = request
        .body(Full::new(body))
        .context("building the request")?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .context("timed out after 30 s")?
        .with_context(|| format!("sending to {}", args.url))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!("{status}");
    if !body.is_empty() {
        println!("{}", String::from_utf8_lossy(&body));
    }
    if !status.is_success() {
        bail!("the broker refused the event");
    }
    Ok(())
}
