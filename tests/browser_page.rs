//! The page in headless Chromium (Debian's, driven by playwright-core): it loads without console
//! errors, lists languages and voices from the API, and obtains a token on Connect. The token
//! points at a LiveKit port nobody listens on, so the page must also explain that failure.

mod support;

use support::{TokenServer, settings};

#[tokio::test(flavor = "multi_thread")]
async fn the_page_works_in_chromium() {
    let closed_port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let livekit = format!("ws://127.0.0.1:{closed_port}");
    let server = TokenServer::start(settings(&[("LIVEKIT_URL", &livekit)])).await;
    let stdout = support::run_browser_check("page.mjs", &["--url".into(), server.url.clone()]).await;
    println!("{stdout}");
}
