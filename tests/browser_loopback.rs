//! A real LiveKit client, livekit-client from npm in headless Chromium, talks to our dev server
//! and to `agent-worker connect --loopback`: it must hear its own speech come back and exchange
//! data both ways. This is the dev server's fidelity check against code no one here wrote.

mod support;

use support::livekit::token;
use support::repo_path;

#[tokio::test(flavor = "multi_thread")]
async fn livekit_client_in_chromium_hears_the_loopback() {
    let (server, mut loopback) = support::livekit::room_with_loopback("browser-loopback").await;

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
