//! The worker's health endpoint, for Docker and load balancers: `/` answers 200 while the
//! worker is registered and 503 otherwise; `/worker` describes it.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::state::Snapshot;

pub type SharedSnapshot = Arc<Mutex<Snapshot>>;

pub async fn serve(
    listener: TcpListener,
    snapshot: SharedSnapshot,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route("/", get(health)).route("/worker", get(worker)).with_state(snapshot);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn health(State(snapshot): State<SharedSnapshot>) -> Response {
    let snapshot = snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone();
    match &snapshot.worker_id {
        Some(worker_id) => (StatusCode::OK, format!("registered as {worker_id}")).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "not registered with LiveKit").into_response(),
    }
}

async fn worker(State(snapshot): State<SharedSnapshot>) -> Json<Snapshot> {
    Json(snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone())
}
