//! `GET /metrics`: a route for servers that have other routes too (the worker's health port),
//! and a server of its own (the token server's METRICS_PORT).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use tokio::net::TcpListener;

use super::Exposition;
use crate::net::{self, Limits};

/// What Prometheus is told it gets: OpenMetrics text, the format `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A router answering `GET /metrics` from `exposition`, to merge into a server's own.
pub fn router<S: Clone + Send + Sync + 'static>(exposition: Exposition) -> Router<S> {
    Router::new().route("/metrics", get(metrics)).with_state(exposition)
}

async fn metrics(State(exposition): State<Exposition>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], exposition.render()).into_response()
}

/// Prometheus scrapes one request at a time; a few spare connections are plenty.
const MAX_CONNECTIONS: usize = 16;

/// Serves `GET /metrics` alone on `listener` (the token server's METRICS_PORT) until `shutdown`.
pub async fn serve(listener: TcpListener, exposition: Exposition, shutdown: impl Future<Output = ()> + Send + 'static) {
    let limits = Limits {
        max_connections: MAX_CONNECTIONS,
        max_body_bytes: 0,
        shutdown_grace: Duration::from_secs(2),
        ..Limits::default()
    };
    net::serve(listener, router(exposition), limits, shutdown).await;
}
