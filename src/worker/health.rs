//! The worker's health endpoint, for Docker and load balancers: `/` answers 200 while the
//! worker is registered and 503 otherwise; `/worker` describes it; `/metrics` is for Prometheus.
//!
//! Nobody is authenticated here, so `/worker` shows counts and states only: job ids are the call
//! records' ids and Idempotency-Keys, and room names lead into live calls, so neither is shown.
//! The server runs on [`crate::net::serve`] with a small connection cap, so slow clients of this
//! port cannot take the descriptors the calls and the token server (in `dev`) need.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

use super::state::Snapshot;
use crate::metrics::{self, Exposition};
use crate::net::{self, Limits};

/// The worker's latest [`Snapshot`], updated by the worker loop and read by `/worker`.
pub type SharedSnapshot = Arc<Mutex<Snapshot>>;

/// Probes come from a few load balancers and orchestrators, one request at a time.
const MAX_CONNECTIONS: usize = 32;

/// What `/worker` shows: the worker's state, and its calls without anything that identifies them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PublicView {
    worker_id: Option<String>,
    agent_name: String,
    status: &'static str,
    load: f64,
    job_count: usize,
    max_jobs: u32,
    jobs: Vec<PublicJob>,
    recent_jobs: Vec<PublicJob>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PublicJob {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl PublicView {
    fn of(snapshot: Snapshot) -> Self {
        let running = snapshot
            .jobs
            .iter()
            .map(|job| PublicJob { status: "running", started_at: Some(job.started_at), ended_at: None })
            .collect();
        // Failure texts stay in the log: a panic message can hold anything the call held.
        let recent = snapshot
            .recent_jobs
            .iter()
            .map(|job| PublicJob { status: job.status, started_at: None, ended_at: Some(job.ended_at) })
            .collect();
        Self {
            worker_id: snapshot.worker_id,
            agent_name: snapshot.agent_name,
            status: snapshot.status,
            load: snapshot.load,
            job_count: snapshot.job_count,
            max_jobs: snapshot.max_jobs,
            jobs: running,
            recent_jobs: recent,
        }
    }
}

/// Serves `/` (200 while registered, else 503), `/worker` and `/metrics` on `listener` until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    snapshot: SharedSnapshot,
    metrics: Exposition,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(health))
        .route("/worker", get(worker))
        .with_state(snapshot)
        .merge(metrics::router(metrics));
    let limits = Limits {
        max_connections: MAX_CONNECTIONS,
        max_body_bytes: 0,
        shutdown_grace: Duration::from_secs(2),
        ..Limits::default()
    };
    net::serve(listener, app, limits, shutdown).await;
    Ok(())
}

async fn health(State(snapshot): State<SharedSnapshot>) -> Response {
    let snapshot = snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone();
    match &snapshot.worker_id {
        Some(worker_id) => (StatusCode::OK, format!("registered as {worker_id}")).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "not registered with LiveKit").into_response(),
    }
}

async fn worker(State(snapshot): State<SharedSnapshot>) -> Json<PublicView> {
    Json(PublicView::of(snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::worker::state::{FinishedJob, RunningJob};

    #[tokio::test]
    async fn the_worker_view_keeps_job_ids_and_rooms_out() {
        let snapshot = Snapshot {
            worker_id: Some("AW_1".into()),
            agent_name: "sales".into(),
            status: "available",
            load: 0.25,
            job_count: 1,
            max_jobs: 10,
            jobs: vec![RunningJob {
                id: "AJ_secretcallid".into(),
                room: "call-clinic-hi-privateroom".into(),
                agent: Some("clinic-hi".into()),
                started_at: chrono::Utc::now(),
            }],
            recent_jobs: vec![FinishedJob {
                id: "AJ_oldcallid".into(),
                room: "call-default-oldroom".into(),
                status: "failed",
                error: Some("the job panicked: caller Priya said 98765 43210".into()),
                ended_at: chrono::Utc::now(),
            }],
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://{}/worker", listener.local_addr().expect("bound"));
        let metrics = crate::metrics::Registry::new().finish();
        let server = tokio::spawn(serve(listener, Arc::new(Mutex::new(snapshot)), metrics, std::future::pending()));
        let body = reqwest::get(&url).await.expect("reachable").text().await.expect("a body");
        server.abort();
        for hidden in ["AJ_secretcallid", "privateroom", "AJ_oldcallid", "oldroom", "Priya", "98765"] {
            assert!(!body.contains(hidden), "`{hidden}` is shown: {body}");
        }
        let view: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!((view["jobCount"].as_u64(), view["status"].as_str()), (Some(1), Some("available")));
        assert_eq!(view["jobs"][0]["status"], "running");
        assert_eq!(view["recentJobs"][0]["status"], "failed");
    }
}
