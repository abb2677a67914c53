//! The dev server against LiveKit's own client SDKs in their current releases, pinned by
//! `scripts/setup.sh`: the Python SDK (PyPI `livekit`, in `tests/sdk/python/.venv`) and the Node
//! SDK (`@livekit/rtc-node`, in `tests/sdk/node`), both on LiveKit's Rust core and libwebrtc.
//! Each joins, publishes speech, is told its track has a subscriber (`track_subscribed`, which
//! LiveKit Agents waits for before it speaks), hears its speech come back through
//! `agent-worker connect --loopback` and exchanges data both ways. livekit-client in Chromium
//! does the same in `browser_loopback.rs`.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use support::livekit::token;
use support::repo_path;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use voice_agent::config::Secret;
use voice_agent::devserver::{DEV_API_KEY, DEV_API_SECRET, DevServer, DevServerConfig};
use voice_agent::livekit::peer::host_ips;

/// A dev server with `agent-worker connect --loopback` (identity `echo`) already in `room`.
async fn room_with_loopback(room: &str) -> (DevServer, Child) {
    let config = DevServerConfig::new(DEV_API_KEY.into(), Secret::new(DEV_API_SECRET), host_ips());
    let server = DevServer::start("127.0.0.1:0".parse().expect("address"), config).await.expect("dev server starts");
    let mut loopback = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .args(["connect", "--room", room, "--identity", "echo", "--loopback", "--url", &server.url()])
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
    (server, loopback)
}

/// Runs an SDK's check script against a fresh room and fails with its output when it fails.
async fn check(room: &str, program: PathBuf, script: &str) {
    let (server, mut loopback) = room_with_loopback(room).await;
    let output = tokio::process::Command::new(&program)
        .arg(repo_path(script))
        .args(["--url", &server.url(), "--token", &token(room, "sdk-client"), "--peer", "echo", "--wav"])
        .arg(repo_path("tests/fixtures/speech.wav"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .expect("the check runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    println!("{stdout}");
    let _ = loopback.kill().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn livekit_python_sdk_hears_the_loopback() {
    let python = repo_path("tests/sdk/python/.venv/bin/python");
    assert!(python.exists(), "LiveKit's Python SDK is missing: run scripts/setup.sh");
    check("python-sdk", python, "tests/sdk/python/check.py").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn livekit_node_sdk_hears_the_loopback() {
    let sdk = repo_path("tests/sdk/node/node_modules/@livekit/rtc-node");
    assert!(sdk.is_dir(), "LiveKit's Node SDK is missing: run scripts/setup.sh");
    check("node-sdk", PathBuf::from("node"), "tests/sdk/node/check.mjs").await;
}
