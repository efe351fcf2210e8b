//! Interoperability with an independent implementation: the official CloudEvents Python SDK
//! publishes to Herald (binary and structured mode) and receives Herald's deliveries.
//! Needs `python3` with `cloudevents` (tests/interop/requirements.txt; `scripts/test`
//! installs it) — the test fails, never skips, without them.
//!
//! Found on the way: the Python SDK 2.2 sends header values raw and does not percent-decode
//! what it receives, so a space Herald encodes as `%20` (binding §3.1.3.2) reaches it encoded.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use herald_tests::Herald;
use herald_tests::manifests::{broker, trigger, yaml};

fn interop(script: &str) -> String {
    format!("{}/interop/{script}", env!("CARGO_MANIFEST_DIR"))
}

struct Python(std::process::Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_publishes_and_subscribes_through_herald() {
    let port = herald_tests::process::free_port();
    let mut subscriber = Python(
        Command::new("python3")
            .args([&interop("subscriber.py"), &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs"),
    );
    let mut lines = BufReader::new(subscriber.0.stdout.take().unwrap()).lines();
    let first = lines.next().expect("subscriber prints").expect("utf-8");
    assert_eq!(
        first, "listening",
        "is `cloudevents` installed? pip install -r tests/interop/requirements.txt"
    );
    let docs = [
        broker("default"),
        trigger("python", "default", &format!("http://127.0.0.1:{port}/")),
    ];
    let herald = Herald::start("embedded", &yaml(&docs)).await;

    let count = 20;
    let output = tokio::task::spawn_blocking({
        let url = herald.broker_url("default", "default");
        move || {
            Command::new("python3")
                .args([&interop("publisher.py"), &url, &count.to_string()])
                .output()
                .expect("python3 runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "publisher failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| *l == "202").count(),
        count,
        "{stdout}"
    );

    let received = tokio::task::spawn_blocking(move || {
        let mut events = Vec::new();
        for line in lines.by_ref().take(count) {
            events.push(serde_json::from_str::<serde_json::Value>(&line.unwrap()).unwrap());
        }
        events
    });
    let mut events = tokio::time::timeout(Duration::from_secs(20), received)
        .await
        .expect("all delivered")
        .unwrap();
    events.sort_by_key(|e| e["data"]["n"].as_i64());
    for (n, event) in events.iter().enumerate() {
        let attributes = &event["attributes"];
        assert_eq!(attributes["id"], format!("py-{n}"));
        assert_eq!(attributes["type"], "dev.herald.interop");
        assert_eq!(attributes["source"], "/interop/python");
        // Herald percent-encodes the space as the HTTP binding requires; the Python SDK
        // (2.2) does not decode header values, so it shows the encoded form.
        let subject = attributes["subject"].as_str().unwrap();
        let decoded = percent_encoding::percent_decode_str(subject)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, format!("item {n}"), "raw {subject:?}");
        assert_eq!(attributes["interopext"], format!("value-{n}"));
        assert!(
            attributes["knativearrivaltime"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        assert_eq!(event["data"], serde_json::json!({"n": n, "text": "hello"}));
    }
}
