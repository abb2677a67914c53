//! The token server: the Python system's HTTP API (`/api/token`, `/api/languages`,
//! `/api/config/{agentId}`, `/api/invalidate-cache`, `/health`) plus `/api/agents`, and the page
//! people talk to the agent through.

mod admin;
mod assets;
mod catalog;
mod error;
mod rate_limit;
mod token;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::cors::CorsLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::ApiError;
use rate_limit::RateLimiter;

use crate::config::Settings;
use crate::profiles::ProfileStore;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub profiles: Arc<ProfileStore>,
    limiter: Mutex<RateLimiter>,
}

impl AppState {
    pub fn new(settings: Arc<Settings>, profiles: Arc<ProfileStore>) -> Self {
        let limiter = Mutex::new(RateLimiter::new(settings.web.token_rate_limit_per_min));
        Self { settings, profiles, limiter }
    }

    fn rate_limit(&self, client: IpAddr) -> Result<(), Duration> {
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner).check(client, Instant::now())
    }

    /// The caller's address: the TCP peer, or the address our own proxy appended to
    /// X-Forwarded-For when we are told to trust it. The rightmost entry is used because
    /// everything to its left was written by the client and can be forged.
    fn client_address(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.settings.web.trust_forwarded_for {
            let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).next_back();
            if let Some(ip) = forwarded.and_then(|v| v.rsplit(',').next()).and_then(|v| v.trim().parse().ok()) {
                return ip;
            }
        }
        peer.ip()
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let cors = cors_layer(&state.settings.web.cors_origins);
    let api = Router::new()
        .route("/api/token", post(token::issue))
        .route("/api/languages", get(catalog::languages))
        .route("/api/agents", get(catalog::agents))
        .route("/api/config/{agent_id}", get(catalog::config))
        .route("/api/invalidate-cache", post(admin::invalidate_cache))
        .route("/health", get(catalog::health))
        .layer(DefaultBodyLimit::max(error::MAX_BODY_BYTES))
        .with_state(state.clone());
    let router = api
        .merge(assets::router(&state.settings.web.dir))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")));
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
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
