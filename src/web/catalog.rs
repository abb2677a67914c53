//! Read-only endpoints: languages and voices, agents, a profile, health.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::authorize;
use super::{ApiError, AppState};
use crate::profiles::{AgentProfile, ProfileError};
use crate::providers::catalog;
use crate::providers::registry::ProviderSetup;
use crate::providers::setup::{self, Problems, SectionDefaults};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LanguagesQuery {
    /// Languages and voices depend on the agent's providers; without an agent, the defaults'.
    agent_id: Option<String>,
}

pub async fn languages(
    State(state): State<Arc<AppState>>,
    Query(query): Query<LanguagesQuery>,
) -> Result<Json<Value>, ApiError> {
    let defaults = &state.settings.defaults;
    let (stt, tts, default_language, default_voice) = match &query.agent_id {
        Some(id) => {
            let profile = state.profiles.get(id).await.map_err(|e| profile_error(e, "agentId"))?;
            (
                profile.stt.providers.clone(),
                profile.tts.providers.clone(),
                profile.language.clone(),
                profile.voice.clone(),
            )
        }
        None => {
            let sections = SectionDefaults {
                llm_provider: &defaults.llm_provider,
                llm_model: &defaults.llm_model,
                temperature: 0.0,
                max_tokens: 1,
                voice: &defaults.voice,
            };
            let mut ignored = Problems::default();
            let stt = setup::stt(None, &mut ignored);
            let (tts, voice) = setup::tts(None, None, &defaults.language, sections, &mut ignored);
            (stt, tts, defaults.language.clone(), voice)
        }
    };
    let Some(speaker) = tts.first() else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no text-to-speech provider"));
    };
    let languages: Vec<Value> = catalog::languages(&stt, &tts)
        .into_iter()
        .map(|language| {
            let mut entry = json!(language);
            entry["voices"] = json!(catalog::voices(speaker, language.code));
            entry
        })
        .collect();
    let voices = catalog::voices(speaker, &default_language);
    Ok(Json(json!({
        "languages": languages,
        "voices": voices,
        "ttsProvider": speaker.provider,
        "ttsModel": model_of(speaker),
        "defaultLanguage": default_language,
        "defaultVoice": default_voice,
    })))
}

fn model_of(setup: &ProviderSetup) -> Value {
    setup.options.get("model").cloned().unwrap_or(Value::Null)
}

pub async fn agents(State(state): State<Arc<AppState>>) -> Json<Value> {
    let agents: Vec<Value> = state
        .profiles
        .local_profiles()
        .map(|p| json!({ "id": p.id, "name": p.name, "language": p.language, "voice": p.voice }))
        .collect();
    Json(json!({ "agents": agents, "defaultAgentId": "default" }))
}

/// The agent as a page may show it (name, greeting, language and voice choices); the whole
/// profile (prompt, models, lead fields) only with `Authorization: Bearer $ADMIN_TOKEN`, since
/// prompts are an operator's work and tell callers how to steer the agent.
pub async fn config(
    State(state): State<Arc<AppState>>,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let full = headers.contains_key(header::AUTHORIZATION);
    if full {
        authorize(&state, &headers)?;
    }
    let profile = state.profiles.get(&agent_id).await.map_err(|e| profile_error(e, "agentId"))?;
    if full {
        let profile = serde_json::to_value(AgentProfile::clone(&profile)).map_err(|e| {
            tracing::error!("cannot serialise a profile: {e}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the profile cannot be shown")
        })?;
        return Ok(Json(profile));
    }
    Ok(Json(public_profile(&profile)))
}

fn public_profile(profile: &AgentProfile) -> Value {
    let (stt, tts) = (&profile.stt.providers, &profile.tts.providers);
    let languages: Vec<&str> = catalog::languages(stt, tts)
        .into_iter()
        .filter(|language| tts.first().is_some_and(|first| !catalog::voices(first, language.code).is_empty()))
        .map(|language| language.code)
        .collect();
    let voices = tts.first().map(|first| catalog::voices(first, &profile.language)).unwrap_or_default();
    json!({
        "id": profile.id,
        "name": profile.name,
        "greeting": profile.greeting,
        "language": profile.language,
        "voice": profile.voice,
        "languages": languages,
        "voices": voices,
    })
}

pub async fn health() -> Json<Value> {
    Json(
        json!({ "status": "healthy", "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true) }),
    )
}

/// Maps a profile lookup failure to the API's answer; `field` names the request field that held
/// the agent id.
pub fn profile_error(error: ProfileError, field: &'static str) -> ApiError {
    match error {
        ProfileError::InvalidId(why) => {
            ApiError::field(StatusCode::BAD_REQUEST, "invalid_agent_id", field, format!("`{field}` {why}"))
        }
        ProfileError::UnknownAgent(id) => ApiError::field(
            StatusCode::NOT_FOUND,
            "unknown_agent",
            field,
            format!("`{field}` `{id}` is not a known agent"),
        ),
        ProfileError::Unavailable { id, .. } => ApiError::field(
            StatusCode::SERVICE_UNAVAILABLE,
            "agent_unavailable",
            field,
            format!("`{field}` `{id}`: the agent's profile cannot be loaded right now; try again shortly"),
        ),
        ProfileError::Dir { .. } | ProfileError::InvalidLocal { .. } => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "agent profiles are misconfigured")
        }
    }
}
