//! The page in headless Chromium (Debian's, driven by playwright-core): it loads without console
//! errors, lists languages and voices from the API, and obtains a token on Connect. The token
//! points at a LiveKit port nobody listens on, so the page must also explain that failure.

mod support;

use std::process::Stdio;

use support::{TokenServer, repo_path, settings};

#[tokio::test(flavor = "multi_thread")]
async fn the_page_works_in_chromium() {
    let closed_port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let livekit = format!("ws://127.0.0.1:{closed_port}");
    let server = TokenServer::start(settings(&[("LIVEKIT_URL", &livekit)])).await;
    let script = repo_path("tests/browser/page.mjs");
    assert!(
        repo_path("tests/browser/node_modules/playwright-core").is_dir()
            && repo_path("web/node_modules/livekit-client").is_dir(),
        "npm packages missing: run scripts/setup.sh"
    );
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .args(["--url", &server.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (scripts/setup.sh installs what the browser test needs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser checks failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    println!("{stdout}");
}
