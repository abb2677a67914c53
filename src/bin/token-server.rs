//! The companion web server: issues LiveKit tokens to browsers and serves the page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use voice_agent::config::{Role, Settings, Sources, redact_url};
use voice_agent::profiles::ProfileStore;
use voice_agent::web::{self, AppState};

#[derive(Parser)]
#[command(version, about = "Issues LiveKit tokens to browsers and serves the page people talk to the agent through.")]
struct Args {
    /// TOML file with settings (lower-case names); `.env` and the environment override it.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::load(&Sources::from_process(args.config), Role::TokenServer)?;
    voice_agent::telemetry::init(settings.log_format, "info");
    voice_agent::telemetry::log_personal_data(settings.log_personal_data);
    let settings = Arc::new(settings);
    let http = reqwest::Client::builder().build().context("cannot build the HTTP client")?;
    let profiles = Arc::new(ProfileStore::from_settings(&settings, http)?);
    let address = SocketAddr::new(settings.web.host, settings.web.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (WEB_HOST, WEB_PORT)"))?;
    tracing::info!(%address, livekit = %redact_url(settings.livekit.public_url.as_str()), n8n = settings.n8n.base_url.is_some(), "token server listening");
    web::serve(listener, Arc::new(AppState::new(settings, profiles)), voice_agent::shutdown::signal())
        .await
        .context("token server failed")?;
    tracing::info!("token server stopped");
    Ok(())
}
