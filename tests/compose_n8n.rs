//! The compose file's n8n entrypoint (`deploy/n8n-first-start.sh`) on a real n8n 1.123, the
//! version of the compose file's image: its first start imports and activates the shipped
//! workflows, so the agent-config webhook answers with no one opening the editor; a later start
//! imports nothing again (workflows edited meanwhile stay as they are) and the webhooks still
//! answer. `scripts/n8n.sh install` provides n8n (about ten minutes the first time).

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// n8n starts and activates the workflows in 10–20 s on 2 cores.
const STARTUP_LIMIT: Duration = Duration::from_secs(180);
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);
const FIRST_START: &str = "first start: importing and activating";

fn n8n_bin_dir() -> PathBuf {
    let output = Command::new(support::repo_path("scripts/n8n.sh"))
        .arg("install")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("scripts/n8n.sh cannot run: {e}"));
    assert!(output.status.success(), "scripts/n8n.sh install failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let dir = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().trim().to_owned();
    PathBuf::from(dir).join("node_modules/.bin")
}

struct Entrypoint {
    process: Child,
}

impl Entrypoint {
    /// The entrypoint as compose runs it (its environment from docker-compose.yml), with the
    /// user folder, port and workflows of this test; returns once the agent-config webhook
    /// answers a shipped profile.
    async fn start(bin: &Path, scratch: &Path, port: u16, log: &Path) -> Self {
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let log_file = std::fs::File::create(log).expect("log file");
        let process = Command::new("/bin/sh")
            .arg(support::repo_path("deploy/n8n-first-start.sh"))
            .env("PATH", path)
            .env("N8N_USER_FOLDER", scratch.join("home"))
            .env("N8N_PORT", port.to_string())
            .env("N8N_LISTEN_ADDRESS", "127.0.0.1")
            .env("N8N_DIAGNOSTICS_ENABLED", "false")
            .env("N8N_PERSONALIZATION_ENABLED", "false")
            .env("N8N_VERSION_NOTIFICATIONS_ENABLED", "false")
            .env("N8N_TEMPLATES_ENABLED", "false")
            .env("N8N_SECURE_COOKIE", "false")
            .env("N8N_BLOCK_ENV_ACCESS_IN_NODE", "false")
            .env("LEAD_CAPTURE_DIR", scratch.join("home/.n8n/leads"))
            .env("CLINIC_BOOKINGS_DIR", scratch.join("home/.n8n/bookings"))
            .env("WORKFLOWS_DIR", support::repo_path("n8n"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .expect("sh runs");
        let mut started = Self { process };
        let url = format!("http://127.0.0.1:{port}/webhook/agent-config?agent_id=clinic-hi");
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if let Some(status) = started.process.try_wait().expect("its status") {
                panic!("the entrypoint exited ({status}); its log:\n{}", read(log));
            }
            if let Ok(answer) = reqwest::get(&url).await
                && answer.status() == reqwest::StatusCode::OK
            {
                let body = answer.text().await.expect("an answer");
                // n8n answers 200 with this page while it starts; the webhook comes after.
                if !body.contains("n8n is starting up") {
                    assert!(body.contains("clinic-hi"), "the shipped profile: {body}");
                    return started;
                }
            }
            assert!(Instant::now() < deadline, "the webhook never answered; the log:\n{}", read(log));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM to n8n and its children, as `docker compose stop` does; waits for the exit.
    async fn stop(mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + SHUTDOWN_LIMIT;
        while self.process.try_wait().expect("its status").is_none() {
            if Instant::now() > deadline {
                self.signal("KILL");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let group = format!("-{}", self.process.id());
        let _ = Command::new("kill").args([&format!("-{signal}"), "--", &group]).status();
    }
}

impl Drop for Entrypoint {
    fn drop(&mut self) {
        if self.process.try_wait().ok().flatten().is_none() {
            self.signal("KILL");
            let _ = self.process.wait();
        }
    }
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[tokio::test]
async fn the_first_start_imports_and_activates_the_workflows_and_a_restart_keeps_them() {
    let bin = tokio::task::spawn_blocking(n8n_bin_dir).await.expect("installed");
    let scratch = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();

    let first_log = scratch.path().join("first.log");
    let first = Entrypoint::start(&bin, scratch.path(), port, &first_log).await;
    assert!(read(&first_log).contains(FIRST_START), "{}", read(&first_log));
    assert!(scratch.path().join("home/.n8n/leads").is_dir(), "the lead-capture workflow's folder is made");
    first.stop().await;

    let second_log = scratch.path().join("second.log");
    let second = Entrypoint::start(&bin, scratch.path(), port, &second_log).await;
    assert!(!read(&second_log).contains(FIRST_START), "imported only once: {}", read(&second_log));
    second.stop().await;
}
