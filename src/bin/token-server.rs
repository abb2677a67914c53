//! The companion web server: issues LiveKit tokens to browsers and serves the page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use voice_agent::config::{Role, Settings, Sources, redact_url};
use voice_agent::metrics;
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
    let mut registry = metrics::Registry::new();
    let profiles = Arc::new(ProfileStore::from_settings(&settings, http)?.with_metrics(registry.profiles()));
    let state = AppState::new(settings.clone(), profiles).with_metrics(registry.token_server());
    let address = SocketAddr::new(settings.web.host, settings.web.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (WEB_HOST, WEB_PORT)"))?;
    // Apart from the public port, so Prometheus needs no admin token and the page's visitors
    // cannot read it; loopback unless METRICS_HOST says otherwise.
    let metrics_address = SocketAddr::new(settings.web.metrics_host, settings.web.metrics_port);
    let metrics_listener = tokio::net::TcpListener::bind(metrics_address)
        .await
        .with_context(|| format!("cannot listen on {metrics_address} (METRICS_HOST, METRICS_PORT)"))?;
    tracing::info!(%address, metrics = %metrics_address, livekit = %redact_url(settings.livekit.public_url.as_str()), n8n = settings.n8n.base_url.is_some(), "token server listening");
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_server = tokio::spawn(metrics::serve(metrics_listener, registry.finish(), async move {
        let _ = metrics_stopped.await;
    }));
    let served = web::serve(listener, Arc::new(state), voice_agent::shutdown::signal()).await;
    let _ = metrics_stop.send(());
    metrics_server.await.context("the metrics endpoint task failed")?;
    served.context("token server failed")?;
    tracing::info!("token server stopped");
    Ok(())
}
