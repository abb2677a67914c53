//! Admin endpoints, guarded by `ADMIN_TOKEN` and disabled when it is not set.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::error::JsonObject;
use super::{ApiError, AppState};
use crate::profiles::check_id;

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
