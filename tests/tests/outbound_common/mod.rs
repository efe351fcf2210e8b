//! Helpers shared by the outbound tests (`outbound_*.rs`): the Python receiver that checks
//! signatures with the `standardwebhooks` library, a CA made with `openssl`, metrics and logs.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_tests::fixtures::structured;
use herald_tests::{Client, Herald, eventually};
use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(20);

pub fn interop(script: &str) -> String {
    format!("{}/interop/{script}", env!("CARGO_MANIFEST_DIR"))
}

/// `tests/interop/outbound_receiver.py`, killed on drop; its JSON lines collected.
pub struct Receiver {
    child: std::process::Child,
    pub port: u16,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    pub fn start(args: &[&str]) -> Receiver {
        let mut child = Command::new("python3")
            .arg(interop("outbound_receiver.py"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut lines: Lines<BufReader<ChildStdout>> =
            BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("receiver prints").expect("utf-8");
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("{first:?}: is standardwebhooks installed? pip install -r tests/interop/requirements.txt")
            });
        let collected = Arc::new(Mutex::new(Vec::new()));
        let sink = collected.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let value = serde_json::from_str(&line).expect("receiver prints JSON");
                sink.lock().unwrap().push(value);
            }
        });
        Receiver {
            child,
            port,
            lines: collected,
        }
    }

    /// Waits for at least `n` requests; returns all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        eventually(
            WAIT,
            &format!("{n} requests at the Python receiver"),
            || async {
                let lines = self.lines.lock().unwrap().clone();
                (lines.len() >= n).then_some(lines)
            },
        )
        .await
    }

    pub fn requests(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }
}

/// Publishes one structured event with id `id` to broker `default/default`.
pub async fn publish(herald: &Herald, id: &str) {
    let r = Client::new()
        .post_structured(&herald.broker_url("default", "default"), &structured(id))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

/// The value of the metric line that starts with `series` (labels included), 0 when absent.
pub async fn series(herald: &Herald, series: &str) -> u64 {
    let metrics = Client::new().get(&herald.url("/metrics")).await.text();
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// Waits until herald's stderr has a line containing every one of `parts`; returns it.
pub async fn log_line(herald: &Herald, parts: &[&str]) -> String {
    eventually(WAIT, &format!("a log line with {parts:?}"), || async {
        herald
            .stderr()
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_owned)
    })
    .await
}

/// A CA and a server certificate for `127.0.0.1` signed by it (the tests' openssl CA).
pub struct Pki {
    _dir: tempfile::TempDir,
    ca: herald_tests::tls::Ca,
    pub server: herald_tests::tls::Issued,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = herald_tests::tls::Ca::new(dir.path(), "ca");
        let server = ca.server("server");
        Pki {
            _dir: dir,
            ca,
            server,
        }
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca.pem()).unwrap()
    }
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
