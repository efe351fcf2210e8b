//! Helpers shared by the test harnesses that run a real server process (`nats-server`, tansu).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free loopback port")
        .port()
}

/// A name part unique to this moment, for temporary directories.
pub(crate) fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Sends `signal` (`-STOP`, `-CONT`, ...) to `pid`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {signal} failed");
}

/// Server start-up happens outside any runtime's hot path (test set-up); a short blocking wait
/// keeps the harnesses usable from sync and async code alike.
#[allow(clippy::disallowed_methods)]
pub(crate) fn block_briefly(d: Duration) {
    std::thread::sleep(d);
}
