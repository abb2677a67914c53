//! The LiveKit agent worker, and the tools around it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use voice_agent::config::{Role, Settings, Sources, redact_url};
use voice_agent::devserver::{self, DevServer, DevServerConfig};
use voice_agent::livekit::room::{self, ConnectOptions};
use voice_agent::livekit::{loopback, peer, token};
use voice_agent::metrics::{self, Exposition};
use voice_agent::pipeline::PipelineSession;
use voice_agent::profiles::ProfileStore;
use voice_agent::providers::startup;
use voice_agent::records::{Outbox, OutboxConfig, Tally, new_worker_id};
use voice_agent::shared::{CallEntry, RegistryTiming, Shared};
use voice_agent::web::{self, AppState};
use voice_agent::worker::{self as agents, AgentSession, LoopbackSession, Worker, WorkerConfig};

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
    /// Run the worker: register with LiveKit (LIVEKIT_URL) and take calls.
    Start,
    /// Run everything on this machine: a LiveKit dev server (unless LIVEKIT_URL is set), the
    /// token server with its page, and the worker; open http://localhost:3000 and talk.
    Dev {
        /// Address of the embedded LiveKit server (ignored when LIVEKIT_URL is set).
        #[arg(long, default_value = "127.0.0.1:7880")]
        livekit_bind: SocketAddr,
        /// Media addresses of the embedded server, repeatable; default: every interface.
        #[arg(long = "rtc-ip", value_name = "IP")]
        rtc_ips: Vec<IpAddr>,
    },
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
    /// Delivers the call records waiting in SPOOL_DIR to n8n, then exits (0 once the spool is empty).
    Deliver,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut sources = Sources::from_process(args.config);
    match args.command {
        Command::Start => {
            let settings = Settings::load(&sources, Role::Worker)?;
            voice_agent::telemetry::init(settings.log_format, "info");
            voice_agent::telemetry::log_personal_data(settings.log_personal_data);
            let settings = Arc::new(settings);
            let mut registry = metrics::Registry::new();
            let profiles = ProfileStore::from_settings(&settings, reqwest::Client::new())?;
            let profiles = Arc::new(profiles.with_metrics(registry.profiles()));
            let worker_id = new_worker_id();
            let outbox = open_outbox(&settings, &worker_id).await?;
            registry.outbox(outbox.clone());
            let session = session(&settings, &profiles, outbox.clone(), Strictness::Start).await?;
            let worker = worker(&settings, profiles.clone(), settings.worker.drain_timeout, session)
                .with_metrics(registry.worker());
            let sharing = share_state(&settings, worker_id, profiles, worker.snapshot());
            let health = bind(
                SocketAddr::new(settings.worker.health_host, settings.worker.health_port),
                "HEALTH_HOST, HEALTH_PORT",
            )
            .await?;
            let result = run_worker(worker, health, registry.finish()).await;
            sharing.finish().await;
            outbox.close(Instant::now() + DELIVER_STOP_GRACE).await;
            result
        }
        Command::Dev { livekit_bind, rtc_ips } => dev(&sources, livekit_bind, rtc_ips).await,
        Command::Deliver => deliver(&sources).await,
        Command::DevServer { bind, rtc_ips } => {
            let settings = Settings::load(&sources, Role::DevServer)?;
            voice_agent::telemetry::init(settings.log_format, "info");
            voice_agent::telemetry::log_personal_data(settings.log_personal_data);
            let rtc_ips = if rtc_ips.is_empty() { peer::host_ips() } else { rtc_ips };
            let config = DevServerConfig::new(settings.livekit.api_key, settings.livekit.api_secret, rtc_ips.clone());
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
            voice_agent::telemetry::log_personal_data(settings.log_personal_data);
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
                .with_context(|| format!("cannot join room `{room}` at {}", redact_url(livekit.url.as_str())))?;
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

/// How long an interrupted `deliver` lets a POST in flight finish, so that its record is not sent
/// again next time.
const DELIVER_STOP_GRACE: Duration = Duration::from_secs(2);

/// Sends what the spool holds until it is empty; Ctrl-C or SIGTERM leaves the rest on disk, which
/// is not a failure: nothing is lost.
async fn deliver(sources: &Sources) -> anyhow::Result<()> {
    let settings = Settings::load(sources, Role::Deliver)?;
    voice_agent::telemetry::init(settings.log_format, "info");
    voice_agent::telemetry::log_personal_data(settings.log_personal_data);
    let n8n = &settings.n8n;
    let url = n8n.lead_capture_url().context("N8N_BASE_URL and N8N_WEBHOOK_LEAD_CAPTURE do not make a URL")?;
    let dir = n8n.spool_dir.display().to_string();
    let config = OutboxConfig {
        keep_delivered: n8n.keep_delivered,
        ..OutboxConfig::shared(n8n.spool_dir.clone(), new_worker_id(), Some(url), n8n.webhook_secret.clone())
    };
    let outbox =
        Outbox::start(config).await.with_context(|| format!("cannot open the call record spool {dir} (SPOOL_DIR)"))?;
    tracing::info!(waiting = outbox.pending(), dir = %dir, "delivering call records");
    tokio::select! {
        () = outbox.drained() => {}
        () = voice_agent::shutdown::signal() => tracing::info!("stopping: the call records not yet delivered stay in {dir}"),
    }
    outbox.close(Instant::now() + DELIVER_STOP_GRACE).await;
    let Tally { delivered, dead } = outbox.tally();
    let left = outbox.pending();
    if dead > 0 {
        tracing::warn!(dead, "n8n refused {dead} call records; they are in {dir}/workers/*/dead with n8n's answers");
    }
    tracing::info!(delivered, dead, left, "call record delivery finished");
    Ok(())
}

/// In `dev`, Ctrl-C should not wait minutes for calls to end.
const DEV_DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

async fn dev(sources: &Sources, livekit_bind: SocketAddr, rtc_ips: Vec<IpAddr>) -> anyhow::Result<()> {
    let mut settings = Settings::load(sources, Role::Dev)?;
    voice_agent::telemetry::init(settings.log_format, "info,voice_agent=debug");
    voice_agent::telemetry::log_personal_data(settings.log_personal_data);
    if !settings.livekit.external {
        let url = url::Url::parse(&format!("ws://{livekit_bind}")).context("--livekit-bind is not an address")?;
        if settings.livekit.public_url == settings.livekit.url {
            settings.livekit.public_url = url.clone();
        }
        settings.livekit.url = url;
    }
    let settings = Arc::new(settings);
    let embedded = if settings.livekit.external {
        tracing::info!(url = %redact_url(settings.livekit.url.as_str()), "using the LiveKit server at LIVEKIT_URL");
        None
    } else {
        let rtc_ips = if rtc_ips.is_empty() { peer::host_ips() } else { rtc_ips };
        let config =
            DevServerConfig::new(settings.livekit.api_key.clone(), settings.livekit.api_secret.clone(), rtc_ips);
        let server = DevServer::start(livekit_bind, config)
            .await
            .with_context(|| format!("cannot start the LiveKit dev server on {livekit_bind}"))?;
        tracing::info!(url = %server.url(), "LiveKit dev server listening");
        Some(server)
    };
    // One registry for the whole process: the health port's /metrics shows the token server's
    // series too, so `dev` needs no METRICS_PORT.
    let mut registry = metrics::Registry::new();
    let profiles = ProfileStore::from_settings(&settings, reqwest::Client::new())?;
    let profiles = Arc::new(profiles.with_metrics(registry.profiles()));
    let web_address = SocketAddr::new(settings.web.host, settings.web.port);
    let web_listener = bind(web_address, "WEB_HOST, WEB_PORT").await?;
    let (web_stop, web_stopped) = tokio::sync::oneshot::channel::<()>();
    let web = tokio::spawn(web::serve(
        web_listener,
        Arc::new(AppState::new(settings.clone(), profiles.clone()).with_metrics(registry.token_server())),
        async move {
            let _ = web_stopped.await;
        },
    ));
    tracing::info!("open http://localhost:{} and talk", settings.web.port);
    let health =
        bind(SocketAddr::new(settings.worker.health_host, settings.worker.health_port), "HEALTH_HOST, HEALTH_PORT")
            .await?;
    let worker_id = new_worker_id();
    let outbox = open_outbox(&settings, &worker_id).await?;
    registry.outbox(outbox.clone());
    let session = session(&settings, &profiles, outbox.clone(), Strictness::Dev).await?;
    let worker = worker(&settings, profiles.clone(), settings.worker.drain_timeout.min(DEV_DRAIN_TIMEOUT), session)
        .with_metrics(registry.worker());
    let sharing = share_state(&settings, worker_id, profiles, worker.snapshot());
    let result = run_worker(worker, health, registry.finish()).await;
    sharing.finish().await;
    outbox.close(Instant::now() + DELIVER_STOP_GRACE).await;
    let _ = web_stop.send(());
    web.await.context("the token server task failed")?.context("the token server failed")?;
    if let Some(server) = embedded {
        server.stop().await;
    }
    result
}

/// The spool of call records, delivering what earlier runs left in it. Without N8N_BASE_URL the
/// records wait there (`agent-worker deliver` sends them once n8n is configured).
/// The records live in this worker's own sub-spool of SPOOL_DIR, named by `worker_id`.
async fn open_outbox(settings: &Settings, worker_id: &str) -> anyhow::Result<Outbox> {
    let n8n = &settings.n8n;
    let config = OutboxConfig {
        keep_delivered: n8n.keep_delivered,
        ..OutboxConfig::shared(
            n8n.spool_dir.clone(),
            worker_id.to_owned(),
            n8n.lead_capture_url(),
            n8n.webhook_secret.clone(),
        )
    };
    Outbox::start(config)
        .await
        .with_context(|| format!("cannot open the call record spool {} (SPOOL_DIR)", n8n.spool_dir.display()))
}

/// The worker's part in the shared state; its tasks end when it is finished or dropped.
struct Sharing {
    tasks: JoinSet<()>,
    /// Tells the registry task to remove this worker's entries and end.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// How long a stopping worker gives Redis to remove its registry entries (they expire anyway).
const REGISTRY_CLEANUP: Duration = Duration::from_secs(2);

impl Sharing {
    /// Removes this worker's registry entries at once rather than at their expiry, then ends the tasks.
    async fn finish(mut self) {
        if let Some(stop) = self.stop.take()
            && stop.send(()).is_ok()
        {
            // The registry task ends by itself once its entries are removed; the follower never does.
            let _ = tokio::time::timeout(REGISTRY_CLEANUP, self.tasks.join_next()).await;
        }
        self.tasks.shutdown().await;
    }
}

/// With REDIS_URL: follows the profile invalidations any instance publishes, and keeps this
/// worker's live calls in the shared registry.
fn share_state(
    settings: &Settings,
    worker_id: String,
    profiles: Arc<ProfileStore>,
    snapshot: agents::SharedSnapshot,
) -> Sharing {
    let mut tasks = JoinSet::new();
    let Some(url) = &settings.redis_url else { return Sharing { tasks, stop: None } };
    let shared = match Shared::new(url) {
        Ok(shared) => shared,
        Err(error) => {
            tracing::error!("{error}; this worker works alone");
            return Sharing { tasks, stop: None };
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = chrono::Utc::now().to_rfc3339();
    let id = worker_id.clone();
    let calls = move || {
        let snapshot = snapshot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let state = if snapshot.status == "draining" { "draining" } else { "running" };
        let calls = snapshot
            .jobs
            .iter()
            .map(|job| CallEntry {
                worker: id.clone(),
                call_id: job.id.clone(),
                room: job.room.clone(),
                agent: job.agent.clone(),
                started: job.started_at.to_rfc3339(),
                state: state.to_owned(),
            })
            .collect();
        (snapshot.status.to_owned(), calls)
    };
    let stopped = async move {
        let _ = stopped.await;
    };
    tasks.spawn(shared.clone().keep_registry(worker_id, started, RegistryTiming::default(), calls, stopped));
    tasks.spawn(shared.follow_invalidations(profiles));
    Sharing { tasks, stop: Some(stop) }
}

fn worker(
    settings: &Settings,
    profiles: Arc<ProfileStore>,
    drain_timeout: Duration,
    session: Arc<dyn AgentSession>,
) -> Worker {
    let config = WorkerConfig {
        livekit_url: settings.livekit.url.to_string(),
        api_key: settings.livekit.api_key.clone(),
        api_secret: settings.livekit.api_secret.clone(),
        limits: agents::Limits {
            agent_name: settings.agent_name.clone(),
            max_jobs: settings.worker.max_jobs,
            load_threshold: settings.worker.load_threshold,
        },
        drain_timeout,
    };
    Worker::new(config, profiles, session)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// `start`: every local profile must be able to run, or the worker does not start.
    Start,
    /// `dev`: problems are warnings; without the default profile's keys the agent echoes.
    Dev,
}

/// The voice agent, once the providers of every local profile (each can be dispatched) have
/// their keys and the chat models they name exist; in `dev` without the default profile's
/// keys, an agent that echoes, so the page and the room can still be tried.
async fn session(
    settings: &Settings,
    profiles: &ProfileStore,
    outbox: Outbox,
    strictness: Strictness,
) -> anyhow::Result<Arc<dyn AgentSession>> {
    let providers = &settings.providers;
    let local: Vec<_> = profiles.local_profiles().map(|profile| (profile.id.as_str(), profile.chains())).collect();
    let missing = startup::keys(local.iter().copied(), providers);
    if strictness == Strictness::Dev {
        let default_missing = local
            .iter()
            .filter(|(id, _)| *id == DEFAULT_PROFILE)
            .flat_map(|(id, chains)| voice_agent::providers::missing_keys(*chains, providers, id))
            .collect::<Vec<_>>();
        if !default_missing.is_empty() {
            tracing::warn!(
                "{}: the agent will only echo what it hears; set the keys in .env to talk with it",
                default_missing.join("; ")
            );
            return Ok(Arc::new(LoopbackSession));
        }
        for problem in &missing {
            tracing::warn!("{problem}; calls to that agent will fail");
        }
    }
    let http = reqwest::Client::new();
    let ready: Vec<_> = local
        .iter()
        .copied()
        .filter(|(id, chains)| voice_agent::providers::missing_keys(*chains, providers, id).is_empty())
        .collect();
    let readiness = startup::check_models(ready, providers, &http).await;
    for warning in &readiness.warnings {
        tracing::warn!("{warning}");
    }
    let mut problems = readiness.problems;
    if strictness == Strictness::Start {
        problems.splice(0..0, missing);
        if !problems.is_empty() {
            bail!("the agent profiles' providers are not ready:\n  - {}", problems.join("\n  - "));
        }
    } else {
        for problem in &problems {
            tracing::warn!("{problem}");
        }
    }
    let n8n = &settings.n8n;
    Ok(Arc::new(
        PipelineSession::new(providers.clone(), http, outbox)
            .with_n8n(n8n.base_url.clone(), n8n.webhook_secret.clone()),
    ))
}

/// The profile a call gets when it names no agent.
const DEFAULT_PROFILE: &str = "default";

/// Runs the worker with its health endpoint (and `/metrics` from `metrics`) until it has
/// drained. The first SIGTERM or SIGINT drains; a second exits at once.
async fn run_worker(worker: Worker, health: TcpListener, metrics: Exposition) -> anyhow::Result<()> {
    let (health_stop, health_stopped) = tokio::sync::oneshot::channel::<()>();
    let health = tokio::spawn(agents::serve_health(health, worker.snapshot(), metrics, async move {
        let _ = health_stopped.await;
    }));
    let (drain, draining) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        voice_agent::shutdown::signal().await;
        let _ = drain.send(());
        voice_agent::shutdown::signal().await;
        tracing::warn!("second signal: exiting without waiting for calls");
        std::process::exit(1);
    });
    worker
        .run(async move {
            let _ = draining.await;
        })
        .await;
    let _ = health_stop.send(());
    health.await.context("the health endpoint task failed")?.context("the health endpoint failed")?;
    Ok(())
}

async fn bind(address: SocketAddr, settings: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address} ({settings})"))
}
