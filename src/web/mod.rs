//! The token server: the Python system's HTTP API (`/api/token`, `/api/languages`,
//! `/api/config/{agentId}`, `/api/invalidate-cache`, `/health`) plus `/api/agents`, the page
//! people talk to the agent through, and the operator's view at `/admin` (`admin/`).
//!
//! Every `/api/` route is rate limited per client (`/api/token` by TOKEN_RATE_LIMIT_PER_MIN, the
//! others by API_RATE_LIMIT_PER_MIN), every response carries the page's security headers
//! ([`security`]), and the server runs on [`crate::net::serve`] with its timeouts and caps.

mod admin;
mod assets;
mod catalog;
mod client;
mod error;
mod rate_limit;
mod security;
mod token;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::cors::CorsLayer;

pub use admin::{CallsError, LiveCall, LiveCalls, RegistryCalls, RoomService};
pub use error::ApiError;
use rate_limit::RateLimiter;

use crate::config::{Settings, without_credentials};
use crate::metrics::{RateLimit, TokenMetrics};
use crate::net::{self, Limits};
use crate::profiles::ProfileStore;
use crate::shared::Shared;

/// What the token server's routes share: settings, profiles, rate limits, metrics.
pub struct AppState {
    /// The token server's settings.
    pub settings: Arc<Settings>,
    /// The agent profiles the page may offer.
    pub profiles: Arc<ProfileStore>,
    token_limiter: Mutex<RateLimiter>,
    api_limiter: Mutex<RateLimiter>,
    /// `REDIS_URL`: invalidations reach every instance and rate limits are one budget.
    shared: Option<Shared>,
    /// LIVEKIT_PUBLIC_URL as browsers are given it: no credentials, no trailing slash.
    livekit_url_for_browsers: String,
    /// The calls going on now, for the admin page.
    live_calls: Arc<dyn LiveCalls>,
    metrics: TokenMetrics,
}

impl AppState {
    /// The token server's state: with REDIS_URL, shared with other instances and listing live
    /// calls from the registry; without, working alone and listing them through LiveKit's
    /// RoomService.
    pub fn new(settings: Arc<Settings>, profiles: Arc<ProfileStore>) -> Self {
        let token_limiter = Mutex::new(RateLimiter::new(settings.web.token_rate_limit_per_min));
        let api_limiter = Mutex::new(RateLimiter::new(settings.web.api_rate_limit_per_min));
        let public = without_credentials(&settings.livekit.public_url);
        let livekit_url_for_browsers = public.as_str().trim_end_matches('/').to_owned();
        let shared = settings.redis_url.as_ref().and_then(|url| {
            Shared::new(url).inspect_err(|e| tracing::error!("{e}; this token server works alone")).ok()
        });
        let livekit = &settings.livekit;
        let room_service = RoomService::new(&livekit.url, livekit.api_key.clone(), livekit.api_secret.clone());
        let live_calls: Arc<dyn LiveCalls> = match &shared {
            Some(shared) => Arc::new(RegistryCalls::new(shared.clone(), room_service)),
            None => Arc::new(room_service),
        };
        let metrics = TokenMetrics::default();
        Self { settings, profiles, token_limiter, api_limiter, shared, livekit_url_for_browsers, live_calls, metrics }
    }

    /// The state shared with other instances, when REDIS_URL is set.
    pub fn shared(&self) -> Option<&Shared> {
        self.shared.as_ref()
    }

    /// Takes the live calls from `source` (a registry) rather than from LiveKit's RoomService.
    pub fn with_live_calls(mut self, source: Arc<dyn LiveCalls>) -> Self {
        self.live_calls = source;
        self
    }

    /// Counts tokens, refusals and requests into `metrics`.
    pub fn with_metrics(mut self, metrics: TokenMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn client_address(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        client::client_address(peer, headers, self.settings.web.trust_forwarded_for)
    }

    /// Takes one token request from `client`'s budget, or refuses with a 429.
    async fn limit_tokens(&self, client: IpAddr) -> Result<(), ApiError> {
        let per_minute = self.settings.web.token_rate_limit_per_min;
        let checked = match self.shared_budget("token", client, per_minute).await {
            Some(checked) => checked,
            None => self.token_limiter.lock().unwrap_or_else(PoisonError::into_inner).check(client, Instant::now()),
        };
        checked.map_err(|wait| {
            self.metrics.rate_limited(RateLimit::Token);
            rate_limited(wait, "token requests")
        })
    }

    /// Takes one request to the other API routes from `client`'s budget, or refuses with a 429.
    async fn limit_api(&self, client: IpAddr) -> Result<(), ApiError> {
        let per_minute = self.settings.web.api_rate_limit_per_min;
        let checked = match self.shared_budget("api", client, per_minute).await {
            Some(checked) => checked,
            None => self.api_limiter.lock().unwrap_or_else(PoisonError::into_inner).check(client, Instant::now()),
        };
        checked.map_err(|wait| {
            self.metrics.rate_limited(RateLimit::Api);
            rate_limited(wait, "requests")
        })
    }

    /// The budget shared with other token servers; `None` (the local limiter decides) without
    /// Redis, while it is down, or when the limit is off.
    async fn shared_budget(
        &self,
        scope: &'static str,
        client: IpAddr,
        per_minute: u32,
    ) -> Option<Result<(), Duration>> {
        let shared = self.shared.as_ref().filter(|_| per_minute > 0)?;
        shared.take_rate(scope, client, per_minute, SystemTime::now()).await
    }

    /// The limits the token server is served with.
    fn serving_limits(&self) -> Limits {
        let web = &self.settings.web;
        // Behind a proxy every connection comes from the proxy: a per-client cap would cap everyone.
        let per_client =
            (web.max_connections_per_client > 0 && !web.trust_forwarded_for).then_some(web.max_connections_per_client);
        Limits {
            max_connections: web.max_connections,
            max_connections_per_client: per_client,
            max_body_bytes: error::MAX_BODY_BYTES as u64,
            ..Limits::default()
        }
    }
}

fn rate_limited(wait: Duration, what: &str) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut error =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("too many {what}; try again in {secs} s"));
    error.retry_after_secs = Some(secs);
    error
}

/// API_RATE_LIMIT_PER_MIN for every API route but `/api/token`, which has its own budget.
async fn limit_api(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let client = state.client_address(peer, request.headers());
    match state.limit_api(client).await {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(%client, path = request.uri().path(), "API rate limit reached");
            refusal.into_response()
        }
    }
}

/// Counts every answer by route template and status. The raw path is never a label: anyone can
/// make up paths, and each would be a series of its own.
async fn count_request(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let route =
        route.as_deref().unwrap_or(if status.is_success() || status.is_redirection() { "static" } else { "other" });
    state.metrics.request(route, status.as_u16());
    response
}

/// Every route of the token server: the API, the admin routes and the page's assets.
pub fn router(state: Arc<AppState>) -> Router {
    let cors = cors_layer(&state.settings.web.cors_origins);
    let policy = security::content_security_policy(&without_credentials(&state.settings.livekit.public_url));
    let policy = Arc::new(HeaderValue::from_str(&policy).expect("a policy built from a parsed URL is a valid header"));
    let (admin_page, admin_api) = admin::routes();
    let admin_api = admin_api.layer(middleware::map_response(admin::no_store));
    let limited = Router::new()
        .route("/api/languages", get(catalog::languages))
        .route("/api/agents", get(catalog::agents))
        .route("/api/config/{agent_id}", get(catalog::config))
        .route("/api/invalidate-cache", post(admin::invalidate_cache))
        .merge(admin_api)
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_api));
    let api = Router::new()
        .route("/api/token", post(token::issue))
        .route("/health", get(catalog::health))
        .merge(limited)
        .merge(admin_page.layer(middleware::map_response(admin::no_store)))
        .layer(DefaultBodyLimit::max(error::MAX_BODY_BYTES))
        .with_state(state.clone());
    let router = api
        .merge(assets::router(&state.settings.web.dir))
        .layer(middleware::map_response_with_state(policy, security::headers))
        .layer(middleware::from_fn_with_state(state.clone(), count_request));
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// No layer at all when no origins are configured: browsers then enforce same-origin.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Serves until `shutdown` completes, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    assets::warn_if_missing(&state.settings.web.dir);
    let limits = state.serving_limits();
    // Owned here (dropping the set aborts it): it follows invalidations while the server runs.
    let mut following = tokio::task::JoinSet::new();
    if let Some(shared) = state.shared.clone() {
        following.spawn(shared.follow_invalidations(state.profiles.clone()));
    }
    net::serve(listener, router(state), limits, shutdown).await;
    following.shutdown().await;
    Ok(())
}
