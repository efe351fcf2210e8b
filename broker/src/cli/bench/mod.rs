//! `herald bench`: load-tests Herald over HTTP and prints throughput and latency, each as a
//! ratio of a no-op HTTP server measured in the same run on the same machine.
//!
//! Phases (each with a fresh Herald child process unless `--url` is given):
//! - `noop`: the yardstick, a server that answers 202 and does nothing else;
//! - `ingest`: a broker without triggers, closed-loop at `--connections`;
//! - `ingest-jwt` (not run by default): the same with `--oidc-issuer` on, every request
//!   carrying a valid Ed25519 JWT, reported as a ratio of `ingest` too;
//! - `e2e`: one trigger to the bench's own subscriber, at a fixed fraction of the noop rate,
//!   measuring end-to-end latency and whether the backlog grows;
//! - `latency`: the same at `--latency-rate` events/s (1,000 by default);
//! - `sequence` (not run by default): like `e2e`, through a 3-step Sequence whose steps echo
//!   the event as their reply (events/s and latency from the Sequence's address to its reply);
//! - `overload`: publishers as fast as they can, a subscriber that takes 100 ms per event:
//!   Herald must push back (`503`, or a backlog on disk for the embedded bus) with bounded
//!   memory.

mod jwt;
mod load;
mod process;
mod servers;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use load::{LoadResult, LoadSpec, percentile_ms};
use process::Child;
use servers::Subscriber;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Drive an already running Herald at this broker URL (ingest only) instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Bus of the Herald the bench starts (embedded, memory, kafka://..., nats://..., pubsub://PROJECT).
    #[arg(long, default_value = "embedded")]
    bus: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds each phase sends load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Upper bound on events per phase.
    #[arg(long, default_value_t = 5_000_000)]
    max_events: u64,
    /// Event data size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Phases to run, comma-separated: noop, ingest, ingest-jwt, e2e, latency, sequence,
    /// overload.
    #[arg(
        long,
        default_value = "noop,ingest,e2e,latency,overload",
        value_delimiter = ','
    )]
    phases: Vec<String>,
    /// Fixed publish rate of the e2e phase as a fraction of the noop server's requests/s.
    #[arg(long, default_value_t = 0.3)]
    e2e_fraction: f64,
    /// Publish rate of the latency phase, events/s.
    #[arg(long, default_value_t = 1000.0)]
    latency_rate: f64,
    /// Extra `herald serve` argument for the Herald the bench starts (repeatable), e.g.
    /// `--serve-arg=--oidc-token-cache-entries=0`.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    serve_args: Vec<String>,
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let epoch = Instant::now();
    let duration = Duration::from_secs_f64(args.duration);
    let spec = |addr, path: &str, rate| LoadSpec {
        addr,
        path: path.to_owned(),
        connections: args.connections,
        duration,
        max_events: args.max_events,
        size: args.size,
        rate,
        authorization: None,
    };
    println!(
        "herald bench: {} connections, {} B events, {:.0} s per phase, bus {}, {} cores",
        args.connections,
        args.size,
        args.duration,
        args.bus,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut noop_rate = None;
    if args.phases.iter().any(|p| p == "noop") {
        let child = Child::noop().await?;
        let result = load::run(spec(child.addr, "/", None), epoch).await?;
        print_load("noop", &result, None);
        noop_rate = Some(result.rate());
    }
    if let Some(url) = &args.url {
        let url: url::Url = url.parse().context("--url")?;
        let addr = url
            .socket_addrs(|| Some(80))?
            .into_iter()
            .next()
            .context("--url has no address")?;
        let result = load::run(spec(addr, url.path(), None), epoch).await?;
        print_load("ingest (running herald)", &result, noop_rate);
        return Ok(());
    }
    let mut ingest_rate = None;
    if args.phases.iter().any(|p| p == "ingest") {
        let child = Child::herald(&args.bus, None, &args.serve_args).await?;
        let idle = child.rss_kib();
        let result = load::run(spec(child.addr, "/default/default", None), epoch).await?;
        print_load("ingest", &result, noop_rate);
        ingest_rate = Some(result.rate());
        println!(
            "  memory: idle {} MiB, peak {} MiB",
            idle / 1024,
            child.peak_rss_kib() / 1024
        );
    }
    if args.phases.iter().any(|p| p == "ingest-jwt") {
        ingest_with_jwt(&args, &spec, epoch, noop_rate, ingest_rate).await?;
    }
    let fraction_rate = noop_rate.map(|r| r * args.e2e_fraction);
    for (phase, rate) in [
        ("e2e", fraction_rate),
        ("latency", Some(args.latency_rate)),
        ("sequence", fraction_rate),
    ] {
        if !args.phases.iter().any(|p| p == phase) {
            continue;
        }
        let Some(rate) = rate else {
            println!("{phase}: needs the noop phase to set its rate; skipped");
            continue;
        };
        end_to_end(phase, &args, rate, noop_rate, &spec, epoch).await?;
    }
    if args.phases.iter().any(|p| p == "overload") {
        overload(&args, &spec, epoch).await?;
    }
    Ok(())
}

/// Ingest with `--oidc-issuer`: every request carries a bearer token Herald must accept.
async fn ingest_with_jwt(
    args: &BenchArgs,
    spec: &dyn Fn(std::net::SocketAddr, &str, Option<f64>) -> LoadSpec,
    epoch: Instant,
    noop_rate: Option<f64>,
    ingest_rate: Option<f64>,
) -> anyhow::Result<()> {
    let keys = tempfile::tempdir()?;
    let issuer = jwt::mint(keys.path()).await?;
    let mut serve_args = vec![
        "--oidc-issuer".to_owned(),
        issuer.flag.clone(),
        "--default-authorization-mode".to_owned(),
        "allow-same-namespace".to_owned(),
    ];
    serve_args.extend(args.serve_args.iter().cloned());
    let child = Child::herald(&args.bus, None, &serve_args).await?;
    let load_spec = LoadSpec {
        authorization: Some(issuer.authorization.clone()),
        ..spec(child.addr, "/default/default", None)
    };
    let result = load::run(load_spec, epoch).await?;
    print_load("ingest with JWT", &result, noop_rate);
    if let Some(plain) = ingest_rate {
        println!(
            "  {:.1}% of ingest without JWT",
            100.0 * result.rate() / plain
        );
    }
    if result.refused > 0 {
        println!("  {} requests refused: is the token valid?", result.refused);
    }
    Ok(())
}

/// Publishers far faster than the subscriber: what Herald refuses and how much memory it takes.
async fn overload(
    args: &BenchArgs,
    spec: &dyn Fn(std::net::SocketAddr, &str, Option<f64>) -> LoadSpec,
    epoch: Instant,
) -> anyhow::Result<()> {
    let subscriber = Arc::new(Subscriber {
        delay: Duration::from_millis(100),
        ..Subscriber::default()
    });
    let sub_addr = subscriber.start(epoch).await?;
    let child = Child::herald(&args.bus, Some(sub_addr), &args.serve_args).await?;
    let result = load::run(spec(child.addr, "/default/default", None), epoch).await?;
    print_load("overload publish (subscriber 100 ms/event)", &result, None);
    println!(
        "  accepted {}, refused {} (503), delivered so far {}; herald memory now {} MiB, peak {} MiB",
        result.accepted,
        result.refused,
        subscriber.received.load(Ordering::Acquire),
        child.rss_kib() / 1024,
        child.peak_rss_kib() / 1024
    );
    Ok(())
}

async fn end_to_end(
    phase: &str,
    args: &BenchArgs,
    rate: f64,
    noop_rate: Option<f64>,
    spec: &dyn Fn(std::net::SocketAddr, &str, Option<f64>) -> LoadSpec,
    epoch: Instant,
) -> anyhow::Result<()> {
    let subscriber = Arc::new(Subscriber::default());
    let sub_addr = subscriber.start(epoch).await?;
    let (child, path) = if phase == "sequence" {
        let steps = Arc::new(Subscriber {
            echo: true,
            ..Subscriber::default()
        });
        let steps_addr = steps.start(epoch).await?;
        // A new name per run: a network bus may still hold a previous run's groups.
        let name = format!("bench-{:08x}", fastrand::u32(..));
        let manifest = format!(
            "apiVersion: flows.knative.dev/v1\nkind: Sequence\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  steps:\n    - uri: http://{steps_addr}/a\n    - uri: http://{steps_addr}/b\n    - uri: http://{steps_addr}/c\n  reply: {{uri: \"http://{sub_addr}/\"}}\n"
        );
        let child = Child::herald_with(&args.bus, &manifest, &args.serve_args).await?;
        (child, format!("/flows/sequences/default/{name}"))
    } else {
        let child = Child::herald(&args.bus, Some(sub_addr), &args.serve_args).await?;
        (child, "/default/default".to_owned())
    };
    let load_spec = LoadSpec {
        connections: args.connections.min((rate / 50.0).ceil().max(1.0) as usize),
        ..spec(child.addr, &path, Some(rate))
    };
    let result = load::run(load_spec, epoch).await?;
    let backlog_at_end = result
        .accepted
        .saturating_sub(subscriber.received.load(Ordering::Acquire));
    let drain_start = Instant::now();
    while subscriber.received.load(Ordering::Acquire) < result.accepted
        && drain_start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = subscriber.received.load(Ordering::Acquire);
    let e2e = subscriber.take_latencies();
    print_load(
        &format!("{phase} publish @ {rate:.0}/s"),
        &result,
        noop_rate,
    );
    println!(
        "  delivered {delivered} of {} ({:.0}/s){}; backlog when load stopped: {backlog_at_end}; drained in {:.2} s",
        result.accepted,
        delivered as f64 / result.elapsed.as_secs_f64(),
        noop_rate.map_or(String::new(), |n| format!(
            ", {:.1}% of noop",
            100.0 * delivered as f64 / result.elapsed.as_secs_f64() / n
        )),
        drain_start.elapsed().as_secs_f64(),
    );
    println!(
        "  end-to-end latency: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms; peak memory {} MiB",
        percentile_ms(&e2e, 0.5),
        percentile_ms(&e2e, 0.99),
        percentile_ms(&e2e, 0.999),
        child.peak_rss_kib() / 1024
    );
    Ok(())
}

fn print_load(phase: &str, r: &LoadResult, noop_rate: Option<f64>) {
    let ratio = noop_rate.map_or(String::new(), |n| {
        format!(" ({:.1}% of noop)", 100.0 * r.rate() / n)
    });
    println!(
        "{phase}: {:.0} req/s{ratio}; {} accepted, {} refused in {:.2} s; latency p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms",
        r.rate(),
        r.accepted,
        r.refused,
        r.elapsed.as_secs_f64(),
        r.percentile_ms(0.5),
        r.percentile_ms(0.99),
        r.percentile_ms(0.999),
    );
}

/// `herald bench-noop`: the no-op server, as its own process like Herald.
pub async fn noop_server(listen: String) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening {}", listener.local_addr()?);
    servers::serve_noop(listener).await
}
