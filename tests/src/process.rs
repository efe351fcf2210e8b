//! One `herald serve` child process with its own temp dir, killed on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::binary::herald_bin;
use crate::client::Client;

/// How long `herald serve` may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM'd herald may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a [`Herald`] beyond bus and manifests.
#[derive(Debug, Clone, Default)]
pub struct HeraldOptions {
    /// Extra `herald serve` flags, e.g. `["--max-body", "1024"]`.
    pub args: Vec<String>,
    /// A fixed port (default: a free one picked at start).
    pub port: Option<u16>,
    /// Extra environment variables, e.g. `KUBECONFIG`.
    pub env: Vec<(String, String)>,
    /// A descriptor limit (soft and hard `RLIMIT_NOFILE`) set with `prlimit` before herald
    /// starts (`prlimit` execs herald, so [`Herald::pid`] stays herald's).
    pub nofile: Option<u64>,
}

/// A running `herald serve -f <manifests> --listen 127.0.0.1:PORT --bus BUS --data-dir <tmp>`.
#[derive(Debug)]
pub struct Herald {
    dir: TempDir,
    manifest: PathBuf,
    data_dir: PathBuf,
    bus: String,
    port: u16,
    options: HeraldOptions,
    child: Option<Child>,
    runs: usize,
}

/// A free loopback port (bound, then released: a small race another process could win).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl Herald {
    /// Starts herald on `bus` (`embedded` or `memory`) with `manifests` (YAML; empty: no
    /// `-f`) and waits until it is ready.
    pub async fn start(bus: &str, manifests: &str) -> Herald {
        Self::start_with(bus, manifests, HeraldOptions::default()).await
    }

    pub async fn start_with(bus: &str, manifests: &str, options: HeraldOptions) -> Herald {
        let dir = tempfile::Builder::new()
            .prefix("herald-bb-")
            .tempdir()
            .expect("temp dir");
        let manifest = dir.path().join("manifests.yaml");
        std::fs::write(&manifest, manifests).expect("write manifests");
        let data_dir = dir.path().join("data");
        let port = options.port.unwrap_or_else(free_port);
        let mut herald = Herald {
            dir,
            manifest,
            data_dir,
            bus: bus.to_owned(),
            port,
            options,
            child: None,
            runs: 0,
        };
        herald.spawn_and_wait().await;
        herald
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The ingress URL of broker `namespace/name`.
    pub fn broker_url(&self, namespace: &str, name: &str) -> String {
        self.url(&format!("/{namespace}/{name}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The `-f` file (hot-reload tests edit it in place).
    pub fn manifest_path(&self) -> &Path {
        &self.manifest
    }

    /// Replaces the manifests used by the next [`Herald::restart`].
    pub fn rewrite_manifests(&self, manifests: &str) {
        std::fs::write(&self.manifest, manifests).expect("write manifests");
    }

    /// Everything herald wrote to stderr, all runs.
    pub fn stderr(&self) -> String {
        let mut out = String::new();
        for run in 1..=self.runs {
            let text = std::fs::read_to_string(self.stderr_path(run)).unwrap_or_default();
            out.push_str(&format!("----- herald stderr, run {run} -----\n{text}"));
        }
        out
    }

    fn stderr_path(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("stderr-{run}.log"))
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "herald is already running");
        self.runs += 1;
        let stderr = File::create(self.stderr_path(self.runs)).expect("stderr file");
        let log = std::env::var("HERALD_TEST_LOG").unwrap_or_else(|_| "info".to_owned());
        let mut command = match self.options.nofile {
            Some(n) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={n}:{n}")).arg(herald_bin());
                command
            }
            None => Command::new(herald_bin()),
        };
        command.arg("serve");
        // Empty manifests: no -f at all, so herald runs its built-in broker default/default.
        if std::fs::metadata(&self.manifest).is_ok_and(|m| m.len() > 0) {
            command.arg("-f").arg(&self.manifest);
        }
        let child = command
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--bus")
            .arg(&self.bus)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.options.args)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .env("HERALD_LOG", log)
            .env_remove("HERALD_LISTEN")
            .env_remove("HERALD_BUS")
            .env_remove("HERALD_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn herald");
        self.child = Some(child);
    }

    /// Spawns and waits for `/readyz`; retries the spawn when the port is taken.
    async fn spawn_and_wait(&mut self) {
        let client = Client::new();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let first_start = self.runs == 0;
        self.spawn();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let stderr = self.stderr();
                let port_taken = stderr.contains("binding") || stderr.contains("in use");
                if port_taken && tokio::time::Instant::now() < deadline {
                    // Another process won the race for the released port: a first start (no
                    // URL handed out yet, no port asked for) moves to a new one; a restart
                    // keeps its port, which its clients know, and waits for it.
                    if first_start && self.options.port.is_none() {
                        self.port = free_port();
                    } else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    self.spawn();
                    continue;
                }
                panic!("herald exited with {status} before it was ready\n{stderr}");
            }
            let ready = client
                .get_with_timeout(&self.url("/readyz"), Duration::from_millis(500))
                .await
                .is_ok_and(|r| r.status == 200);
            if ready {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "herald was not ready within {READY_TIMEOUT:?}\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("herald is running").id()
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for the exit; returns the status and how long it took.
    pub async fn terminate(&mut self) -> (ExitStatus, Duration) {
        self.signal("-TERM").await
    }

    /// Sends `signal` (as `kill` spells it, e.g. `-INT`), then waits (bounded) for the exit.
    pub async fn signal(&mut self, signal: &str) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("herald is running");
        let started = tokio::time::Instant::now();
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} failed");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > EXIT_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "herald did not exit within {EXIT_TIMEOUT:?} of kill {signal}\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts herald again on the same data dir and port (killing it first if it runs).
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn_and_wait().await;
    }

    /// Starts herald again after [`Herald::terminate`] (same port, data and manifests).
    pub async fn start_again(&mut self) {
        self.spawn_and_wait().await;
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() || std::env::var_os("HERALD_TEST_SHOW_STDERR").is_some() {
            eprintln!("{}", self.stderr());
        }
    }
}

/// What a finished `herald` CLI run printed.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `herald ARGS...` to completion; kills it and panics after `timeout`.
pub async fn run_cli(args: &[&str], timeout: Duration) -> CliOutput {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(herald_bin())
        .args(args)
        .current_dir(dir.path())
        .env_remove("HERALD_LISTEN")
        .env_remove("HERALD_BUS")
        .env_remove("HERALD_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn herald");
    let started = tokio::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`herald {}` did not exit within {timeout:?}\nstderr:\n{}",
                args.join(" "),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    CliOutput {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}
