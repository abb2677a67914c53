//! Shared test helpers: servers on loopback ports, and settings built through the real loader.

#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]

pub mod agent;
pub mod audio;
pub mod livekit;
pub mod mocks;
pub mod n8n;
pub mod noise;
pub mod redis_server;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use voice_agent::config::{Role, Settings, Sources};
use voice_agent::profiles::ProfileStore;
use voice_agent::web::{self, AppState};

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Token-server settings from the given environment, on top of a valid base.
pub fn settings(overrides: &[(&str, &str)]) -> Settings {
    let profiles = repo_path("profiles");
    let web_dir = repo_path("web");
    let mut env = vec![
        ("LIVEKIT_URL".to_owned(), "ws://127.0.0.1:7880".to_owned()),
        ("LIVEKIT_API_KEY".to_owned(), "devkey".to_owned()),
        ("LIVEKIT_API_SECRET".to_owned(), "secret".to_owned()),
        ("PROFILES_DIR".to_owned(), profiles.display().to_string()),
        ("WEB_DIR".to_owned(), web_dir.display().to_string()),
    ];
    env.extend(overrides.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Settings::load(&Sources { env, ..Sources::default() }, Role::TokenServer).unwrap_or_else(|e| panic!("{e}"))
}

pub struct TokenServer {
    pub url: String,
    pub state: Arc<AppState>,
    task: JoinHandle<()>,
}

impl TokenServer {
    pub async fn start(settings: Settings) -> Self {
        let settings = Arc::new(settings);
        let profiles = ProfileStore::from_settings(&settings, reqwest::Client::new()).unwrap_or_else(|e| panic!("{e}"));
        Self::start_with(settings, Arc::new(profiles)).await
    }

    pub async fn start_with(settings: Arc<Settings>, profiles: Arc<ProfileStore>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
        let address: SocketAddr = listener.local_addr().expect("bound");
        let state = Arc::new(AppState::new(settings, profiles));
        let task = tokio::spawn(web::serve(listener, state.clone(), std::future::pending()).map_unit());
        Self { url: format!("http://{address}"), state, task }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

trait MapUnit {
    fn map_unit(self) -> impl std::future::Future<Output = ()> + Send;
}

impl<F: std::future::Future<Output = std::io::Result<()>> + Send> MapUnit for F {
    async fn map_unit(self) {
        if let Err(e) = self.await {
            panic!("server failed: {e}");
        }
    }
}

/// Runs a check script from `tests/browser` with Node (it drives Debian's Chromium) and fails
/// the test with the script's output when the check fails; returns what it printed.
pub async fn run_browser_check(script: &str, args: &[String]) -> String {
    assert!(
        repo_path("tests/browser/node_modules/playwright-core").is_dir()
            && repo_path("web/node_modules/livekit-client").is_dir(),
        "npm packages missing: run scripts/setup.sh"
    );
    let output = tokio::process::Command::new("node")
        .arg(repo_path("tests/browser").join(script))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (scripts/setup.sh installs what the browser tests need)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    stdout
}
