//! `agent-worker start` as a process: health answers once registered; on SIGTERM it refuses new
//! calls, lets the running one finish and exits 0; a second signal exits at once; killed with -9
//! mid-call, the call's record is delivered by the next worker to start on the same SPOOL_DIR,
//! while a worker still alive beside it keeps its own records; the killed worker's entries leave
//! the shared call registry (a real redis-server) after their expiry.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::agent::{GROQ_KEY, SARVAM_KEY, caller_joining};
use support::livekit::{dev_server, join_as_caller};
use support::mocks::n8n_leads::MockLeads;
use support::mocks::openai::{Flavour, MockOpenAi, Reply};
use support::mocks::sarvam::MockSarvam;
use support::redis_server::RedisServer;
use tokio::process::{Child, Command};
use voice_agent::devserver::DevServer;
use voice_agent::livekit::room::{ParticipantKind, RoomEvent};

const LIMIT: Duration = Duration::from_secs(15);

struct WorkerProcess {
    child: Child,
    health: String,
    _spool: Option<tempfile::TempDir>,
}

async fn start_worker(server: &DevServer) -> WorkerProcess {
    let spool = tempfile::tempdir().expect("a spool directory");
    let mut worker = start_worker_with(server, spool.path(), &[]).await;
    worker._spool = Some(spool);
    worker
}

/// A worker keeping records in `spool`, with `env` on top of the usual settings.
async fn start_worker_with(server: &DevServer, spool: &Path, env: &[(&str, String)]) -> WorkerProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let child = Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .arg("start")
        .env("SPOOL_DIR", spool)
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
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent-worker runs");
    let worker = WorkerProcess { child, health: format!("http://127.0.0.1:{port}"), _spool: None };
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
    let redis = RedisServer::start().await;
    let spool = tempfile::tempdir().expect("a spool directory");
    let mut worker = start_worker_with(&server, spool.path(), &[("REDIS_URL", redis.url())]).await;
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
    let calls = format!("voice-agent:call:{}:*", sub_spools(spool.path())[0]);
    let started = Instant::now();
    loop {
        let entries = redis.keys(&calls).await;
        let state = match entries.as_slice() {
            [key] => redis.query(&["GET", key]).await.unwrap_or_default(),
            _ => String::new(),
        };
        if state.contains(r#""state":"draining""#) && state.contains(r#""room":"before-drain""#) {
            break;
        }
        assert!(started.elapsed() < LIMIT, "the registry shows the call of a draining worker: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    first.disconnect().await;
    assert_eq!(worker.exit_code(LIMIT).await, Some(0), "exits 0 once the call ended");
    assert!(redis.keys("voice-agent:*").await.is_empty(), "a worker that stops cleanly leaves the registry at once");
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

/// The workers' sub-spools in the shared `spool`, by name.
fn sub_spools(spool: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spool.join("workers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The call checkpoints in every worker's sub-spool of `spool`.
fn checkpoints(spool: &Path) -> Vec<std::path::PathBuf> {
    sub_spools(spool)
        .iter()
        .flat_map(|worker| std::fs::read_dir(spool.join("workers").join(worker).join("active")).into_iter().flatten())
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".json"))
        .map(|entry| entry.path())
        .collect()
}

/// The checkpoint of the one call running with records in `spool`, once it holds `check` (a
/// write still under its temporary name does not count: a kill now would leave the one before).
async fn checkpoint(spool: &Path, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let found = checkpoints(spool)
            .into_iter()
            .filter_map(|path| std::fs::read(path).ok())
            .filter_map(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .find(|checkpoint| check(checkpoint));
        if let Some(found) = found {
            return found;
        }
        assert!(started.elapsed() < LIMIT, "no checkpoint of the call in {}", spool.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_off_by_kill_9_is_delivered_once_by_the_next_start_and_a_living_worker_keeps_its_own() {
    let server = dev_server().await;
    let sarvam = MockSarvam::start(SARVAM_KEY).await;
    let llm = MockOpenAi::start(Flavour::Groq, GROQ_KEY).await;
    let leads = MockLeads::start([]).await;
    let redis = RedisServer::start().await;
    let spool = tempfile::tempdir().expect("a spool directory");
    let env = [
        ("REDIS_URL", redis.url()),
        ("SARVAM_API_KEY", SARVAM_KEY.to_owned()),
        ("SARVAM_BASE_URL", sarvam.base_url().to_string()),
        ("GROQ_API_KEY", GROQ_KEY.to_owned()),
        ("GROQ_BASE_URL", llm.base_url().to_string()),
        ("N8N_BASE_URL", leads.base_url().to_string()),
    ];
    let mut first = start_worker_with(&server, spool.path(), &env).await;

    let said = "I'm Asha Rao, my number is 98765 43210.";
    let answer = "Thank you, Asha. Which of our projects interests you?";
    sarvam.stt_answers([said]);
    llm.replies([
        Reply::ToolCalls(vec![("capture_lead".into(), r#"{"name":"Asha Rao","phone":"98765 43210"}"#.into())]),
        Reply::Text(answer.into()),
    ]);
    let mut caller = caller_joining(&server.url(), "killed-mid-call", r#"{"agentId":"realestate-en"}"#).await;
    caller.open_microphone().await;
    let greeting = caller.agent_said(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, answer);
    let saved = checkpoint(spool.path(), |c| c["transcript"].as_array().is_some_and(|t| t.len() == 3)).await;
    assert_eq!(saved["end_reason"], "worker_lost", "a checkpoint is the record as it would go if the worker died");
    let first_spool = sub_spools(spool.path());
    assert_eq!(first_spool.len(), 1, "the worker keeps its records in its own sub-spool");

    // A second worker on the same volume (under another agent name, so it takes no job of this
    // test) starts while the first lives: it leaves the first's sub-spool and running call alone.
    let witness_env: Vec<_> = env.iter().cloned().chain([("AGENT_NAME", "witness".to_owned())]).collect();
    let _witness = start_worker_with(&server, spool.path(), &witness_env).await;
    let both = sub_spools(spool.path());
    assert_eq!(both.len(), 2, "each worker has its own sub-spool: {both:?}");
    assert!(both.contains(&first_spool[0]), "the living worker's sub-spool is not taken: {both:?}");
    assert_eq!(checkpoints(spool.path()).len(), 1, "the running call's checkpoint stays where it is");
    assert!(leads.received().is_empty(), "nothing of a living worker's call is delivered");
    let call_keys = format!("voice-agent:call:{}:*", first_spool[0]);
    let started = Instant::now();
    let registered = loop {
        if let [key] = redis.keys(&call_keys).await.as_slice() {
            break redis.query(&["GET", key]).await.expect("Redis answers");
        }
        assert!(started.elapsed() < LIMIT, "the live call is in the shared registry");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let registered: Value = serde_json::from_str(&registered).expect("JSON");
    assert_eq!(
        (&registered["worker"], &registered["room"], &registered["agent"], &registered["state"]),
        (&json!(first_spool[0]), &json!("killed-mid-call"), &json!("realestate-en"), &json!("running"))
    );
    assert_eq!(redis.keys("voice-agent:worker:*").await.len(), 2, "both workers are registered");

    first.child.start_kill().expect("SIGKILL sent");
    first.child.wait().await.expect("the worker is gone");
    caller.room.disconnect().await;
    assert!(leads.received().is_empty(), "the killed worker sent nothing");

    let _second = start_worker_with(&server, spool.path(), &env).await;
    let received = leads.until(1, LIMIT).await;
    assert_eq!(received.len(), 1, "delivered once");
    let record: Value = serde_json::from_slice(&received[0].body).expect("the record is JSON");
    assert_eq!(record["end_reason"], "worker_lost");
    assert_eq!(record["agent_id"], "realestate-en");
    assert_eq!(record["room"], "killed-mid-call");
    assert_eq!(record["caller"], json!({"identity": "caller", "name": "Caller"}));
    assert_eq!(record["lead"], json!({"name": "Asha Rao", "phone": "9876543210"}), "the lead captured before the kill");
    let transcript: Vec<(&str, &str)> = record["transcript"]
        .as_array()
        .expect("a transcript")
        .iter()
        .map(|l| (l["speaker"].as_str().unwrap_or(""), l["text"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(transcript, [("agent", greeting.as_str()), ("caller", said), ("agent", answer)], "up to the last turn");
    let call_id = record["call_id"].as_str().expect("a call id");
    assert_eq!(received[0].header("idempotency-key"), Some(call_id));
    assert!(checkpoints(spool.path()).is_empty(), "no checkpoint is left to deliver twice");
    let now = sub_spools(spool.path());
    assert_eq!(now.len(), 2, "the witness's and the new worker's: {now:?}");
    assert!(!now.contains(&first_spool[0]), "the killed worker's emptied sub-spool is removed: {now:?}");
    let gone = format!("voice-agent:*:{}*", first_spool[0]);
    let killed = Instant::now();
    while !redis.keys(&gone).await.is_empty() {
        assert!(killed.elapsed() < Duration::from_secs(20), "the killed worker's entries expire within 15 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(redis.keys("voice-agent:worker:*").await.len(), 2, "the living workers stay registered");
}
