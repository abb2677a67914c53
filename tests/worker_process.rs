//! `agent-worker start` as a process: health answers once registered; on SIGTERM it refuses new
//! calls, lets the running one finish and exits 0; a second signal exits at once.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::livekit::{dev_server, join_as_caller};
use tokio::process::{Child, Command};
use voice_agent::devserver::DevServer;
use voice_agent::livekit::room::{ParticipantKind, RoomEvent};

const LIMIT: Duration = Duration::from_secs(15);

struct WorkerProcess {
    child: Child,
    health: String,
    _spool: tempfile::TempDir,
}

async fn start_worker(server: &DevServer) -> WorkerProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let spool = tempfile::tempdir().expect("a spool directory");
    let child = Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .arg("start")
        .env("SPOOL_DIR", spool.path())
        .env("LIVEKIT_URL", server.url())
        .env("LIVEKIT_API_KEY", "devkey")
        .env("LIVEKIT_API_SECRET", "secret")
        .env("SARVAM_API_KEY", "unused")
        .env("GROQ_API_KEY", "unused")
        .env("OPENAI_API_KEY", "unused")
        .env("DEEPGRAM_API_KEY", "unused")
        .env("ELEVENLABS_API_KEY", "unused")
        // Asked for their models at start: unreachable endpoints are a warning, not a failure.
        .env("GROQ_BASE_URL", "http://127.0.0.1:9/openai/v1")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("HEALTH_HOST", "127.0.0.1")
        .env("HEALTH_PORT", port.to_string())
        .env("PROFILES_DIR", support::repo_path("profiles"))
        .env("DRAIN_TIMEOUT_SECS", "30")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent-worker runs");
    let worker = WorkerProcess { child, health: format!("http://127.0.0.1:{port}"), _spool: spool };
    let started = Instant::now();
    while worker.status().await != Some(200) {
        assert!(started.elapsed() < LIMIT, "the worker registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker
}

impl WorkerProcess {
    async fn status(&self) -> Option<u16> {
        reqwest::get(&self.health).await.ok().map(|r| r.status().as_u16())
    }

    async fn describe(&self) -> Value {
        reqwest::get(format!("{}/worker", self.health)).await.expect("health reachable").json().await.expect("JSON")
    }

    fn signal(&self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success());
    }

    async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the worker exited in time")
            .expect("wait works")
            .code()
    }
}

async fn agent_joins(events: &mut tokio::sync::mpsc::UnboundedReceiver<RoomEvent>, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Some(RoomEvent::ParticipantConnected(p)) if p.kind == ParticipantKind::Agent => return true,
                Some(_) => {}
                None => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_finishes_the_running_call_refuses_new_ones_and_exits_zero() {
    let server = dev_server().await;
    let mut worker = start_worker(&server).await;
    let (first, mut first_events) = join_as_caller(&server.url(), "before-drain").await;
    assert!(agent_joins(&mut first_events, LIMIT).await);

    worker.signal();
    let started = Instant::now();
    while worker.describe().await["status"] != "draining" {
        assert!(started.elapsed() < LIMIT, "the worker says it is draining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_second, mut second_events) = join_as_caller(&server.url(), "during-drain").await;
    assert!(!agent_joins(&mut second_events, Duration::from_secs(3)).await, "a draining worker takes no new call");
    let described = worker.describe().await;
    assert_eq!(described["jobCount"], 1, "the running call goes on: {described}");
    assert!(!first_events.is_closed());

    first.disconnect().await;
    assert_eq!(worker.exit_code(LIMIT).await, Some(0), "exits 0 once the call ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once() {
    let server = dev_server().await;
    let mut worker = start_worker(&server).await;
    let (_caller, mut events) = join_as_caller(&server.url(), "impatient").await;
    assert!(agent_joins(&mut events, LIMIT).await);
    worker.signal();
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.signal();
    let code = worker.exit_code(Duration::from_secs(3)).await;
    assert_eq!(code, Some(1), "exits without waiting for the call");
}

/// Runs `agent-worker start` with `env` until it exits; its exit code and what it printed.
async fn start_fails(env: &[(&str, String)]) -> (Option<i32>, String) {
    let server = dev_server().await;
    let spool = tempfile::tempdir().expect("a spool directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-worker"));
    command
        .arg("start")
        .env("SPOOL_DIR", spool.path())
        .env("LIVEKIT_URL", server.url())
        .env("LIVEKIT_API_KEY", "devkey")
        .env("LIVEKIT_API_SECRET", "secret")
        .env("HEALTH_HOST", "127.0.0.1")
        .env("HEALTH_PORT", port.to_string())
        .env("PROFILES_DIR", support::repo_path("profiles"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in ["SARVAM_API_KEY", "GROQ_API_KEY", "OPENAI_API_KEY", "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY"] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(LIMIT, command.output()).await.expect("it exits").expect("it runs");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), printed)
}

#[tokio::test]
async fn a_worker_does_not_start_without_the_keys_its_profiles_need_and_says_which() {
    let groq = support::mocks::openai::MockOpenAi::start(support::mocks::openai::Flavour::Groq, "groq-key").await;
    let env = [
        ("SARVAM_API_KEY", "sarvam-key".to_owned()),
        ("GROQ_API_KEY", "groq-key".to_owned()),
        ("GROQ_BASE_URL", groq.base_url().to_string()),
    ];
    let (code, printed) = start_fails(&env).await;
    assert_eq!(code, Some(1), "{printed}");
    assert!(printed.contains("DEEPGRAM_API_KEY is not set; profile `hotel-en` uses deepgram for stt"), "{printed}");
    assert!(printed.contains("ELEVENLABS_API_KEY is not set; profile `hotel-en` uses elevenlabs for tts"), "{printed}");
    assert!(
        printed.contains("OPENAI_API_KEY is not set; profile `insurance-hi` uses openai for stt, llm and tts"),
        "{printed}"
    );
    assert!(!printed.contains("SARVAM_API_KEY is not set"), "{printed}");
}

#[tokio::test]
async fn a_worker_does_not_start_with_a_chat_model_its_provider_does_not_serve() {
    let groq = support::mocks::openai::MockOpenAi::start(support::mocks::openai::Flavour::Groq, "groq-key").await;
    groq.models(["llama-3.1-8b-instant"]);
    let openai = support::mocks::openai::MockOpenAi::start(support::mocks::openai::Flavour::OpenAi, "openai-key").await;
    let mut env: Vec<(&str, String)> = ["SARVAM_API_KEY", "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY"]
        .into_iter()
        .map(|name| (name, "unused".to_owned()))
        .collect();
    env.extend([
        ("GROQ_API_KEY", "groq-key".to_owned()),
        ("GROQ_BASE_URL", groq.base_url().to_string()),
        ("OPENAI_API_KEY", "openai-key".to_owned()),
        ("OPENAI_BASE_URL", openai.base_url().to_string()),
    ]);
    let (code, printed) = start_fails(&env).await;
    assert_eq!(code, Some(1), "{printed}");
    assert!(printed.contains("groq does not list the model `openai/gpt-oss-120b` that profile"), "{printed}");
    assert!(printed.contains("`default`") && printed.contains("it lists llama-3.1-8b-instant"), "{printed}");
    assert!(!printed.contains("openai does not list"), "OpenAI serves gpt-4.1-mini: {printed}");
}
