//! Admin endpoints, guarded by `ADMIN_TOKEN` and disabled when it is not set: the profile cache,
//! and the operator's view at `/admin` (`page.rs`): the calls going on now (`calls.rs`), with a
//! way to end one, and the recent call records with their transcripts and turn latencies
//! (`records.rs`). The page itself holds no data; it asks for the token and sends it with every
//! request to `/admin/api/`. Records hold personal data, so nothing under `/admin` is cached.

mod calls;
mod page;
mod records;
mod registry;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub use calls::{CallsError, LiveCall, LiveCalls, RoomService};
pub use registry::RegistryCalls;

use super::error::JsonObject;
use super::{ApiError, AppState};
use crate::profiles::check_id;

/// Records the page shows at most, newest first.
const RECORDS_SHOWN: usize = 100;

/// The page and its API; the API goes through the caller's rate limit (`limited`).
pub(super) fn routes() -> (Router<Arc<AppState>>, Router<Arc<AppState>>) {
    let page = Router::new()
        .route("/admin", get(page::html))
        .route("/admin/admin.js", get(page::script))
        .route("/admin/admin.css", get(page::style));
    let api = Router::new()
        .route("/admin/api/calls", get(live_calls))
        .route("/admin/api/calls/end", post(end_call))
        .route("/admin/api/records", get(recent_records));
    (page, api)
}

/// Nothing under `/admin` may be kept by a browser or a proxy: records hold personal data.
pub(super) async fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn live_calls(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let calls = state.live_calls.list().await.map_err(unreachable)?;
    Ok(Json(json!({ "source": state.live_calls.source(), "calls": calls })))
}

/// Ends the call in `{"room"}`.
async fn end_call(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let room = body.string("room")?.filter(|room| !room.is_empty()).ok_or_else(|| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "missing_room",
            "room",
            "`room` is required: the room of the call to end",
        )
    })?;
    if !state.live_calls.end(room).await.map_err(unreachable)? {
        return Err(ApiError::field(StatusCode::NOT_FOUND, "no_such_call", "room", "no call is going on in that room"));
    }
    tracing::info!(room, "call ended from the admin page");
    Ok(Json(json!({ "ended": true })))
}

async fn recent_records(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let spool = state.settings.n8n.spool_dir.clone();
    let found = tokio::task::spawn_blocking(move || records::newest(&spool, RECORDS_SHOWN)).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "records_unreadable",
            format!("reading the records stopped: {e}"),
        )
    })?;
    Ok(Json(json!({ "records": found })))
}

fn unreachable(error: CallsError) -> ApiError {
    tracing::warn!("live calls unavailable: {error}");
    ApiError::new(StatusCode::BAD_GATEWAY, "livekit_unavailable", error.to_string())
}

pub async fn invalidate_cache(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let agent_id = body.string("agentId")?;
    if let Some(id) = agent_id {
        check_id(id).map_err(|why| {
            ApiError::field(StatusCode::BAD_REQUEST, "invalid_agent_id", "agentId", format!("`agentId` {why}"))
        })?;
    }
    let invalidated = state.profiles.invalidate(agent_id);
    // Every other instance drops it too; `false` when Redis is down (or not set).
    let published = match state.shared() {
        Some(shared) => shared.publish_invalidation(agent_id).await,
        None => false,
    };
    tracing::info!(agent_id = agent_id.unwrap_or("*"), invalidated, published, "profile cache invalidated");
    Ok(Json(json!({ "status": "ok", "invalidated": invalidated, "agentId": agent_id, "published": published })))
}

/// Lets the request through only with `Authorization: Bearer $ADMIN_TOKEN`.
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(admin_token) = &state.settings.web.admin_token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "admin endpoints are disabled; set ADMIN_TOKEN to enable them",
        ));
    };
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if admin_token.matches(token.trim()) => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the admin token is wrong")),
        None => {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send `Authorization: Bearer <ADMIN_TOKEN>`"))
        }
    }
}
