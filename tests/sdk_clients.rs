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

use support::livekit::token;
use support::repo_path;

/// Runs an SDK's check script against a fresh room and fails with its output when it fails.
async fn check(room: &str, program: PathBuf, script: &str) {
    let (server, mut loopback) = support::livekit::room_with_loopback(room).await;
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
