//! `herald apply|get|describe|delete` and `herald parked --server` against a running Herald's
//! management API.

use std::time::Duration;

use herald_tests::process::run_cli;
use herald_tests::{
    Client, Herald, HeraldOptions, Reply, Subscriber, eventually, fixtures, manifests,
};

const CLI: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(20);

struct Cli {
    server: String,
    token_file: String,
}

impl Cli {
    /// Runs `herald ARGS --server ... --token-file ...`; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &self.server, "--token-file", &self.token_file]);
        let out = run_cli(&all, CLI).await;
        (out.status.success(), out.stdout, out.stderr)
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "herald {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_applies_gets_describes_parks_and_deletes_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "cli-api-token-0123456789\n").unwrap();
    let token_file = token_file.display().to_string();
    let herald = Herald::start_with(
        "embedded",
        "",
        HeraldOptions {
            args: vec!["--admin-token-file".into(), token_file.clone()],
            ..HeraldOptions::default()
        },
    )
    .await;
    let cli = Cli {
        server: herald.url(""),
        token_file,
    };
    // The subscriber refuses everything: events end in the trigger's parking lot.
    let sub = Subscriber::start().await;
    sub.set_script(|_| Reply::status(400));
    let manifest = dir.path().join("t.yaml");
    std::fs::write(
        &manifest,
        manifests::yaml(&[manifests::trigger("t", "default", &sub.url("/"))]),
    )
    .unwrap();
    let manifest = manifest.display().to_string();

    assert_eq!(
        cli.ok(&["apply", "-f", &manifest]).await.trim(),
        "trigger.eventing.knative.dev/t created"
    );
    assert_eq!(
        cli.ok(&["apply", "-f", &manifest]).await.trim(),
        "trigger.eventing.knative.dev/t unchanged"
    );
    let table = eventually(WAIT, "trigger t Ready in `herald get triggers`", || async {
        let table = cli.ok(&["get", "triggers"]).await;
        table
            .lines()
            .any(|l| l.contains(" t ") && l.contains("True") && l.ends_with("api"))
            .then_some(table)
    })
    .await;
    assert!(table.starts_with("KIND"), "{table}");
    let yaml = cli.ok(&["get", "trigger", "t", "-o", "yaml"]).await;
    assert!(
        yaml.contains("  name: \"t\"") && yaml.contains("observedGeneration: 1"),
        "{yaml}"
    );
    let json = cli.ok(&["get", "triggers", "-o", "json"]).await;
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "t");
    let described = cli.ok(&["describe", "trigger", "t"]).await;
    assert!(
        described.contains(&format!("Subscriber:    {{\"uri\":\"{}\"}}", sub.url("/"))),
        "{described}"
    );
    assert!(
        described.contains("From:          the management API"),
        "{described}"
    );

    let broker = herald.broker_url("default", "default");
    assert_eq!(
        Client::new()
            .post_structured(&broker, &fixtures::structured("to-park"))
            .await
            .status,
        202
    );
    let listed = eventually(WAIT, "the refused event in the parking lot", || async {
        let listed = cli.ok(&["parked", "list", "--trigger", "default/t"]).await;
        listed.contains("to-park").then_some(listed)
    })
    .await;
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let described = cli.ok(&["describe", "trigger", "t"]).await;
    assert!(described.contains("Parked now:    1\n"), "{described}");
    assert!(described.contains("Parked total:  1\n"), "{described}");
    assert!(described.contains("In flight:     0\n"), "{described}");
    assert_eq!(
        cli.ok(&["parked", "purge", "--all", "--trigger", "default/t"])
            .await
            .trim(),
        "to-park"
    );
    assert_eq!(
        cli.ok(&["parked", "list", "--trigger", "default/t"]).await,
        ""
    );

    assert!(
        cli.ok(&["delete", "trigger", "t"])
            .await
            .contains("deleted")
    );
    let (ok, _, stderr) = cli.run(&["get", "trigger", "t"]).await;
    assert!(!ok && stderr.contains("not found"), "{stderr}");
    let (ok, _, stderr) = cli.run(&["get", "widgets"]).await;
    assert!(
        !ok && stderr.contains("not a kind Herald serves"),
        "{stderr}"
    );
}
