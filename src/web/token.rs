//! `POST /api/token`: a LiveKit token for one person to talk to one agent in a fresh room.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use serde_json::json;

use super::catalog::profile_error;
use super::error::JsonObject;
use super::{ApiError, AppState};
use crate::livekit::token::{CallerToken, caller_token};
use crate::providers::tts::catalog;

const DEFAULT_AGENT: &str = "default";
const DEFAULT_USER_NAME: &str = "Guest";
const MAX_USER_NAME_CHARS: usize = 64;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub token: String,
    pub room_name: String,
    pub livekit_url: String,
    pub identity: String,
}

pub async fn issue(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<TokenResponse>, ApiError> {
    let client = state.client_address(peer, &headers);
    if let Err(wait) = state.rate_limit(client) {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        tracing::warn!(%client, "token rate limit reached");
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many token requests; try again in {secs} s"),
        );
        error.retry_after_secs = Some(secs);
        return Err(error);
    }
    let body = body?;

    let agent_id = body.string("agentId")?.unwrap_or(DEFAULT_AGENT);
    let profile = state.profiles.get(agent_id).await.map_err(|e| profile_error(e, "agentId"))?;
    let language = body.string("language")?.unwrap_or(&profile.language).to_owned();
    if catalog::language(&language).is_none() {
        let message = format!("`language` `{language}` is not supported; use one of {}", catalog::language_codes());
        return Err(ApiError::field(StatusCode::BAD_REQUEST, "unsupported_language", "language", message));
    }
    let voice = body.string("voice")?.unwrap_or(&profile.voice).to_owned();
    if !catalog::offers_voice(&profile.tts.model, &language, &voice) {
        let offered = catalog::voice_names(&profile.tts.model, &language);
        let message = format!("`voice` `{voice}` is not offered for {language} by this agent; use one of {offered}");
        return Err(ApiError::field(StatusCode::BAD_REQUEST, "unsupported_voice", "voice", message));
    }
    let user_name = check_user_name(body.string("userName")?.unwrap_or(DEFAULT_USER_NAME))?;

    let identity = format!("user-{}", random_suffix());
    let room_name = format!("call-{}-{}", profile.id, random_suffix());
    let metadata = json!({ "agentId": profile.id, "language": language, "voice": voice }).to_string();
    let settings = &state.settings;
    let agent_name = settings.agent_name.as_str();
    let request = CallerToken {
        identity: &identity,
        name: &user_name,
        room: &room_name,
        metadata: &metadata,
        dispatch_agent: (!agent_name.is_empty()).then_some(agent_name),
        ttl: settings.web.token_ttl,
    };
    let token = caller_token(&settings.livekit.api_key, &settings.livekit.api_secret, &request).map_err(|e| {
        tracing::error!("{e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "token_failed", "the token could not be signed")
    })?;
    tracing::info!(%client, room = %room_name, %identity, agent_id = %profile.id, %language, %voice, "token issued");
    Ok(Json(TokenResponse {
        token,
        room_name,
        livekit_url: settings.livekit.public_url.as_str().trim_end_matches('/').to_owned(),
        identity,
    }))
}

fn check_user_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let problem = if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if name.chars().count() > MAX_USER_NAME_CHARS {
        Some(format!("must be at most {MAX_USER_NAME_CHARS} characters"))
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        None
    };
    match problem {
        Some(why) => {
            Err(ApiError::field(StatusCode::BAD_REQUEST, "invalid_user_name", "userName", format!("`userName` {why}")))
        }
        None => Ok(name.to_owned()),
    }
}

/// Unguessable, so nobody can join another person's room by guessing its name.
fn random_suffix() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(12).map(char::from).collect::<String>().to_ascii_lowercase()
}
