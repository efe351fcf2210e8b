//! A real Kafka-protocol broker for tests: `tansu` (a Kafka-compatible broker written in Rust)
//! with in-memory storage, one per test, on a free loopback port, killed on drop. tansu must be
//! told its advertised port up front, so it cannot bind port 0: a start that loses its port to
//! another process (bind failure) is retried on another one.
//!
//! The binary is `$TANSU_BIN`, else `tansu` on `PATH`, else `~/.cargo/bin/tansu` (what
//! `scripts/ensure-tansu` installs with `cargo install tansu --features dynostore`). When none
//! exists the harness panics: tests that need Kafka fail, they never skip.
//!
//! The storage is memory: a killed (not paused) broker forgets everything, so restarts with
//! data are tested against librdkafka's mock cluster instead.

use crate::server_process::{self, block_briefly, free_port, is_executable, unique};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running (or deliberately stopped) `tansu broker`.
#[derive(Debug)]
pub struct Tansu {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    binary: PathBuf,
}

impl Tansu {
    /// Starts a broker with in-memory storage and waits until it accepts connections.
    pub fn start() -> Self {
        const ATTEMPTS: usize = 5;
        let binary = binary();
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let log = std::env::temp_dir().join(format!(
                "herald-tansu-{}-{port}-{}.log",
                std::process::id(),
                unique()
            ));
            let mut broker = Tansu {
                child: None,
                port,
                log,
                binary: binary.clone(),
            };
            match broker.launch() {
                Ok(()) => return broker,
                Err(log) if attempt < ATTEMPTS && lost_its_port(&log) => continue,
                Err(log) => panic!("tansu did not start: {log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `127.0.0.1:{port}`: the bootstrap servers.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Settings for a bus on this broker: defaults, plus one record per produce batch. tansu 0.6
    /// answers a fetch only with batches that *start* at or after the fetch offset, so a group
    /// whose committed offset lies inside a batch (acknowledged out of order) would skip the rest
    /// of that batch; Kafka returns the batch holding the offset. (The mock-cluster suite runs
    /// with ordinary batching.)
    pub fn config(&self) -> super::KafkaConfig {
        let mut config = super::KafkaConfig::new(self.brokers());
        config
            .extra
            .insert("producer.batch.num.messages".into(), "1".into());
        config
    }

    /// The operating-system process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is running").id()
    }

    /// `kill -9`; with memory storage everything stored is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SIGSTOP`: the process freezes with its connections open (a hung or very slow broker).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// `SIGCONT` after [`Tansu::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        server_process::signal(self.pid(), signal);
    }

    /// Starts the process and waits until it accepts connections; `Err(log)` if it exited.
    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(&self.log).expect("creating the broker's log");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&self.binary)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..300 {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("exited with {status}: {}", self.log()));
            }
            // Whoever answers, the log must not say tansu lost the port to them.
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
                && !lost_its_port(&self.log())
            {
                return Ok(());
            }
            block_briefly(Duration::from_millis(50));
        }
        panic!(
            "tansu not accepting connections within 15 s: {}",
            self.log()
        );
    }

    /// The broker's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Whether a failed start's log says the port was taken meanwhile.
fn lost_its_port(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("AddrInUse")
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused process cannot die until it is continued.
            let _ = Command::new("kill")
                .args(["-CONT", &self.pid().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Where the `tansu` binary is; panics with instructions when it is nowhere.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "TANSU_BIN={} is not a file", path.display());
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path
        .into_iter()
        .chain(cargo_home.map(|c| c.join("bin")))
        .map(|dir| dir.join("tansu"))
        .find(|path| is_executable(path))
        .unwrap_or_else(|| {
            panic!(
                "tansu not found (TANSU_BIN, PATH, ~/.cargo/bin): run scripts/ensure-tansu, which \
                 installs it with `cargo install tansu --version '^0.6' --features dynostore \
                 --locked`"
            )
        })
}

/// Produces one keyless record with raw `headers` and `value` to `topic`, bypassing Herald's
/// codec: for tests of what Herald does with records it did not write. One record per
/// producer batch (tansu 0.6 cannot fetch from inside a batch) and librdkafka's default keyless
/// partitioner, the partition Herald's keyless events use, so order with them holds.
pub async fn produce_raw(brokers: &str, topic: &str, headers: &[(&str, &str)], value: &[u8]) {
    use rdkafka::ClientConfig;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2")
        .set("batch.num.messages", "1")
        .create()
        .expect("a producer");
    let headers = headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value.as_bytes()),
        })
    });
    let record = FutureRecord::<(), [u8]>::to(topic)
        .headers(headers)
        .payload(value);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .expect("produced");
}
