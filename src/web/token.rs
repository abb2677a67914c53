//! `POST /api/token`: a LiveKit token for one person to talk to one agent in a fresh room.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::catalog::profile_error;
use super::error::{JsonObject, echo};
use super::{ApiError, AppState};
use crate::livekit::token::{CallerToken, caller_token};
use crate::providers::catalog;

const DEFAULT_AGENT: &str = "default";
const DEFAULT_USER_NAME: &str = "Guest";
const MAX_USER_NAME_CHARS: usize = 64;
/// Values for the agent's `{{name}}` placeholders a page may pass; they go into the metadata and
/// from there into the system prompt, so they stay few and short.
const MAX_VARIABLES: usize = 32;
const MAX_VARIABLE_CHARS: usize = 500;

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
    if let Err(refusal) = state.limit_tokens(client).await {
        tracing::warn!(%client, "token rate limit reached");
        return Err(refusal);
    }
    let body = body?;

    let agent_id = body.string("agentId")?.unwrap_or(DEFAULT_AGENT);
    let profile = state.profiles.get(agent_id).await.map_err(|e| profile_error(e, "agentId"))?;
    let language = body.string("language")?.unwrap_or(&profile.language).to_owned();
    let (stt, tts) = (&profile.stt.providers, &profile.tts.providers);
    if !catalog::supports(stt, tts, &language) {
        let codes: Vec<&str> = catalog::languages(stt, tts).iter().map(|l| l.code).collect();
        let message = format!("`language` `{}` is not supported; use one of {}", echo(&language), codes.join(", "));
        return Err(ApiError::field(StatusCode::BAD_REQUEST, "unsupported_language", "language", message));
    }
    let voice = body.string("voice")?.unwrap_or(&profile.voice).to_owned();
    let speaker = tts.first().ok_or_else(|| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the agent has no text-to-speech provider")
    })?;
    if !catalog::offers_voice(speaker, &language, &voice) {
        let offered = catalog::voice_names(speaker, &language);
        let message =
            format!("`voice` `{}` is not offered for {language} by this agent; use one of {offered}", echo(&voice));
        return Err(ApiError::field(StatusCode::BAD_REQUEST, "unsupported_voice", "voice", message));
    }
    let user_name = check_user_name(body.string("userName")?.unwrap_or(DEFAULT_USER_NAME))?;
    let variables = check_variables(body.0.get("variables"))?;

    let identity = format!("user-{}", random_suffix());
    let room_name = format!("call-{}-{}", profile.id, random_suffix());
    let mut metadata = json!({ "agentId": profile.id, "language": language, "voice": voice });
    if !variables.is_empty() {
        metadata["variables"] = Value::Object(variables);
    }
    let metadata = metadata.to_string();
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
    tracing::info!(client = %crate::telemetry::personal(&client.to_string()), room = %room_name, %identity, agent_id = %profile.id, %language, %voice, "token issued");
    state.metrics.token_issued();
    Ok(Json(TokenResponse { token, room_name, livekit_url: state.livekit_url_for_browsers.clone(), identity }))
}

/// The `variables` object: at most [`MAX_VARIABLES`] placeholder names, each with a short text
/// (numbers and true/false are taken as text) that reads as written.
fn check_variables(raw: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    let refuse = |message: String| ApiError::field(StatusCode::BAD_REQUEST, "invalid_variables", "variables", message);
    let given = match raw {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(given)) => given,
        Some(_) => return Err(refuse("`variables` must be an object of names and texts".to_owned())),
    };
    if given.len() > MAX_VARIABLES {
        return Err(refuse(format!("`variables` has {} entries; at most {MAX_VARIABLES}", given.len())));
    }
    let mut checked = Map::new();
    for (name, value) in given {
        if !crate::profiles::valid_variable_name(name) {
            return Err(refuse(format!(
                "`variables` name `{}` must be a letter or _, then letters, digits or _ (at most 64)",
                echo(name)
            )));
        }
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => return Err(refuse(format!("`variables.{name}` must be a text, a number or true/false"))),
        };
        let problem = if text.chars().count() > MAX_VARIABLE_CHARS {
            Some(format!("is longer than {MAX_VARIABLE_CHARS} characters"))
        } else if text.chars().any(|c| c.is_control() && c != '\n') {
            Some("must not contain control characters".to_owned())
        } else {
            hidden_character(&text).map(|c| {
                format!("must not contain invisible or text-direction characters (it has U+{:04X})", u32::from(c))
            })
        };
        if let Some(why) = problem {
            return Err(refuse(format!("`variables.{name}` {why}")));
        }
        checked.insert(name.clone(), Value::String(text));
    }
    Ok(checked)
}

fn check_user_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let hidden = hidden_character(name);
    let problem = if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if name.chars().count() > MAX_USER_NAME_CHARS {
        Some(format!("must be at most {MAX_USER_NAME_CHARS} characters"))
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        hidden.map(|c| {
            format!(
                "must not contain invisible or text-direction characters (it has U+{:04X}); type the name as it reads",
                u32::from(c)
            )
        })
    };
    match problem {
        Some(why) => {
            Err(ApiError::field(StatusCode::BAD_REQUEST, "invalid_user_name", "userName", format!("`userName` {why}")))
        }
        None => Ok(name.to_owned()),
    }
}

/// The first character that changes how the name reads without being seen: text-direction
/// overrides and isolates (which can make "Ravi" display as something else to the agent's
/// operators), zero-width and other invisible characters (which hide text, or make one name look
/// like another). Zero-width joiners and non-joiners are allowed between two characters of an
/// Indic script, where they are part of how words are spelt.
fn hidden_character(name: &str) -> Option<char> {
    let chars: Vec<char> = name.chars().collect();
    chars.iter().enumerate().find_map(|(i, &c)| {
        let joiner = matches!(c, '\u{200C}' | '\u{200D}');
        let between_indic = i > 0 && chars.get(i + 1).is_some_and(|&next| indic(next)) && indic(chars[i - 1]);
        let hidden = if joiner { !between_indic } else { invisible_or_directional(c) };
        hidden.then_some(c)
    })
}

/// Devanagari to Sinhala: the scripts of the languages this product speaks.
fn indic(c: char) -> bool {
    ('\u{0900}'..='\u{0DFF}').contains(&c)
}

fn invisible_or_directional(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Unguessable, so nobody can join another person's room by guessing its name.
fn random_suffix() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(12).map(char::from).collect::<String>().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_overrides_and_invisible_characters_are_refused() {
        for name in [
            "Ravi\u{202E}nomis",
            "\u{2066}Ravi\u{2069}",
            "Ra\u{200B}vi",
            "Ra\u{FEFF}vi",
            "Ra\u{200D}vi",
            "Ravi\u{E0041}",
        ] {
            let error = check_user_name(name).expect_err(name);
            assert_eq!((error.code, error.field), ("invalid_user_name", Some("userName")), "{name}");
            assert!(error.message.contains("invisible or text-direction"), "{}", error.message);
        }
    }

    #[test]
    fn variables_are_few_plain_and_short() {
        let checked = check_variables(Some(&json!({"caller_name": "प्रिया", "visits": 3, "vip": true})))
            .expect("plain values pass");
        assert_eq!(Value::Object(checked), json!({"caller_name": "प्रिया", "visits": "3", "vip": "true"}));
        assert!(check_variables(None).expect("absent").is_empty());
        let many: Map<String, Value> = (0..33).map(|i| (format!("v{i}"), json!("x"))).collect();
        for (bad, says) in [
            (json!(["x"]), "must be an object"),
            (Value::Object(many), "33 entries"),
            (json!({"bad-name": "x"}), "name `bad-name`"),
            (json!({"plan": {"tier": 1}}), "`variables.plan` must be a text"),
            (json!({"note": "x".repeat(501)}), "longer than 500"),
            (json!({"note": "a\u{202e}b"}), "text-direction"),
            (json!({"note": "a\u{0007}b"}), "control characters"),
        ] {
            let error = check_variables(Some(&bad)).expect_err(says);
            assert_eq!((error.code, error.field), ("invalid_variables", Some("variables")));
            assert!(error.message.contains(says), "{says}: {}", error.message);
        }
    }

    #[test]
    fn names_in_every_script_pass_including_indic_joiners() {
        for name in ["Priya Sharma", "प्रिया", "क्\u{200D}ष", "ര\u{200D}്", "Ōmae Łukasz", "محمد", "Zoë-Anne"]
        {
            assert_eq!(check_user_name(name).expect(name), name);
        }
    }
}
