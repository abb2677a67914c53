//! The calls going on now, for the operator's view: where they come from is a [`LiveCalls`]
//! source, so a registry of live calls can take the place of asking LiveKit. Without one, LiveKit's
//! `RoomService` (Twirp, JSON) answers: every open room, its agent and the agent's state.
//!
//! Ending a call deletes its room (`DeleteRoom`) rather than removing the agent: LiveKit then
//! terminates the agent's job, so the worker ends the call as "job_terminated" and writes its
//! record, and the caller is told the room is gone and their page shows the call ended. Removing
//! only the agent would leave the caller in a silent room until they hung up.

use std::time::Duration;

use futures_util::future::BoxFuture;
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_protocol as pb;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::Secret;
use crate::worker::AGENT_ID_ATTRIBUTE;

/// The attribute our agent publishes its state in, as LiveKit's agents do.
const STATE_ATTRIBUTE: &str = "lk.agent.state";
/// A server API call that takes longer is given up: the page asks again shortly.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the tokens minted for one request live.
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Rooms whose participants are asked for in one listing; more are listed without them.
const MAX_ROOMS_DETAILED: usize = 200;

/// One call going on now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveCall {
    /// The LiveKit room of the call.
    pub room: String,
    /// The agent profile in the call, or the agent's name; `None` before an agent joined.
    pub agent: Option<String>,
    /// The agent's state (`listening`, `thinking`, `speaking`, …), or `waiting for an agent`.
    pub state: String,
    /// Since the room was created.
    pub duration_seconds: u64,
    /// People in the call, agents aside; `None` from a source that does not count them.
    pub callers: Option<u32>,
}

/// Why the live calls could not be listed or ended.
#[derive(Debug, thiserror::Error)]
pub enum CallsError {
    /// No answer from LiveKit (down, wrong LIVEKIT_URL, timeout).
    #[error("cannot reach LiveKit's RoomService: {0}")]
    Unreachable(String),
    /// LiveKit answered with a Twirp error (a wrong key pair shows here).
    #[error("LiveKit's RoomService refused {method}: HTTP {status}, {code}")]
    Refused {
        /// The RoomService method asked.
        method: &'static str,
        /// The HTTP status of the answer.
        status: u16,
        /// Twirp's error code (`unauthenticated`, `not_found`, …).
        code: String,
    },
    /// The answer was not the JSON the RoomService sends.
    #[error("LiveKit's RoomService answered {method} with something that is not its JSON: {reason}")]
    Unreadable {
        /// The RoomService method asked.
        method: &'static str,
        /// What did not parse.
        reason: String,
    },
}

/// Where the live calls come from.
pub trait LiveCalls: Send + Sync {
    /// Says where the list comes from, for the page (`livekit`, or a registry's name).
    fn source(&self) -> &'static str;
    /// Every call going on now.
    fn list(&self) -> BoxFuture<'_, Result<Vec<LiveCall>, CallsError>>;
    /// Ends the call in `room`; `false` when there is no such call.
    fn end<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<bool, CallsError>>;
}

/// Live calls as LiveKit's `RoomService` tells them.
pub struct RoomService {
    http: reqwest::Client,
    /// `http(s)://host[:port][/path]` of the LiveKit server.
    base: Url,
    api_key: String,
    api_secret: Secret,
}

impl RoomService {
    /// `livekit_url` is LIVEKIT_URL (`ws(s)://`, or already `http(s)://`).
    pub fn new(livekit_url: &Url, api_key: String, api_secret: Secret) -> Self {
        let mut base = livekit_url.clone();
        let scheme = match livekit_url.scheme() {
            "wss" | "https" => "https",
            _ => "http",
        };
        // Both schemes are special in the URL standard, so switching between them cannot fail.
        let _ = base.set_scheme(scheme);
        let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).build().unwrap_or_default();
        Self { http, base, api_key, api_secret }
    }

    fn token(&self, grants: VideoGrants) -> Result<String, CallsError> {
        AccessToken::with_api_key(&self.api_key, self.api_secret.expose())
            .with_identity("voice-agent-admin")
            .with_ttl(TOKEN_TTL)
            .with_grants(grants)
            .to_jwt()
            .map_err(|e| CallsError::Unreachable(format!("cannot sign a token: {e}")))
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &'static str,
        grants: VideoGrants,
        request: &Req,
    ) -> Result<Resp, CallsError> {
        let path = format!("{}/twirp/livekit.RoomService/{method}", self.base.as_str().trim_end_matches('/'));
        let response = self
            .http
            .post(path)
            .bearer_auth(self.token(grants)?)
            .json(request)
            .send()
            .await
            .map_err(|e| CallsError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| CallsError::Unreachable(e.without_url().to_string()))?;
        if !status.is_success() {
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|error| error["code"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "no Twirp error".to_owned());
            return Err(CallsError::Refused { method, status: status.as_u16(), code });
        }
        serde_json::from_slice(&body).map_err(|e| CallsError::Unreadable { method, reason: e.to_string() })
    }

    async fn rooms(&self) -> Result<Vec<LiveCall>, CallsError> {
        let grants = VideoGrants { room_list: true, ..VideoGrants::default() };
        let listed: pb::ListRoomsResponse = self.call("ListRooms", grants, &pb::ListRoomsRequest::default()).await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut calls = Vec::with_capacity(listed.rooms.len());
        for (index, room) in listed.rooms.into_iter().enumerate() {
            let participants = if index < MAX_ROOMS_DETAILED {
                let grants = VideoGrants { room_admin: true, room: room.name.clone(), ..VideoGrants::default() };
                let request = pb::ListParticipantsRequest { room: room.name.clone() };
                let answer: Result<pb::ListParticipantsResponse, _> =
                    self.call("ListParticipants", grants, &request).await;
                match answer {
                    Ok(answer) => answer.participants,
                    // The room ended between the two calls.
                    Err(CallsError::Refused { status: 404, .. }) => continue,
                    Err(e) => return Err(e),
                }
            } else {
                Vec::new()
            };
            calls.push(live_call(&room, &participants, now_ms));
        }
        calls.sort_by(|a, b| b.duration_seconds.cmp(&a.duration_seconds).then_with(|| a.room.cmp(&b.room)));
        Ok(calls)
    }

    async fn delete(&self, room: &str) -> Result<bool, CallsError> {
        let grants = VideoGrants { room_create: true, ..VideoGrants::default() };
        let request = pb::DeleteRoomRequest { room: room.to_owned() };
        match self.call::<_, pb::DeleteRoomResponse>("DeleteRoom", grants, &request).await {
            Ok(_) => Ok(true),
            Err(CallsError::Refused { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl LiveCalls for RoomService {
    fn source(&self) -> &'static str {
        "livekit"
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LiveCall>, CallsError>> {
        Box::pin(self.rooms())
    }

    fn end<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<bool, CallsError>> {
        Box::pin(self.delete(room))
    }
}

/// A room and who is in it, as the page shows the call.
fn live_call(room: &pb::Room, participants: &[pb::ParticipantInfo], now_ms: i64) -> LiveCall {
    let is_agent = |p: &&pb::ParticipantInfo| p.kind == pb::participant_info::Kind::Agent as i32;
    let agent = participants.iter().find(is_agent);
    let created_ms = if room.creation_time_ms > 0 { room.creation_time_ms } else { room.creation_time * 1000 };
    let callers = participants.iter().filter(|p| !is_agent(p)).count();
    LiveCall {
        room: room.name.clone(),
        agent: agent.map(|a| {
            let named = a.attributes.get(AGENT_ID_ATTRIBUTE).filter(|id| !id.is_empty());
            named.cloned().unwrap_or_else(|| if a.name.is_empty() { a.identity.clone() } else { a.name.clone() })
        }),
        state: match agent {
            Some(agent) => agent.attributes.get(STATE_ATTRIBUTE).cloned().unwrap_or_else(|| "joining".to_owned()),
            None => "waiting for an agent".to_owned(),
        },
        duration_seconds: u64::try_from(now_ms.saturating_sub(created_ms) / 1000).unwrap_or(0),
        callers: Some(u32::try_from(callers).unwrap_or(u32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn participant(identity: &str, agent: bool, attributes: &[(&str, &str)]) -> pb::ParticipantInfo {
        let kind = if agent { pb::participant_info::Kind::Agent } else { pb::participant_info::Kind::Standard };
        pb::ParticipantInfo {
            identity: identity.into(),
            kind: kind as i32,
            attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>(),
            ..Default::default()
        }
    }

    #[test]
    fn a_call_shows_its_agent_state_and_age() {
        let room = pb::Room { name: "call-1".into(), creation_time_ms: 10_000, ..Default::default() };
        let people = [
            participant("web-1", false, &[]),
            participant("agent-1", true, &[(STATE_ATTRIBUTE, "speaking"), (AGENT_ID_ATTRIBUTE, "clinic-hi")]),
        ];
        let call = live_call(&room, &people, 75_500);
        assert_eq!(
            call,
            LiveCall {
                room: "call-1".into(),
                agent: Some("clinic-hi".into()),
                state: "speaking".into(),
                duration_seconds: 65,
                callers: Some(1),
            }
        );
        let waiting = live_call(&room, &people[..1], 75_500);
        assert_eq!((waiting.agent, waiting.state.as_str()), (None, "waiting for an agent"));
        let unnamed = live_call(&room, &[participant("agent-2", true, &[])], 75_500);
        assert_eq!(
            (unnamed.agent.as_deref(), unnamed.state.as_str(), unnamed.callers),
            (Some("agent-2"), "joining", Some(0))
        );
    }

    #[test]
    fn the_twirp_base_is_livekits_url_over_http() {
        let service = |url: &str| RoomService::new(&Url::parse(url).expect("a URL"), "k".into(), Secret::new("s"));
        assert_eq!(service("ws://127.0.0.1:7880").base.as_str(), "http://127.0.0.1:7880/");
        assert_eq!(service("wss://p.livekit.cloud").base.as_str(), "https://p.livekit.cloud/");
        assert_eq!(service("https://lk.example.com/base").base.as_str(), "https://lk.example.com/base");
    }
}
