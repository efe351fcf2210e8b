//! The acceptance of the management API: the real `kubectl` applies, lists, shows, waits for
//! and deletes a Trigger on a running Herald, and the trigger delivers in between.
//!
//! kubectl sends a bearer token only over HTTPS (client-go drops credentials for an http://
//! server), so it reaches Herald's own TLS listener: the admin listener (`--admin-listen`,
//! with `--tls-cert`/`--tls-key` from a test CA made by `openssl`), verified against that CA.
//! Skipped, saying why, without `kubectl` or `openssl`.

use std::process::{Command, Stdio};
use std::time::Duration;

use herald_tests::https::{BOTH, publish, tls_args};
use herald_tests::process::free_port;
use herald_tests::tls::{Ca, TlsClient};
use herald_tests::{Herald, HeraldOptions, Subscriber};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "kubectl-test-token-0123456789";

fn missing_tool() -> Option<&'static str> {
    let runs = |tool: &str, arg: &str| {
        Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !runs("kubectl", "version") && !runs("kubectl", "help") {
        return Some("kubectl");
    }
    if !runs("openssl", "version") {
        return Some("openssl");
    }
    None
}

/// Where kubectl reaches Herald: the admin listener's URL and the CA to verify it with.
struct Target {
    server: String,
    ca: String,
}

/// Runs kubectl against `target` with the token; returns (success, stdout + stderr).
async fn kubectl(target: &Target, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new("kubectl")
        .args([
            "--server",
            &target.server,
            "--token",
            TOKEN,
            "--certificate-authority",
            &target.ca,
        ])
        // No kubeconfig of the machine's: only the flags count.
        .env("KUBECONFIG", "/dev/null")
        .args(args)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("kubectl finishes")
        .expect("run kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_applies_gets_waits_for_and_deletes_a_trigger() {
    if let Some(tool) = missing_tool() {
        eprintln!("SKIPPED: {tool} is not on this machine; the kubectl acceptance did not run");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("write token");
    let ca = Ca::new(dir.path(), "ca");
    let client = TlsClient::new(&ca.pem(), BOTH, None);
    let admin_port = free_port();
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let token_arg = token.display().to_string();
    let herald = Herald::start_with(
        "embedded",
        "",
        HeraldOptions {
            args: tls_args(
                &ca.server("server"),
                &[
                    "--admin-listen",
                    &admin_addr,
                    "--admin-token-file",
                    &token_arg,
                ],
            ),
            https: Some(client.clone()),
            ready_port: Some(admin_port),
            ..HeraldOptions::default()
        },
    )
    .await;
    let server = Target {
        server: format!("https://127.0.0.1:{admin_port}"),
        ca: ca.pem().display().to_string(),
    };
    let sub = Subscriber::start().await;
    let manifest = dir.path().join("trigger.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\nspec:\n  broker: default\n  subscriber:\n    uri: {}\n",
            sub.url("/")
        ),
    )
    .expect("write manifest");
    let manifest = manifest.display().to_string();

    let (ok, out) = kubectl(&server, &["apply", "-f", &manifest]).await;
    assert!(
        ok && out.contains("trigger.eventing.knative.dev/t created"),
        "{out}"
    );
    let (ok, out) = kubectl(
        &server,
        &[
            "wait",
            "--for=condition=Ready",
            "trigger/t",
            "--timeout=20s",
        ],
    )
    .await;
    assert!(ok && out.contains("condition met"), "{out}");
    let (ok, out) = kubectl(&server, &["get", "triggers"]).await;
    assert!(ok && out.lines().any(|l| l.starts_with("t ")), "{out}");
    let (ok, out) = kubectl(&server, &["get", "trigger", "t", "-o", "yaml"]).await;
    assert!(ok, "{out}");
    for expected in [
        "uid:",
        "resourceVersion:",
        "generation: 1",
        "observedGeneration: 1",
        "type: Ready",
    ] {
        assert!(out.contains(expected), "no {expected:?} in\n{out}");
    }

    let accepted = publish(&client, herald.port(), "via-kubectl").await;
    assert_eq!(accepted.expect("publish over https").0, 202);
    assert_eq!(sub.wait_for(1, WAIT).await[0].id(), "via-kubectl");

    // A second apply of a changed manifest patches it: generation 2.
    let changed = std::fs::read_to_string(&manifest).unwrap().replace(
        "spec:\n",
        "spec:\n  filter:\n    attributes:\n      type: only.this\n",
    );
    std::fs::write(&manifest, changed).unwrap();
    let (ok, out) = kubectl(&server, &["apply", "-f", &manifest]).await;
    assert!(ok && out.contains("configured"), "{out}");
    let (ok, out) = kubectl(
        &server,
        &[
            "get",
            "trigger",
            "t",
            "-o",
            "jsonpath={.metadata.generation}",
        ],
    )
    .await;
    assert!(ok && out.trim() == "2", "{out}");

    let (ok, out) = kubectl(&server, &["delete", "trigger", "t"]).await;
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, out) = kubectl(&server, &["get", "trigger", "t"]).await;
    assert!(!ok && out.contains("NotFound"), "{out}");
}
