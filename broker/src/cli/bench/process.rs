//! Child processes of a bench run: Herald itself and the no-op server, on free loopback ports.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};

pub struct Child {
    pub addr: SocketAddr,
    process: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Child {
    pub async fn noop() -> anyhow::Result<Child> {
        let dir = tempfile::tempdir()?;
        let mut process = tokio::process::Command::new(std::env::current_exe()?)
            .args(["bench-noop", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = process.stdout.take().context("noop stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await??
            .context("noop server exited")?;
        let addr = line.trim_start_matches("listening ").parse()?;
        Ok(Child {
            addr,
            process,
            _dir: dir,
        })
    }

    /// Herald with broker default/default and, given a subscriber, one trigger to it;
    /// `extra_args` are added to `herald serve`.
    pub async fn herald(
        bus: &str,
        subscriber: Option<SocketAddr>,
        extra_args: &[String],
    ) -> anyhow::Result<Child> {
        let mut manifest = String::from(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default, namespace: default}\n",
        );
        if let Some(sub) = subscriber {
            manifest.push_str(&format!(
                "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: bench-{:08x}, namespace: default}}\nspec:\n  broker: default\n  subscriber: {{uri: \"http://{sub}/\"}}\n",
                // A new consumer group per phase: a network bus may still hold the previous
                // phase's group (Kafka keeps a killed member until its session expires).
                fastrand::u32(..)
            ));
        }
        Self::herald_with(bus, &manifest, extra_args).await
    }

    /// Herald running `manifest`; `extra_args` are added to `herald serve`.
    pub async fn herald_with(
        bus: &str,
        manifest: &str,
        extra_args: &[String],
    ) -> anyhow::Result<Child> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("bench.yaml");
        tokio::fs::write(&config, manifest).await?;
        let port = free_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let process = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("-f")
            .arg(&config)
            .args(["--listen", &addr.to_string(), "--bus", bus])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra_args)
            .env("HERALD_LOG", "warn")
            .kill_on_drop(true)
            .spawn()?;
        let child = Child {
            addr,
            process,
            _dir: dir,
        };
        child.wait_ready().await?;
        Ok(child)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        for _ in 0..200 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(self.addr).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                s.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    .await?;
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await?;
                if buf.starts_with(b"HTTP/1.1 200") {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("herald did not become ready on {}", self.addr)
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "procfs is served from memory: no disk wait on the worker"
    )]
    fn status_kib(&self, field: &str) -> u64 {
        let Some(pid) = self.process.id() else {
            return 0;
        };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
