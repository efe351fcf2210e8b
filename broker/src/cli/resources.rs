//! `herald apply|get|describe|delete`: the management API from the command line.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use herald::api::kinds::{self, KINDS, Kind};
use herald::api::registry::SOURCE_FILE_ANNOTATION;

use super::api_client::{ApiClient, ServerArgs};
use super::yaml::to_yaml;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Manifests to create or replace: files or directories of *.yaml (repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    files: Vec<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// brokers, triggers, sources (every source kind), or any served kind (pingsources, ...).
    what: String,
    /// One object's name.
    name: Option<String>,
    /// The namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Print the objects whole.
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// The kind (trigger, broker, pingsource, ...).
    what: String,
    name: String,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    what: String,
    name: String,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    server: ServerArgs,
}

fn kind_of(name: &str) -> anyhow::Result<&'static Kind> {
    kinds::by_name(name).with_context(|| {
        let known: Vec<&str> = KINDS.iter().map(|k| k.plural).collect();
        format!(
            "{name:?} is not a kind Herald serves ({})",
            known.join(", ")
        )
    })
}

fn collection(kind: &Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!(
            "/apis/{}/{}/namespaces/{ns}/{}",
            kind.group, kind.version, kind.plural
        ),
        None => format!("/apis/{}/{}/{}", kind.group, kind.version, kind.plural),
    }
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.server).await?;
    let paths = args.files.clone();
    let texts = tokio::task::spawn_blocking(move || herald::config::read_files(&paths)).await??;
    let documents = herald::config::file_documents(&texts);
    let mut failed = 0;
    for document in documents {
        let mut object = document.value;
        let place = format!("{}, document {}", document.path.display(), document.index);
        let (Some(api_version), Some(kind)) =
            (object["apiVersion"].as_str(), object["kind"].as_str())
        else {
            bail!("{place}: every document needs apiVersion and kind");
        };
        let kind = kinds::by_manifest(api_version, kind).with_context(|| {
            format!("{place}: {api_version} {kind} is not a kind Herald serves")
        })?;
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .with_context(|| format!("{place}: metadata.name is missing"))?
            .to_owned();
        let base = collection(kind, Some(&namespace));
        let current = client.get(&format!("{base}/{name}")).await?;
        let label = format!("{}.{}/{name}", kind.singular, kind.group);
        let answer = match current.status {
            404 => {
                let answer = client
                    .request("POST", &base, "application/json", Some(&object))
                    .await?;
                (answer.status == 201).then(|| println!("{label} created"));
                answer
            }
            200 => {
                object["metadata"]["resourceVersion"] =
                    current.body["metadata"]["resourceVersion"].clone();
                let answer = client
                    .request(
                        "PUT",
                        &format!("{base}/{name}"),
                        "application/json",
                        Some(&object),
                    )
                    .await?;
                if answer.status == 200 {
                    let changed = answer.body["metadata"]["resourceVersion"]
                        != current.body["metadata"]["resourceVersion"];
                    println!(
                        "{label} {}",
                        if changed { "configured" } else { "unchanged" }
                    );
                }
                answer
            }
            _ => current,
        };
        if !(200..300).contains(&answer.status) {
            eprintln!("{place}: {label}: {}", answer.error());
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} document(s) were not applied");
    }
    Ok(())
}

pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.server).await?;
    let kinds: Vec<&Kind> = if args.what == "sources" || args.what == "source" {
        KINDS
            .iter()
            .filter(|k| k.group == "sources.knative.dev")
            .collect()
    } else {
        vec![kind_of(&args.what)?]
    };
    let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
    let mut items = Vec::new();
    for kind in kinds {
        match &args.name {
            Some(name) => {
                let ns = namespace.unwrap_or("default");
                let answer = client
                    .get(&format!("{}/{name}", collection(kind, Some(ns))))
                    .await?;
                match answer.status {
                    200 => items.push(answer.body),
                    404 => {}
                    _ => bail!("{}", answer.error()),
                }
            }
            None => {
                let list = client.get_ok(&collection(kind, namespace)).await?;
                items.extend(list["items"].as_array().cloned().unwrap_or_default());
            }
        }
    }
    if let Some(name) = &args.name
        && items.is_empty()
    {
        bail!("{} {name:?} not found", args.what);
    }
    let whole = || match (&args.name, items.len()) {
        (Some(_), 1) => items[0].clone(),
        _ => json!({ "apiVersion": "v1", "kind": "List", "items": items }),
    };
    match args.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&whole())?),
        Some(Output::Yaml) => print!("{}", to_yaml(&whole())),
        None => print_table(&items, namespace.is_none()),
    }
    Ok(())
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn print_table(items: &[Value], with_namespace: bool) {
    if items.is_empty() {
        println!("No resources found.");
        return;
    }
    let mut rows = vec![
        vec!["NAMESPACE", "KIND", "NAME", "READY", "REASON", "FROM"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    ];
    for item in items {
        let ready = condition(item, "Ready");
        let text =
            |v: Option<&Value>, key: &str| v.and_then(|c| c[key].as_str()).unwrap_or("").to_owned();
        let from = match item["metadata"]["annotations"][SOURCE_FILE_ANNOTATION].as_str() {
            Some(file) => format!("file {file}"),
            None => "api".to_owned(),
        };
        rows.push(vec![
            item["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            item["kind"].as_str().unwrap_or("").to_owned(),
            item["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            text(ready, "status"),
            text(ready, "reason"),
            from,
        ]);
    }
    let skip = usize::from(!with_namespace);
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        println!("{}", cells.join("   ").trim_end());
    }
}

pub async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.server).await?;
    let kind = kind_of(&args.what)?;
    let object = client
        .get_ok(&format!(
            "{}/{}",
            collection(kind, Some(&args.namespace)),
            args.name
        ))
        .await?;
    let meta = &object["metadata"];
    println!("Name:          {}", meta["name"].as_str().unwrap_or(""));
    println!(
        "Namespace:     {}",
        meta["namespace"].as_str().unwrap_or("")
    );
    println!("Kind:          {} ({})", kind.kind, kind.api_version());
    match meta["annotations"][SOURCE_FILE_ANNOTATION].as_str() {
        Some(file) => println!("From:          file {file} (edit the file to change it)"),
        None => println!("From:          the management API"),
    }
    println!(
        "Generation:    {} (observed {})",
        meta["generation"], object["status"]["observedGeneration"]
    );
    let spec = &object["spec"];
    if kind.kind == "Trigger" {
        println!("Broker:        {}", spec["broker"].as_str().unwrap_or(""));
        println!("Subscriber:    {}", compact(&spec["subscriber"]));
        if !spec["filter"].is_null() {
            println!("Filter:        {}", compact(&spec["filter"]));
        }
        if !spec["filters"].is_null() {
            println!("Filters:       {}", compact(&spec["filters"]));
        }
        if !spec["delivery"].is_null() {
            println!("Delivery:      {}", compact(&spec["delivery"]));
        }
    } else {
        println!("Spec:          {}", compact(spec));
    }
    if let Some(url) = object["status"]["address"]["url"].as_str() {
        println!("Address:       {url}");
    }
    if kind.kind == "Trigger" {
        describe_activity(&client, &args.namespace, &args.name).await;
        println!("Last error:    {}", last_error(&object["status"]));
    }
    println!("Conditions:");
    for c in object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "  {:<20} {:<8} {} {}",
            c["type"].as_str().unwrap_or(""),
            c["status"].as_str().unwrap_or(""),
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// Lag and in-flight events from `/metrics`, and the parked events through the API; what
/// cannot be read is said, not guessed.
async fn describe_activity(client: &ApiClient, namespace: &str, name: &str) {
    let label = format!("trigger=\"{namespace}/{name}\"");
    let metrics = client.get_text("/metrics").await.unwrap_or_default();
    let sample = |metric: &str| {
        metrics.lines().find_map(|line| {
            let rest = line.strip_prefix(metric)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            labels
                .split(',')
                .any(|l| l == label)
                .then(|| value.trim().to_owned())
        })
    };
    let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "unknown".to_owned());
    println!(
        "Lag:           {} s",
        or_unknown(sample("herald_trigger_lag_seconds"))
    );
    println!(
        "In flight:     {}",
        or_unknown(sample("herald_trigger_in_flight_events"))
    );
    println!(
        "Parked total:  {}",
        or_unknown(sample("herald_parked_events_total"))
    );
    let parked = format!(
        "/apis/herald.dev/v1alpha1/namespaces/{namespace}/triggers/{name}/parked?limit={MAX_PARKED}"
    );
    match client.get(&parked).await {
        Ok(answer) if answer.status == 200 => {
            let count = answer.body["events"].as_array().map_or(0, Vec::len);
            let more = if count == MAX_PARKED { " or more" } else { "" };
            println!("Parked now:    {count}{more}");
        }
        Ok(answer) => println!("Parked now:    unknown ({})", answer.error()),
        Err(e) => println!("Parked now:    unknown ({e:#})"),
    }
}

/// The most parked events `describe` counts.
const MAX_PARKED: usize = herald::dispatch::admin::MAX_LIST;

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.server).await?;
    let kind = kind_of(&args.what)?;
    let path = format!("{}/{}", collection(kind, Some(&args.namespace)), args.name);
    let answer = client
        .request("DELETE", &path, "application/json", None)
        .await?;
    if answer.status != 200 {
        bail!("{}", answer.error());
    }
    println!("{}.{} {:?} deleted", kind.singular, kind.group, args.name);
    Ok(())
}

/// The message of the trigger's `Delivering` condition (its last delivery error), or `none`.
fn last_error(status: &Value) -> String {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Delivering")
        .and_then(|c| c["message"].as_str())
        .unwrap_or("none")
        .to_owned()
}
