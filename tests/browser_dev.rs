//! The whole product on one machine, as the README's run command starts it: `agent-worker dev`
//! serves the page, its embedded LiveKit server and the worker, here with the provider mocks
//! standing in for Sarvam and Groq. A person in headless Chromium talks from the page and sees
//! the conversation: the greeting, their words, the agent's answer.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::agent::{GROQ_KEY, SARVAM_KEY};
use support::mocks::openai::{Flavour, MockOpenAi, Reply};
use support::mocks::sarvam::MockSarvam;
use support::repo_path;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// One sentence of the speech fixture after two seconds of silence, so the greeting is heard
/// before the caller speaks.
fn microphone_wav(dir: &std::path::Path) -> std::path::PathBuf {
    let speech = support::audio::speech_clip(0.9, 4.6);
    let path = dir.join("caller.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: speech.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).expect("a temporary WAV");
    for sample in std::iter::repeat_n(0, 2 * speech.sample_rate as usize).chain(speech.samples) {
        writer.write_sample(sample).expect("written");
    }
    writer.finalize().expect("written");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_talks_with_the_agent_through_the_page() {
    let sarvam = MockSarvam::start(SARVAM_KEY).await;
    let llm = MockOpenAi::start(Flavour::Groq, GROQ_KEY).await;
    let user = "What time do you open tomorrow?";
    let answer = "We open at nine in the morning. See you then!";
    let typed = "Do you open on Sundays?";
    let typed_answer = "Yes, from ten to two.";
    sarvam.stt_answers([user]);
    llm.replies([Reply::Text(answer.into()), Reply::Text(typed_answer.into())]);
    let (livekit, web, health) = (free_port(), free_port(), free_port());
    let spool = tempfile::tempdir().expect("a spool directory");
    let mut dev = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .args(["dev", "--livekit-bind", &format!("127.0.0.1:{livekit}")])
        .env("SPOOL_DIR", spool.path())
        .env("WEB_HOST", "127.0.0.1")
        .env("WEB_PORT", web.to_string())
        .env("HEALTH_HOST", "127.0.0.1")
        .env("HEALTH_PORT", health.to_string())
        .env("PROFILES_DIR", repo_path("profiles"))
        .env("WEB_DIR", repo_path("web"))
        .env("SARVAM_API_KEY", SARVAM_KEY)
        .env("SARVAM_BASE_URL", sarvam.base_url().as_str())
        .env("GROQ_API_KEY", GROQ_KEY)
        .env("GROQ_BASE_URL", llm.base_url().as_str())
        .env_remove("LIVEKIT_URL")
        .env_remove("LLM_PROVIDER")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent-worker dev runs");
    let started = Instant::now();
    loop {
        let ready = reqwest::get(format!("http://127.0.0.1:{health}/")).await.is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "agent-worker dev came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args = [
        "--url".into(),
        format!("http://127.0.0.1:{web}"),
        "--wav".into(),
        microphone_wav(dir.path()).display().to_string(),
        "--greeting".into(),
        "Hello! I'm Aria. How can I help you today?".into(),
        "--user".into(),
        user.into(),
        "--answer".into(),
        answer.into(),
        "--typed".into(),
        typed.into(),
        "--typed-answer".into(),
        typed_answer.into(),
    ];
    let stdout = support::run_browser_check("product.mjs", &args).await;
    println!("{stdout}");
    let asked = llm.records();
    assert_eq!(asked.len(), 2, "one answer to the spoken turn, one to the typed message");
    let last = asked[1].body["messages"].as_array().and_then(|m| m.last().cloned()).expect("messages");
    assert_eq!(last, serde_json::json!({"role": "user", "content": typed}), "the typed words reach the model");
    let _ = dev.kill().await;
}
