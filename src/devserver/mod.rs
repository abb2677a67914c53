//! A LiveKit-compatible server for tests and local development (`agent-worker dev-server`).
//!
//! It speaks the classic dual-PeerConnection protocol on `/rtc` as LiveKit does: tokens are
//! checked before the WebSocket upgrade (401/400 with a reason, also on `/rtc/validate`); rooms
//! are created on first join and keep the creating token's roomConfig; each participant gets a
//! subscriber offer carrying the server's data channels; every published audio track is
//! forwarded to every other participant, with renegotiation as people come and go; data follows
//! LiveKit's sequence and identity rules. It is ICE-lite like LiveKit Cloud, so clients must be
//! the controlling ICE agent.
//!
//! Agent workers register on `/agent` (a token with `video.agent`). When a person's join creates
//! a room, a job is dispatched for each of the token's `roomConfig.agents`, or one for workers
//! registered without an agent name: availability is asked worker by worker (weighted by spare
//! load, 10 s each), the first to accept gets an agent token and the assignment, and its jobs are
//! terminated when the room closes (the departure timeout after the last person leaves; agents
//! do not keep a room open).
//!
//! `/rtc/v1` (single-PeerConnection mode) answers 404, as servers before it existed did; current
//! livekit-client releases and LiveKit's Rust-core SDKs (Python, Node) try it first and fall back
//! to `/rtc`. Resuming a session is not supported: a resume is answered with a RECONNECT leave
//! and clients rejoin in full. Media is audio only: video sections of an offer are rejected
//! (validly, keeping a format) and video tracks refused.
//!
//! LiveKit's server API answers on `/twirp/` (`server_api.rs`): `RoomService` ListRooms,
//! ListParticipants, RemoveParticipant, UpdateParticipant and DeleteRoom, and
//! `AgentDispatchService` CreateDispatch, ListDispatch and DeleteDispatch, with LiveKit's grants
//! and Twirp's encodings and errors, so operators and n8n workflows manage calls on it exactly as
//! on LiveKit Cloud.
//!
//! One client can make it hold only so much ([`Limits`] and `limits.rs`): signalling to a client
//! that does not read is bounded and then closed, every queue is bounded, and connections, rooms
//! and participants are capped. Listening beyond loopback with the well-known dev secret is
//! warned about loudly at start-up.

mod answer;
mod auth;
mod data_rules;
mod dispatch;
mod dispatches;
mod ids;
mod limits;
mod room;
mod server_api;
mod session;
mod twirp;
mod worker_session;
mod writer;

pub use limits::Limits;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use livekit_api::access_token::{AccessToken, Claims};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::cors::{Any, CorsLayer};

use crate::config::Secret;
use room::Rooms;
use session::JoinOptions;

/// `livekit-server --dev` uses this key pair; so do we, so its users' tokens work unchanged.
pub const DEV_API_KEY: &str = "devkey";
/// The secret of [`DEV_API_KEY`]: well known, so the server refuses to listen beyond loopback
/// with it.
pub const DEV_API_SECRET: &str = "secret";

/// How a dev server runs: its key pair, media addresses, timings and bounds.
#[derive(Debug, Clone)]
pub struct DevServerConfig {
    /// The API key tokens must be signed for (LIVEKIT_API_KEY).
    pub api_key: String,
    /// The secret tokens are signed with (LIVEKIT_API_SECRET).
    pub api_secret: Secret,
    /// Addresses WebRTC binds to and offers as ICE candidates.
    pub rtc_ips: Vec<IpAddr>,
    /// How long a worker has to answer an availability request before the next one is asked;
    /// LiveKit waits 10 s.
    pub availability_timeout: Duration,
    /// The URL put in job assignments; `None`, as LiveKit's open-source server does, tells
    /// workers to join with their own LIVEKIT_URL (LiveKit Cloud sends one).
    pub assignment_url: Option<String>,
    /// What one client can make the server hold.
    pub limits: Limits,
}

impl DevServerConfig {
    /// LiveKit's own timings, with the given keys and media addresses.
    pub fn new(api_key: String, api_secret: Secret, rtc_ips: Vec<IpAddr>) -> Self {
        Self {
            api_key,
            api_secret,
            rtc_ips,
            availability_timeout: Duration::from_secs(10),
            assignment_url: None,
            limits: Limits::default(),
        }
    }
}

struct Server {
    config: Arc<DevServerConfig>,
    rooms: Arc<Rooms>,
    dispatcher: dispatch::Dispatcher,
    /// One permit per signalling connection (participants and agent workers).
    connections: Arc<Semaphore>,
}

/// A running dev server, for tests and for `agent-worker dev`.
pub struct DevServer {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl DevServer {
    /// Listens on `bind` (port 0 picks a free one) and serves until [`DevServer::stop`].
    pub async fn start(bind: SocketAddr, config: DevServerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(Self { address, stop: Some(stop), task })
    }

    /// The WebSocket URL clients connect to.
    pub fn url(&self) -> String {
        format!("ws://{}", self.address)
    }

    /// The address it listens on (with the port picked when bound to 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections and waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: DevServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(warning) =
        listener.local_addr().ok().and_then(|a| limits::exposure_warning(a, config.api_secret.expose()))
    {
        tracing::warn!("{warning}");
    }
    let config = Arc::new(config);
    let dispatcher = dispatch::Dispatcher::start(config.clone());
    let rooms = Arc::new(Rooms::new(dispatcher.clone(), config.limits.clone()));
    let connections = Arc::new(Semaphore::new(config.limits.max_connections));
    let server = Arc::new(Server { config, rooms, dispatcher, connections });
    // Browsers ask /rtc/validate with fetch from the page's origin, so every origin is allowed,
    // as LiveKit allows it.
    let cors = CorsLayer::new().allow_origin(Any).allow_methods(Any).allow_headers(Any);
    let app = Router::new()
        .route("/", get(|| async { "OK" }))
        .route("/rtc", get(rtc))
        .route("/rtc/validate", get(validate))
        .route("/rtc/v1", get(single_pc))
        .route("/rtc/v1/validate", get(single_pc))
        .route("/agent", get(agent))
        .route("/twirp/{*route}", any(server_api::handle))
        .layer(cors)
        .with_state(server);
    // Signalling messages are small and latency-bound, as LiveKit's server sends them.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot disable Nagle's algorithm: {e}");
        }
    });
    let http = crate::net::Limits { max_body_bytes: limits::MAX_API_BODY_BYTES, ..crate::net::Limits::default() };
    crate::net::serve(listener, app, http, shutdown).await;
    Ok(())
}

type Params = Query<HashMap<String, String>>;

async fn rtc(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Query(query): Params,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let claims = match admit(&server, &headers, &query) {
        Ok(claims) => claims,
        Err(refusal) => {
            tracing::info!(status = refusal.status.as_u16(), "join refused: {}", refusal.reason);
            return (refusal.status, refusal.reason).into_response();
        }
    };
    let Ok(upgrade) = upgrade else {
        return (StatusCode::NOT_FOUND, "/rtc takes WebSocket connections").into_response();
    };
    let permit = match admit_connection(&server) {
        Ok(permit) => permit,
        Err(full) => return full.into_response(),
    };
    // LiveKit's Rust SDK before protocol 10 cannot decode `track_subscribed`; LiveKit holds it
    // back from those, and so do we.
    let old_rust = query.get("sdk").is_some_and(|sdk| sdk == "rust")
        && query.get("protocol").and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| p < 10);
    let options = JoinOptions {
        auto_subscribe: query.get("auto_subscribe").is_none_or(|v| v != "0" && v != "false"),
        resume: query.get("reconnect").is_some_and(|v| v == "1" || v == "true"),
        track_subscribed_event: !old_rust,
    };
    let config = server.config.clone();
    let rooms = server.rooms.clone();
    upgrade.max_message_size(signal_frame_limit()).on_upgrade(move |ws| async move {
        session::run(ws, config, rooms, claims, options).await;
        drop(permit);
    })
}

/// A permit for one more signalling connection, or the 503 a full LiveKit node answers.
fn admit_connection(server: &Server) -> Result<OwnedSemaphorePermit, (StatusCode, String)> {
    server.connections.clone().try_acquire_owned().map_err(|_| {
        let limit = server.config.limits.max_connections;
        tracing::warn!("connection refused: the dev server serves at most {limit} signalling connections");
        let why = format!("the dev server is serving its maximum of {limit} connections; try again later");
        (StatusCode::SERVICE_UNAVAILABLE, why)
    })
}

async fn agent(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Query(query): Params,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let admitted = auth::token(&headers, &query)
        .and_then(|token| auth::verify(token, &server.config.api_key, &server.config.api_secret))
        .and_then(|claims| auth::check_agent(&claims));
    if let Err(refusal) = admitted {
        tracing::info!(status = refusal.status.as_u16(), "agent worker refused: {}", refusal.reason);
        return (refusal.status, refusal.reason).into_response();
    }
    let Ok(upgrade) = upgrade else {
        return (StatusCode::NOT_FOUND, "/agent takes WebSocket connections").into_response();
    };
    let permit = match admit_connection(&server) {
        Ok(permit) => permit,
        Err(full) => return full.into_response(),
    };
    let dispatcher = server.dispatcher.clone();
    let send_timeout = server.config.limits.send_timeout;
    upgrade.max_message_size(signal_frame_limit()).on_upgrade(move |ws| async move {
        worker_session::run(ws, dispatcher, send_timeout).await;
        drop(permit);
    })
}

async fn validate(State(server): State<Arc<Server>>, headers: HeaderMap, Query(query): Params) -> Response {
    match admit(&server, &headers, &query) {
        Ok(_) => (StatusCode::OK, "success").into_response(),
        Err(refusal) => (refusal.status, refusal.reason).into_response(),
    }
}

async fn single_pc() -> Response {
    (StatusCode::NOT_FOUND, "single peer connection mode (/rtc/v1) is not supported; use /rtc").into_response()
}

fn admit(server: &Server, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Claims, auth::Refusal> {
    let token = auth::token(headers, query)?;
    let claims = auth::verify(token, &server.config.api_key, &server.config.api_secret)?;
    auth::check_join(&claims)?;
    if query.contains_key("join_request") {
        return Err(auth::Refusal {
            status: StatusCode::BAD_REQUEST,
            reason: "join_request (single peer connection mode) is not supported; use /rtc".into(),
        });
    }
    Ok(claims)
}

fn signal_frame_limit() -> usize {
    crate::livekit::signal::frames::MAX_FRAME_BYTES
}

/// A fresh token with the same grants, as LiveKit sends after a join, valid for ten minutes.
fn refresh_token(config: &DevServerConfig, claims: &Claims) -> String {
    let mut token = AccessToken::with_api_key(&config.api_key, config.api_secret.expose())
        .with_identity(&claims.sub)
        .with_name(&claims.name)
        .with_kind(&claims.kind)
        .with_metadata(&claims.metadata)
        .with_attributes(claims.attributes.clone())
        .with_grants(claims.video.clone())
        .with_ttl(Duration::from_secs(600));
    if let Some(config) = &claims.room_config {
        token = token.with_room_config(config.clone());
    }
    token.to_jwt().unwrap_or_default()
}
