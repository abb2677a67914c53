//! LiveKit's server API (Twirp, `twirp.rs`) on the dev server: `RoomService` ListRooms,
//! ListParticipants, RemoveParticipant, UpdateParticipant and DeleteRoom, and
//! `AgentDispatchService` CreateDispatch, ListDispatch and DeleteDispatch, with LiveKit's rules:
//! a token present must be valid (signature, API key, expiry), ListRooms needs `roomList`,
//! DeleteRoom `roomCreate`, the others `roomAdmin` for the very room they name; refusals are
//! Twirp's `unauthenticated` (HTTP 401). CreateDispatch opens the room when it is not open, as
//! LiveKit does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use livekit_api::access_token::Claims;
use livekit_protocol as pb;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Server;
use super::auth::{self, ApiGrant};
use super::limits::{self, MAX_ROOM_NAME_BYTES};
use super::room::Rooms;
use super::twirp::{self, Code, Encoding, Rpc, TwirpError};

/// `/twirp/{*route}`.
pub(super) async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    Path(route): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    match serve(&server, &method, &route, &headers, &query, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve(
    server: &Server,
    method: &Method,
    route: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response, TwirpError> {
    let claims = caller(server, headers, query).inspect_err(|e| tracing::info!("server API call refused: {e}"))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let (rpc, encoding) = twirp::route(method, route, content_type)?;
    let api = Api { server, claims };
    let answer = match rpc {
        Rpc::ListRooms => call(encoding, body, |r| api.list_rooms(r)).await,
        Rpc::DeleteRoom => call(encoding, body, |r| api.delete_room(r)).await,
        Rpc::ListParticipants => call(encoding, body, |r| api.list_participants(r)).await,
        Rpc::RemoveParticipant => call(encoding, body, |r| api.remove_participant(r)).await,
        Rpc::UpdateParticipant => call(encoding, body, |r| api.update_participant(r)).await,
        Rpc::CreateDispatch => call(encoding, body, |r| api.create_dispatch(r)).await,
        Rpc::ListDispatch => call(encoding, body, |r| api.list_dispatch(r)).await,
        Rpc::DeleteDispatch => call(encoding, body, |r| api.delete_dispatch(r)).await,
    };
    let name = format!("{}/{}", rpc.service(), rpc.method());
    match &answer {
        Ok(_) => tracing::info!(rpc = %name, "server API call"),
        Err(e) => tracing::info!(rpc = %name, "server API call refused: {e}"),
    }
    answer
}

/// Decodes the request, runs the method, encodes its answer the way the request came.
async fn call<Req, Resp, Fut>(
    encoding: Encoding,
    body: &[u8],
    method: impl FnOnce(Req) -> Fut,
) -> Result<Response, TwirpError>
where
    Req: prost::Message + Default + DeserializeOwned,
    Resp: prost::Message + Serialize,
    Fut: Future<Output = Result<Resp, TwirpError>>,
{
    let request = twirp::decode(encoding, body)?;
    let answer = method(request).await?;
    Ok(twirp::encode(encoding, &answer))
}

/// The request's verified claims; `None` when it carries no token (every method then refuses,
/// as LiveKit's do). A token that is present but invalid is refused at once, as LiveKit does.
fn caller(server: &Server, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Option<Claims>, TwirpError> {
    if !headers.contains_key(header::AUTHORIZATION) && !query.contains_key("access_token") {
        return Ok(None);
    }
    let invalid =
        |r: auth::Refusal| TwirpError::new(Code::Unauthenticated, format!("invalid authorization token: {}", r.reason));
    let token = auth::token(headers, query).map_err(invalid)?;
    auth::verify(token, &server.config.api_key, &server.config.api_secret).map(Some).map_err(invalid)
}

fn room_not_found() -> TwirpError {
    TwirpError::new(Code::NotFound, "requested room does not exist")
}

fn participant_not_found() -> TwirpError {
    TwirpError::new(Code::NotFound, "participant does not exist")
}

struct Api<'a> {
    server: &'a Server,
    claims: Option<Claims>,
}

impl Api<'_> {
    fn need(&self, grant: ApiGrant<'_>) -> Result<(), TwirpError> {
        auth::check_api(self.claims.as_ref(), grant).map_err(|r| TwirpError::new(Code::Unauthenticated, r.reason))
    }

    fn rooms(&self) -> &Arc<Rooms> {
        &self.server.rooms
    }

    async fn list_rooms(&self, request: pb::ListRoomsRequest) -> Result<pb::ListRoomsResponse, TwirpError> {
        self.need(ApiGrant::List)?;
        let mut rooms = Vec::new();
        for handle in self.rooms().open(&request.names) {
            rooms.extend(handle.info().await);
        }
        rooms.sort_by(|a, b| (a.creation_time_ms, &a.name).cmp(&(b.creation_time_ms, &b.name)));
        Ok(pb::ListRoomsResponse { rooms })
    }

    /// Ends the room: its agent jobs are terminated, then everyone in it is removed.
    async fn delete_room(&self, request: pb::DeleteRoomRequest) -> Result<pb::DeleteRoomResponse, TwirpError> {
        self.need(ApiGrant::Create)?;
        let handle = self.rooms().take(&request.room).ok_or_else(room_not_found)?;
        handle.delete().await;
        Ok(pb::DeleteRoomResponse {})
    }

    /// A room that is not open has no participants, as LiveKit answers.
    async fn list_participants(
        &self,
        request: pb::ListParticipantsRequest,
    ) -> Result<pb::ListParticipantsResponse, TwirpError> {
        self.need(ApiGrant::Admin { room: &request.room })?;
        let participants = match self.rooms().get(&request.room) {
            Some(handle) => handle.participants().await.unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(pb::ListParticipantsResponse { participants })
    }

    async fn remove_participant(
        &self,
        request: pb::RoomParticipantIdentity,
    ) -> Result<pb::RemoveParticipantResponse, TwirpError> {
        self.need(ApiGrant::Admin { room: &request.room })?;
        let handle = self.rooms().get(&request.room).ok_or_else(room_not_found)?;
        match handle.remove(request.identity).await {
            Some(true) => Ok(pb::RemoveParticipantResponse {}),
            Some(false) => Err(participant_not_found()),
            None => Err(room_not_found()),
        }
    }

    async fn update_participant(
        &self,
        request: pb::UpdateParticipantRequest,
    ) -> Result<pb::ParticipantInfo, TwirpError> {
        // LiveKit checks sizes before permissions.
        if let Some(why) = limits::size_refusal(&request.name, &request.metadata, &request.attributes) {
            return Err(TwirpError::new(Code::InvalidArgument, why));
        }
        self.need(ApiGrant::Admin { room: &request.room })?;
        if request.permission.is_some() {
            let why = "the dev server does not change permissions; leave `permission` out, or have the participant \
                       rejoin with a token granting what it needs";
            return Err(TwirpError::new(Code::Unimplemented, why));
        }
        let handle = self.rooms().get(&request.room).ok_or_else(room_not_found)?;
        match handle.update(request).await {
            Some(Some(participant)) => Ok(participant),
            Some(None) => Err(participant_not_found()),
            None => Err(room_not_found()),
        }
    }

    /// Dispatches an agent into the room, opening the room if it is not open.
    async fn create_dispatch(&self, request: pb::CreateAgentDispatchRequest) -> Result<pb::AgentDispatch, TwirpError> {
        self.need(ApiGrant::Admin { room: &request.room })?;
        let invalid = |why: String| TwirpError::new(Code::InvalidArgument, why);
        if request.room.is_empty() {
            return Err(invalid("`room` is required: the room to dispatch the agent into".into()));
        }
        if request.room.len() > MAX_ROOM_NAME_BYTES {
            return Err(invalid(format!("the room name is over the {MAX_ROOM_NAME_BYTES}-byte limit")));
        }
        if let Some(why) = limits::size_refusal(&request.agent_name, &request.metadata, &request.attributes) {
            return Err(invalid(why.replace("the name", "the agent name")));
        }
        let exhausted = |why: String| TwirpError::new(Code::ResourceExhausted, why);
        let handle = self.rooms().get_or_create(&request.room, None).map_err(exhausted)?;
        let room = handle.info().await.ok_or_else(|| {
            TwirpError::new(Code::Unavailable, "the room closed while the agent was being dispatched; try again")
        })?;
        let dispatch = pb::AgentDispatch {
            agent_name: request.agent_name,
            room: request.room,
            metadata: request.metadata,
            restart_policy: request.restart_policy,
            deployment: request.deployment,
            attributes: request.attributes,
            ..Default::default()
        };
        self.server.dispatcher.create(room, dispatch).await.map_err(exhausted)
    }

    async fn list_dispatch(
        &self,
        request: pb::ListAgentDispatchRequest,
    ) -> Result<pb::ListAgentDispatchResponse, TwirpError> {
        self.need(ApiGrant::Admin { room: &request.room })?;
        let handle = self.rooms().get(&request.room).ok_or_else(room_not_found)?;
        let agent_dispatches = self.server.dispatcher.list(&handle.sid, &request.dispatch_id).await;
        Ok(pb::ListAgentDispatchResponse { agent_dispatches })
    }

    /// Deletes the dispatch and terminates its jobs; answers the dispatch as it was.
    async fn delete_dispatch(&self, request: pb::DeleteAgentDispatchRequest) -> Result<pb::AgentDispatch, TwirpError> {
        self.need(ApiGrant::Admin { room: &request.room })?;
        let handle = self.rooms().get(&request.room).ok_or_else(room_not_found)?;
        let deleted = self.server.dispatcher.delete(&handle.sid, &request.dispatch_id).await;
        deleted.ok_or_else(|| TwirpError::new(Code::NotFound, "dispatch ID not found"))
    }
}
