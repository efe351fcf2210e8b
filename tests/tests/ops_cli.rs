//! `herald pause|resume|replay trigger NAME` through the management API (`--server` with
//! `--token-file` or `--token`), for a file's trigger and one created through the API, and
//! `herald describe trigger` showing the last delivery error.

use std::time::Duration;

use herald_tests::fixtures::structured;
use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::run_cli;
use herald_tests::{Client, Herald, HeraldOptions, Reply, Subscriber, eventually};
use serde_json::Value;

const CLI: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "ops-cli-admin-token-0123456789";

struct Cli {
    server: String,
    token_file: String,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> (bool, String) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &self.server, "--token-file", &self.token_file]);
        let out = run_cli(&all, CLI).await;
        (
            out.status.success(),
            format!("{}{}", out.stdout, out.stderr),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.run(args).await;
        assert!(ok, "herald {args:?} failed:\n{out}");
        out
    }
}

async fn publish(herald: &Herald, ids: &[&str]) {
    let batch: Vec<Value> = ids.iter().map(|id| structured(id)).collect();
    let r = Client::new()
        .post_batch(&herald.broker_url("default", "default"), &batch)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

/// The ids received, sorted (the triggers are unordered; order is live_pause's subject).
fn ids(sub: &Subscriber) -> Vec<String> {
    let mut ids: Vec<String> = sub.requests().iter().map(|r| r.id()).collect();
    ids.sort();
    ids
}

async fn start(dir: &std::path::Path, docs: &str) -> (Herald, Cli) {
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let token_file = token_file.display().to_string();
    let herald = Herald::start_with(
        "embedded",
        docs,
        HeraldOptions {
            args: vec!["--admin-token-file".into(), token_file.clone()],
            ..Default::default()
        },
    )
    .await;
    let cli = Cli {
        server: herald.url(""),
        token_file,
    };
    (herald, cli)
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_and_replay_work_through_the_api_for_file_and_api_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let (file_sub, api_sub, witness) = (
        Subscriber::start().await,
        Subscriber::start().await,
        Subscriber::start().await,
    );
    let docs = yaml(&[
        broker("default"),
        trigger("from-file", "default", &file_sub.url("/")),
        trigger("witness", "default", &witness.url("/")),
    ]);
    let (herald, cli) = start(dir.path(), &docs).await;
    let manifest = dir.path().join("api.yaml");
    std::fs::write(
        &manifest,
        yaml(&[trigger("from-api", "default", &api_sub.url("/"))]),
    )
    .unwrap();
    cli.ok(&["apply", "-f", &manifest.display().to_string()])
        .await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    publish(&herald, &["a-1"]).await;
    file_sub.wait_for(1, WAIT).await;
    api_sub.wait_for(1, WAIT).await;

    let out = cli.ok(&["pause", "trigger", "from-file"]).await;
    assert!(out.contains("trigger default/from-file paused"), "{out}");
    let out = cli.ok(&["pause", "trigger", "default/from-api"]).await;
    assert!(out.contains("trigger default/from-api paused"), "{out}");
    let out = cli.ok(&["pause", "trigger", "from-api"]).await;
    assert!(out.contains("was already paused"), "{out}");
    publish(&herald, &["a-2", "a-3"]).await;
    witness.wait_for(3, WAIT).await;
    assert_eq!(ids(&file_sub), ["a-1"], "a paused file trigger delivered");
    assert_eq!(ids(&api_sub), ["a-1"], "a paused API trigger delivered");
    let described = cli.ok(&["describe", "trigger", "from-api"]).await;
    assert!(
        described
            .lines()
            .any(|l| l.contains("Paused") && l.contains("True")),
        "{described}"
    );

    cli.ok(&["resume", "trigger", "from-file"]).await;
    cli.ok(&["resume", "trigger", "-n", "default", "from-api"])
        .await;
    file_sub.wait_for(3, WAIT).await;
    api_sub.wait_for(3, WAIT).await;
    assert_eq!(ids(&file_sub), ["a-1", "a-2", "a-3"]);
    assert_eq!(ids(&api_sub), ["a-1", "a-2", "a-3"]);

    // Errors name the problem.
    let (ok, out) = cli.run(&["pause", "trigger", "nope"]).await;
    assert!(
        !ok && out.contains("404") && out.contains("default/nope"),
        "{out}"
    );

    // Replay the whole window to the API trigger only.
    let from = before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out = cli
        .ok(&["replay", "trigger", "from-api", "--from", &from])
        .await;
    assert!(out.contains("3 of 3 events"), "{out}");
    api_sub.wait_for(6, WAIT).await;
    let mut replayed: Vec<String> = api_sub
        .requests()
        .iter()
        .skip(3)
        .filter(|r| r.attr("heraldreplay").is_some())
        .map(|r| r.id())
        .collect();
    replayed.sort();
    assert_eq!(replayed, ["a-1", "a-2", "a-3"]);
    assert_eq!(file_sub.count(), 3, "the replay reached another trigger");
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_shows_the_last_delivery_error_and_that_delivery_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(400));
    let docs = yaml(&[broker("default"), trigger("t", "default", &sub.url("/"))]);
    let (herald, cli) = start(dir.path(), &docs).await;
    let described = cli.ok(&["describe", "trigger", "t"]).await;
    assert!(described.contains("Last error:    none"), "{described}");

    publish(&herald, &["bad-1"]).await;
    let described = eventually(WAIT, "the last error in describe", || async {
        let out = cli.ok(&["describe", "trigger", "t"]).await;
        out.contains("Last error:    last attempt failed at")
            .then_some(out)
    })
    .await;
    assert!(described.contains("subscriber answered 400"), "{described}");
    assert!(
        described.lines().any(|l| l.contains("Delivering")
            && l.contains("False")
            && l.contains("DeliveryFailed")),
        "{described}"
    );

    sub.set_script(|_| Reply::status(200));
    publish(&herald, &["good-1"]).await;
    let described = eventually(WAIT, "delivery recovered in describe", || async {
        let out = cli.ok(&["describe", "trigger", "t"]).await;
        out.contains("Last error:    last error at").then_some(out)
    })
    .await;
    assert!(described.contains("subscriber answered 400"), "{described}");
}
