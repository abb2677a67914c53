//! What every benchmark needs around the thing it measures: a dev server of its own, free ports
//! and child processes that cannot outlive the measurement.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed when the measurement ends, however it ends.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `agent-worker dev-server` on a free loopback port and waits until it accepts
/// connections; returns the process and the URL clients join with.
pub async fn dev_server() -> (Reaped, String) {
    let port = free_port();
    let server = Reaped(
        Command::new(env!("CARGO_BIN_EXE_agent-worker"))
            .args(["dev-server", "--bind", &format!("127.0.0.1:{port}"), "--rtc-ip", "127.0.0.1"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("the dev server starts"),
    );
    wait_for_port(port).await;
    (server, format!("ws://127.0.0.1:{port}"))
}

/// `agent-worker start` as every benchmark runs it, not yet spawned.
pub struct WorkerCommand {
    pub command: Command,
    pub health: u16,
    /// Where its call records go; removed with the measurement.
    pub spool: tempfile::TempDir,
}

/// The worker against `url`, taking as many calls as it is given, with health on a free port
/// and a spool of its own; the caller adds providers and logging.
pub fn worker_command(url: &str) -> WorkerCommand {
    let health = free_port();
    let spool = tempfile::tempdir().expect("a spool directory");
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-worker"));
    command
        .arg("start")
        .env("SPOOL_DIR", spool.path())
        .env("LIVEKIT_URL", url)
        .env("LIVEKIT_API_KEY", "devkey")
        .env("LIVEKIT_API_SECRET", "secret")
        .env("HEALTH_HOST", "127.0.0.1")
        .env("HEALTH_PORT", health.to_string())
        .env("PROFILES_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/profiles"))
        .env("MAX_JOBS", "200")
        .env("LOAD_THRESHOLD", "1");
    WorkerCommand { command, health, spool }
}

/// Returns once the worker's health endpoint says it is registered with LiveKit; polled every
/// millisecond, since start-up itself is measured.
pub async fn registered(health: u16) {
    let health_url = format!("http://127.0.0.1:{health}/");
    while !reqwest::get(&health_url).await.is_ok_and(|r| r.status().is_success()) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

pub async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on port {port}");
}
