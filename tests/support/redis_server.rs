//! A real `redis-server` (Debian's, installed by scripts/setup.sh) on a free loopback port, with
//! its own empty directory; it can be killed and started again on the same port.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

const START_WITHIN: Duration = Duration::from_secs(10);

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut server = Self { port, dir: tempfile::tempdir().expect("a directory for Redis"), child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port and returns once it answers.
    pub async fn restart(&mut self) {
        assert!(
            std::path::Path::new("/usr/bin/redis-server").exists(),
            "redis-server is missing: run scripts/setup.sh"
        );
        let child = Command::new("/usr/bin/redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        let started = Instant::now();
        while self.query(&["PING"]).await.as_deref() != Some("PONG") {
            assert!(started.elapsed() < START_WITHIN, "redis-server answered on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills it at once, as a crash or a lost network would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL sent");
            child.wait().await.expect("redis-server is gone");
        }
    }

    /// The answer to one command as text (integers as digits), or `None` when Redis is down.
    pub async fn query(&self, args: &[&str]) -> Option<String> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut connection =
            tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection()).await.ok()?.ok()?;
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        let value: redis::Value = command.query_async(&mut connection).await.ok()?;
        Some(match value {
            redis::Value::SimpleString(text) => text,
            redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            redis::Value::Int(n) => n.to_string(),
            redis::Value::Nil => String::new(),
            other => format!("{other:?}"),
        })
    }

    /// The keys matching `pattern`, sorted.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let client = redis::Client::open(self.url()).expect("a valid URL");
        let mut connection = client.get_multiplexed_async_connection().await.expect("Redis answers");
        let mut keys: Vec<String> =
            redis::cmd("KEYS").arg(pattern).query_async(&mut connection).await.expect("KEYS answers");
        keys.sort();
        keys
    }
}
