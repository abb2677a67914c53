//! The whole product on one machine, as the README's run command starts it: `agent-worker dev`
//! serves the page, its embedded LiveKit server and the worker. A person in headless Chromium
//! connects from the page; the dispatched agent joins, says it is listening, and sends back
//! what it hears.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::repo_path;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_talks_to_the_agent_through_the_page() {
    let (livekit, web, health) = (free_port(), free_port(), free_port());
    let mut dev = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .args(["dev", "--livekit-bind", &format!("127.0.0.1:{livekit}")])
        .env("WEB_HOST", "127.0.0.1")
        .env("WEB_PORT", web.to_string())
        .env("HEALTH_HOST", "127.0.0.1")
        .env("HEALTH_PORT", health.to_string())
        .env("PROFILES_DIR", repo_path("profiles"))
        .env("WEB_DIR", repo_path("web"))
        .env_remove("LIVEKIT_URL")
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
    let args = [
        "--url".into(),
        format!("http://127.0.0.1:{web}"),
        "--wav".into(),
        repo_path("tests/fixtures/speech.wav").display().to_string(),
    ];
    let stdout = support::run_browser_check("product.mjs", &args).await;
    println!("{stdout}");
    let _ = dev.kill().await;
}
