//! A real LiveKit client, livekit-client from npm in headless Chromium, talks to our dev server
//! and to `agent-worker connect --loopback`: it must hear its own speech come back and exchange
//! data both ways. This is the dev server's fidelity check against code no one here wrote.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::livekit::token;
use support::repo_path;
use tokio::io::{AsyncBufReadExt, BufReader};
use voice_agent::config::Secret;
use voice_agent::devserver::{DEV_API_KEY, DEV_API_SECRET, DevServer, DevServerConfig};
use voice_agent::livekit::peer::host_ips;

#[tokio::test(flavor = "multi_thread")]
async fn livekit_client_in_chromium_hears_the_loopback() {
    let config = DevServerConfig::new(DEV_API_KEY.into(), Secret::new(DEV_API_SECRET), host_ips());
    let server = DevServer::start("127.0.0.1:0".parse().expect("address"), config).await.expect("dev server starts");

    let mut loopback = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .args(["connect", "--room", "browser-loopback", "--identity", "echo", "--loopback", "--url", &server.url()])
        .env("LIVEKIT_API_KEY", DEV_API_KEY)
        .env("LIVEKIT_API_SECRET", DEV_API_SECRET)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("agent-worker runs");
    let mut lines = BufReader::new(loopback.stdout.take().expect("piped")).lines();
    let joined = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("joined") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(joined, Ok(true), "agent-worker connect --loopback joined the room");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let args = [
        "--livekit".into(),
        server.url(),
        "--token".into(),
        token("browser-loopback", "browser"),
        "--peer".into(),
        "echo".into(),
        "--wav".into(),
        repo_path("tests/fixtures/speech.wav").display().to_string(),
    ];
    let stdout = support::run_browser_check("loopback.mjs", &args).await;
    println!("{stdout}");
    let _ = loopback.kill().await;
    server.stop().await;
}
