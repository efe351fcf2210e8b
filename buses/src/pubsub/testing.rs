//! The official Pub/Sub emulator for tests: one per test, on a free loopback port, killed on
//! drop. It keeps everything in memory: a restart ([`PubsubEmulator::restart`]) starts empty,
//! like a fresh project.
//!
//! The launcher is `$PUBSUB_EMULATOR_BIN`, else the Google Cloud CLI's
//! (`google-cloud-cli-pubsub-emulator` package: `.../platform/pubsub-emulator/bin/
//! cloud-pubsub-emulator` under `/usr/lib/google-cloud-sdk` or `gcloud`'s SDK root on `PATH`).
//! When none exists the harness panics with how to install it: tests fail, they never skip.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::server_process::{self, block_briefly, free_port, is_executable, unique};

const LAUNCHER: &str = "platform/pubsub-emulator/bin/cloud-pubsub-emulator";

/// A running (or deliberately stopped) Pub/Sub emulator.
#[derive(Debug)]
pub struct PubsubEmulator {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    binary: PathBuf,
}

impl PubsubEmulator {
    pub fn start() -> Self {
        let mut emulator = PubsubEmulator {
            child: None,
            port: free_port(),
            log: std::env::temp_dir().join(format!(
                "herald-pubsub-{}-{}.log",
                std::process::id(),
                unique()
            )),
            binary: binary(),
        };
        emulator.launch();
        emulator
    }

    /// `127.0.0.1:{port}`, the value of `PUBSUB_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The operating-system process id of the running emulator (the JVM: the launcher
    /// `exec`s it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("emulator is running").id()
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the emulator and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// `SIGSTOP`: the process freezes with its connections open.
    pub fn pause(&self) {
        server_process::signal(self.pid(), "-STOP");
    }

    /// `SIGCONT` after [`PubsubEmulator::pause`].
    pub fn resume(&self) {
        server_process::signal(self.pid(), "-CONT");
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(&self.log).expect("creating the log");
        let child = Command::new(&self.binary)
            .arg("--host=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the emulator answers an HTTP request (`GET /` says `Ok`).
    fn wait_ready(&mut self) {
        for _ in 0..600 {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("pubsub emulator exited with {status}: {}", self.log());
            }
            if self.answers() {
                return;
            }
            block_briefly(Duration::from_millis(50));
        }
        panic!("pubsub emulator not ready within 30 s: {}", self.log());
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    }

    /// The emulator's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PubsubEmulator {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused JVM does not die of SIGKILL until it runs again on some kernels' views of
            // `wait`; continue it first (harmless when it runs).
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Where the emulator launcher is; panics with instructions when it is nowhere.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PUBSUB_EMULATOR_BIN") {
        let path = PathBuf::from(path);
        assert!(
            is_executable(&path),
            "PUBSUB_EMULATOR_BIN={} is not an executable file",
            path.display()
        );
        return path;
    }
    let sdk_roots = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|dir| dir.join("gcloud").is_file())
        .filter_map(|dir| std::fs::canonicalize(dir.join("gcloud")).ok())
        .filter_map(|gcloud| Some(gcloud.parent()?.parent()?.to_path_buf()));
    ["/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk"]
        .into_iter()
        .map(PathBuf::from)
        .chain(sdk_roots)
        .map(|root| root.join(LAUNCHER))
        .find(|path| is_executable(path))
        .unwrap_or_else(|| panic!("{}", install_hint()))
}

/// What to do when the emulator is missing.
pub fn install_hint() -> &'static str {
    "the Pub/Sub emulator was not found (PUBSUB_EMULATOR_BIN, /usr/lib/google-cloud-sdk, \
     gcloud's SDK): install the Google Cloud CLI's emulator (Debian/Ubuntu: `apt-get install \
     google-cloud-cli-pubsub-emulator` from Google's apt repository; elsewhere `gcloud \
     components install pubsub-emulator`) and Java 17, or set PUBSUB_EMULATOR_BIN to its \
     `cloud-pubsub-emulator` launcher"
}
