//! The acceptance of the management API: the real `kubectl` applies, lists, shows, waits for
//! and deletes a Trigger on a running Herald, and the trigger delivers in between.
//!
//! kubectl sends a bearer token only over HTTPS (client-go drops credentials for an http://
//! server), so it reaches Herald through a TLS front (tests/interop/tls_proxy.py, with a
//! certificate made by `openssl`). Skipped, saying why, without `kubectl`, `openssl` or
//! `python3`.

use std::process::{Command, Stdio};
use std::time::Duration;

use herald_tests::{Client, Herald, HeraldOptions, Subscriber, fixtures};
use tokio::io::AsyncBufReadExt;

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
    if !runs("python3", "--version") {
        return Some("python3");
    }
    None
}

/// A TLS front to `port`, killed on drop.
struct TlsFront {
    child: tokio::process::Child,
    port: u16,
}

async fn tls_front(dir: &std::path::Path, target: u16) -> TlsFront {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(made.success(), "openssl could not make a certificate");
    let script = format!("{}/interop/tls_proxy.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&cert)
        .arg(&key)
        .arg(target.to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run python3");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the TLS front starts")
        .expect("read its port")
        .expect("it prints its port");
    let port = line
        .strip_prefix("LISTENING ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    TlsFront { child, port }
}

/// Runs kubectl against `server` with the token; returns (success, stdout + stderr).
async fn kubectl(server: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new("kubectl")
        .args([
            "--server",
            server,
            "--token",
            TOKEN,
            "--insecure-skip-tls-verify",
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
    let herald = Herald::start_with(
        "embedded",
        "",
        HeraldOptions {
            args: vec!["--admin-token-file".into(), token.display().to_string()],
            ..HeraldOptions::default()
        },
    )
    .await;
    let front = tls_front(dir.path(), herald.port()).await;
    let server = format!("https://127.0.0.1:{}", front.port);
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

    let broker = herald.broker_url("default", "default");
    let accepted = Client::new()
        .post_structured(&broker, &fixtures::structured("via-kubectl"))
        .await;
    assert_eq!(accepted.status, 202);
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
    drop(front.child);
}
