//! LiveKit access tokens (HS256 JWTs signed with the API secret).

use std::time::Duration;

use livekit_api::access_token::{AccessToken, AccessTokenError, VideoGrants};
use livekit_protocol::{RoomAgentDispatch, RoomConfiguration};

use crate::config::Secret;

/// What a person talking to an agent may do: join one room, speak with a microphone, hear
/// others, and send data. Nothing else, whatever they ask for.
#[derive(Debug, Clone)]
pub(crate) struct CallerToken<'a> {
    pub identity: &'a str,
    pub name: &'a str,
    pub room: &'a str,
    /// Participant metadata, also handed to the dispatched agent.
    pub metadata: &'a str,
    /// When set, the room is created with an explicit dispatch of this agent name, carrying
    /// `metadata` as the job's dispatch metadata.
    pub dispatch_agent: Option<&'a str>,
    pub ttl: Duration,
}

/// Signing failed; in practice only for an empty API key or secret.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign a LiveKit token: {0}")]
pub struct TokenError(#[from] AccessTokenError);

pub(crate) fn caller_token(
    api_key: &str,
    api_secret: &Secret,
    request: &CallerToken<'_>,
) -> Result<String, TokenError> {
    let grants = VideoGrants {
        room_join: true,
        room: request.room.to_owned(),
        can_publish: Some(true),
        can_subscribe: Some(true),
        can_publish_data: Some(true),
        can_publish_sources: vec!["microphone".to_owned()],
        can_update_own_metadata: Some(false),
        ..VideoGrants::default()
    };
    let mut token = AccessToken::with_api_key(api_key, api_secret.expose())
        .with_identity(request.identity)
        .with_name(request.name)
        .with_kind("standard")
        .with_metadata(request.metadata)
        .with_ttl(request.ttl)
        .with_grants(grants);
    if let Some(agent_name) = request.dispatch_agent {
        let dispatch = RoomAgentDispatch {
            agent_name: agent_name.to_owned(),
            metadata: request.metadata.to_owned(),
            ..Default::default()
        };
        token = token.with_room_config(RoomConfiguration { agents: vec![dispatch], ..Default::default() });
    }
    Ok(token.to_jwt()?)
}

/// A token for `agent-worker connect`: a participant that may do everything a person can in one
/// room, and set its own attributes.
pub fn participant_token(
    api_key: &str,
    api_secret: &Secret,
    room: &str,
    identity: &str,
    ttl: Duration,
) -> Result<String, TokenError> {
    let grants = VideoGrants {
        room_join: true,
        room: room.to_owned(),
        can_publish: Some(true),
        can_subscribe: Some(true),
        can_publish_data: Some(true),
        can_update_own_metadata: Some(true),
        ..VideoGrants::default()
    };
    Ok(AccessToken::with_api_key(api_key, api_secret.expose())
        .with_identity(identity)
        .with_name(identity)
        .with_ttl(ttl)
        .with_grants(grants)
        .to_jwt()?)
}
