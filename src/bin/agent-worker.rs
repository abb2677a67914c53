//! The LiveKit agent worker, and the tools around it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use voice_agent::config::{Role, Settings, Sources};
use voice_agent::devserver::{self, DevServerConfig};
use voice_agent::livekit::room::{self, ConnectOptions};
use voice_agent::livekit::{loopback, peer, token};

#[derive(Parser)]
#[command(version, about = "A LiveKit voice-AI agent worker.")]
struct Args {
    /// TOML file with settings (lower-case names); `.env` and the environment override it.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a LiveKit-compatible server for tests and local development.
    DevServer {
        /// Address for signalling (HTTP and WebSocket).
        #[arg(long, default_value = "127.0.0.1:7880")]
        bind: SocketAddr,
        /// Address for WebRTC media, repeatable; default: every interface of this machine.
        #[arg(long = "rtc-ip", value_name = "IP")]
        rtc_ips: Vec<IpAddr>,
    },
    /// Join a room directly with a token signed from LIVEKIT_API_KEY and LIVEKIT_API_SECRET.
    Connect {
        #[arg(long)]
        room: String,
        /// Participant identity; default `connect-` and a random suffix.
        #[arg(long)]
        identity: Option<String>,
        /// Send back every audio track and data message received.
        #[arg(long)]
        loopback: bool,
        /// LiveKit server URL; default LIVEKIT_URL.
        #[arg(long)]
        url: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut sources = Sources::from_process(args.config);
    match args.command {
        Command::DevServer { bind, rtc_ips } => {
            let settings = Settings::load(&sources, Role::DevServer)?;
            voice_agent::telemetry::init(settings.log_format, "info");
            let rtc_ips = if rtc_ips.is_empty() { peer::host_ips() } else { rtc_ips };
            let config = DevServerConfig {
                api_key: settings.livekit.api_key,
                api_secret: settings.livekit.api_secret,
                rtc_ips: rtc_ips.clone(),
            };
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind} (--bind)"))?;
            tracing::info!(url = %format!("ws://{bind}"), api_key = %config.api_key, media = ?rtc_ips, "LiveKit dev server listening");
            devserver::serve(listener, config, voice_agent::shutdown::signal()).await.context("dev server failed")?;
            Ok(())
        }
        Command::Connect { room, identity, loopback: echo, url } => {
            if let Some(url) = url {
                sources.env.push(("LIVEKIT_URL".into(), url));
            }
            let settings = Settings::load(&sources, Role::Connect)?;
            voice_agent::telemetry::init(settings.log_format, "info");
            let identity = identity.unwrap_or_else(|| format!("connect-{:06x}", rand::random::<u32>() & 0xff_ffff));
            let livekit = &settings.livekit;
            let jwt = token::participant_token(
                &livekit.api_key,
                &livekit.api_secret,
                &room,
                &identity,
                Duration::from_secs(6 * 3600),
            )?;
            let (room_handle, mut events) = room::connect(livekit.url.as_str(), &jwt, ConnectOptions::default())
                .await
                .with_context(|| format!("cannot join room `{room}` at {}", livekit.url))?;
            tracing::info!(room = %room, identity = %identity, loopback = echo, "joined");
            if echo {
                let reason = loopback::run(room_handle, events, voice_agent::shutdown::signal()).await?;
                tracing::info!("left the room: {reason}");
                return Ok(());
            }
            let stop = voice_agent::shutdown::signal();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Some(room::RoomEvent::Disconnected { reason }) => bail!("the room ended: {reason}"),
                        Some(event) => loopback::log(&event),
                        None => bail!("the room ended"),
                    },
                    () = &mut stop => {
                        room_handle.disconnect().await;
                        return Ok(());
                    }
                }
            }
        }
    }
}
