//! Twirp over HTTP, as LiveKit's server API speaks it: `POST /twirp/livekit.<Service>/<Method>`
//! with a protobuf (`application/protobuf`, LiveKit's Python and Go SDKs) or JSON
//! (`application/json`, the Node SDK, curl, n8n) body, answered in the same encoding; failures are
//! always JSON `{"code", "msg", "meta"}` with the HTTP status Twirp's specification gives the code.
//!
//! JSON answers use the proto field names (`num_participants`, `agent_name`), as LiveKit's Twirp
//! server writes them, so a workflow written against the dev server reads LiveKit Cloud's answers
//! unchanged. Unlike LiveKit, fields at their default value (0, "", false, the first enum value)
//! are left out, which protobuf's JSON mapping allows and every protobuf JSON reader fills in.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The methods the dev server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    ListRooms,
    DeleteRoom,
    ListParticipants,
    RemoveParticipant,
    UpdateParticipant,
    CreateDispatch,
    ListDispatch,
    DeleteDispatch,
}

const ROOM_SERVICE: &str = "livekit.RoomService";
const DISPATCH_SERVICE: &str = "livekit.AgentDispatchService";

impl Rpc {
    const ALL: [Rpc; 8] = [
        Rpc::ListRooms,
        Rpc::DeleteRoom,
        Rpc::ListParticipants,
        Rpc::RemoveParticipant,
        Rpc::UpdateParticipant,
        Rpc::CreateDispatch,
        Rpc::ListDispatch,
        Rpc::DeleteDispatch,
    ];

    pub fn service(self) -> &'static str {
        match self {
            Rpc::CreateDispatch | Rpc::ListDispatch | Rpc::DeleteDispatch => DISPATCH_SERVICE,
            _ => ROOM_SERVICE,
        }
    }

    pub fn method(self) -> &'static str {
        match self {
            Rpc::ListRooms => "ListRooms",
            Rpc::DeleteRoom => "DeleteRoom",
            Rpc::ListParticipants => "ListParticipants",
            Rpc::RemoveParticipant => "RemoveParticipant",
            Rpc::UpdateParticipant => "UpdateParticipant",
            Rpc::CreateDispatch => "CreateDispatch",
            Rpc::ListDispatch => "ListDispatch",
            Rpc::DeleteDispatch => "DeleteDispatch",
        }
    }

    fn of_service(service: &str) -> impl Iterator<Item = Rpc> + '_ {
        Self::ALL.into_iter().filter(move |rpc| rpc.service() == service)
    }
}

/// How a request's body is encoded; the answer uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Protobuf,
}

/// Twirp's error codes that the dev server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    Malformed,
    NotFound,
    BadRoute,
    Unauthenticated,
    ResourceExhausted,
    Unimplemented,
    Internal,
    Unavailable,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "invalid_argument",
            Code::Malformed => "malformed",
            Code::NotFound => "not_found",
            Code::BadRoute => "bad_route",
            Code::Unauthenticated => "unauthenticated",
            Code::ResourceExhausted => "resource_exhausted",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
        }
    }

    /// The HTTP status Twirp's specification maps the code to.
    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::Malformed => StatusCode::BAD_REQUEST,
            Code::NotFound | Code::BadRoute => StatusCode::NOT_FOUND,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A failed call, as Twirp tells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({msg})", code.as_str())]
pub struct TwirpError {
    pub code: Code,
    pub msg: String,
    meta: Vec<(&'static str, String)>,
}

impl TwirpError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Self { code, msg: msg.into(), meta: Vec::new() }
    }

    /// Twirp's `bad_route`, which names the route the client tried in `twirp_invalid_route`.
    fn bad_route(msg: String, method: &Method, path: &str) -> Self {
        Self { code: Code::BadRoute, msg, meta: vec![("twirp_invalid_route", format!("{method} {path}"))] }
    }

    fn body(&self) -> Value {
        let mut body = serde_json::json!({ "code": self.code.as_str(), "msg": self.msg });
        if !self.meta.is_empty() {
            let meta: Map<String, Value> =
                self.meta.iter().map(|(key, value)| ((*key).to_owned(), Value::String(value.clone()))).collect();
            body["meta"] = Value::Object(meta);
        }
        body
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        // Exactly `application/json`: LiveKit's Node SDK reads the error's code and message only
        // when the type is exactly that.
        let mut response = (self.code.status(), self.body().to_string()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// The method a request calls and how its body is encoded, or Twirp's `bad_route` (not POST, an
/// unknown path, an unknown content type) or `unimplemented` (a method of LiveKit's services the
/// dev server does not answer). `route` is the path after `/twirp/`.
pub fn route(method: &Method, route: &str, content_type: Option<&str>) -> Result<(Rpc, Encoding), TwirpError> {
    let path = format!("/twirp/{route}");
    if method != Method::POST {
        return Err(TwirpError::bad_route(
            format!("unsupported method {method} (only POST is allowed)"),
            method,
            &path,
        ));
    }
    let (service, name) = route.split_once('/').unwrap_or((route, ""));
    let known: Vec<Rpc> = Rpc::of_service(service).collect();
    if known.is_empty() || name.is_empty() || name.contains('/') {
        let why = format!(
            "no handler for path {path}; the dev server answers {ROOM_SERVICE} and {DISPATCH_SERVICE} under /twirp/"
        );
        return Err(TwirpError::bad_route(why, method, &path));
    }
    let Some(rpc) = known.iter().copied().find(|rpc| rpc.method() == name) else {
        let answered: Vec<&str> = known.iter().map(|rpc| rpc.method()).collect();
        let why = format!("the dev server does not implement {service}/{name}; it answers {}", answered.join(", "));
        return Err(TwirpError::new(Code::Unimplemented, why));
    };
    let mime = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let encoding = match mime.as_str() {
        "application/json" => Encoding::Json,
        "application/protobuf" => Encoding::Protobuf,
        _ => {
            let why = format!(
                "unexpected Content-Type: {:?}; send application/json or application/protobuf",
                content_type.unwrap_or_default()
            );
            return Err(TwirpError::bad_route(why, method, &path));
        }
    };
    Ok((rpc, encoding))
}

/// Reads a request body; unknown JSON fields are ignored, as Twirp ignores them.
pub fn decode<T>(encoding: Encoding, body: &[u8]) -> Result<T, TwirpError>
where
    T: prost::Message + Default + DeserializeOwned,
{
    match encoding {
        Encoding::Protobuf => T::decode(body)
            .map_err(|e| TwirpError::new(Code::Malformed, format!("the protobuf request could not be decoded: {e}"))),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| TwirpError::new(Code::Malformed, format!("the json request could not be decoded: {e}"))),
    }
}

/// The 200 answer carrying `message`.
pub fn encode<T>(encoding: Encoding, message: &T) -> Response
where
    T: prost::Message + Serialize,
{
    let (content_type, body) = match encoding {
        Encoding::Protobuf => ("application/protobuf", message.encode_to_vec()),
        Encoding::Json => match serde_json::to_value(message) {
            Ok(value) => ("application/json", proto_names(value).to_string().into_bytes()),
            Err(e) => {
                return TwirpError::new(Code::Internal, format!("the answer cannot be written as JSON: {e}"))
                    .into_response();
            }
        },
    };
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Fields of the messages we answer with whose keys are data, not field names: their keys stay
/// as they are.
const MAP_FIELDS: [&str; 1] = ["attributes"];

/// Protobuf JSON with lowerCamelCase field names (what the protocol crate writes) turned into the
/// proto names LiveKit's Twirp server writes.
fn proto_names(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| {
                    let value = if MAP_FIELDS.contains(&key.as_str()) { value } else { proto_names(value) };
                    (snake_case(&key), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(proto_names).collect()),
        other => other,
    }
}

fn snake_case(camel: &str) -> String {
    let mut snake = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            snake.push('_');
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use http_body_util::BodyExt;
    use livekit_protocol as pb;

    use super::*;

    fn post(path: &str, content_type: &str) -> Result<(Rpc, Encoding), TwirpError> {
        route(&Method::POST, path, Some(content_type))
    }

    #[test]
    fn routes_name_the_method_and_the_encoding() {
        assert_eq!(post("livekit.RoomService/ListRooms", "application/json"), Ok((Rpc::ListRooms, Encoding::Json)));
        assert_eq!(
            post("livekit.AgentDispatchService/CreateDispatch", "application/protobuf"),
            Ok((Rpc::CreateDispatch, Encoding::Protobuf))
        );
        assert_eq!(
            post("livekit.RoomService/DeleteRoom", "Application/JSON; charset=UTF-8").map(|r| r.1),
            Ok(Encoding::Json),
            "the Node SDK sends a charset"
        );
        for rpc in Rpc::ALL {
            let path = format!("{}/{}", rpc.service(), rpc.method());
            assert_eq!(post(&path, "application/json").map(|r| r.0), Ok(rpc));
        }
    }

    #[test]
    fn bad_routes_are_twirps_bad_route_and_say_what_was_wrong() {
        let get = route(&Method::GET, "livekit.RoomService/ListRooms", Some("application/json")).unwrap_err();
        assert_eq!((get.code, get.code.status()), (Code::BadRoute, StatusCode::NOT_FOUND));
        assert!(get.msg.contains("only POST"), "{}", get.msg);
        assert_eq!(get.body()["meta"]["twirp_invalid_route"], "GET /twirp/livekit.RoomService/ListRooms");

        let unknown = post("livekit.EgressService/ListEgress", "application/json").unwrap_err();
        assert_eq!(unknown.code, Code::BadRoute);
        assert!(unknown.msg.contains("no handler for path /twirp/livekit.EgressService/ListEgress"));

        let form = post("livekit.RoomService/ListRooms", "application/x-www-form-urlencoded").unwrap_err();
        assert_eq!(form.code, Code::BadRoute);
        assert!(form.msg.contains("unexpected Content-Type"), "{}", form.msg);
        assert_eq!(route(&Method::POST, "livekit.RoomService/ListRooms", None).unwrap_err().code, Code::BadRoute);
    }

    #[test]
    fn other_methods_of_livekits_services_are_unimplemented_and_list_what_is() {
        let error = post("livekit.RoomService/CreateRoom", "application/json").unwrap_err();
        assert_eq!((error.code, error.code.status()), (Code::Unimplemented, StatusCode::NOT_IMPLEMENTED));
        assert!(
            error.msg.contains("RoomService/CreateRoom") && error.msg.contains("ListParticipants"),
            "{}",
            error.msg
        );
    }

    #[tokio::test]
    async fn errors_are_twirp_json_with_their_status() {
        let response = TwirpError::new(Code::NotFound, "requested room does not exist").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.expect("a body").to_bytes();
        let body: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body, serde_json::json!({"code": "not_found", "msg": "requested room does not exist"}));
        assert_eq!(Code::Unauthenticated.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Code::InvalidArgument.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn requests_decode_from_protobuf_and_from_json_in_either_naming() {
        let request = pb::CreateAgentDispatchRequest {
            agent_name: "sales".into(),
            room: "call-1".into(),
            metadata: "{}".into(),
            ..Default::default()
        };
        let from_protobuf: pb::CreateAgentDispatchRequest =
            decode(Encoding::Protobuf, &prost::Message::encode_to_vec(&request)).expect("decodes");
        assert_eq!(from_protobuf, request);
        for json in [
            r#"{"agent_name":"sales","room":"call-1","metadata":"{}","unknown":1}"#,
            r#"{"agentName":"sales","room":"call-1","metadata":"{}"}"#,
        ] {
            let decoded: pb::CreateAgentDispatchRequest = decode(Encoding::Json, json.as_bytes()).expect(json);
            assert_eq!(decoded, request, "{json}");
        }
        let broken = decode::<pb::ListRoomsRequest>(Encoding::Json, b"{\"names\": ").unwrap_err();
        assert_eq!((broken.code, broken.code.status()), (Code::Malformed, StatusCode::BAD_REQUEST));
        assert_eq!(decode::<pb::ListRoomsRequest>(Encoding::Protobuf, &[0xff]).unwrap_err().code, Code::Malformed);
    }

    fn participant() -> pb::ParticipantInfo {
        pb::ParticipantInfo {
            sid: "PA_1".into(),
            identity: "caller".into(),
            state: pb::participant_info::State::Active as i32,
            tracks: vec![pb::TrackInfo {
                sid: "TR_1".into(),
                mime_type: "audio/opus".into(),
                disable_red: true,
                audio_features: vec![pb::AudioTrackFeature::TfNoDtx as i32],
                ..Default::default()
            }],
            joined_at_ms: 1_700_000_000_123,
            is_publisher: true,
            kind: pb::participant_info::Kind::Agent as i32,
            attributes: HashMap::from([
                ("lk.agent_name".to_owned(), "sales".to_owned()),
                ("callerName".to_owned(), "x".to_owned()),
            ]),
            permission: Some(pb::ParticipantPermission { can_publish_data: true, ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn json_answers_use_proto_field_names_and_keep_attribute_keys() {
        let value = proto_names(serde_json::to_value(participant()).expect("serializes"));
        assert_eq!(value["joined_at_ms"], "1700000000123");
        assert_eq!(value["is_publisher"], true);
        assert_eq!(value["kind"], "AGENT");
        assert_eq!(value["tracks"][0]["mime_type"], "audio/opus");
        assert_eq!(value["permission"]["can_publish_data"], true);
        assert_eq!(value["attributes"]["callerName"], "x", "attribute keys are data");
        assert_eq!(value["attributes"]["lk.agent_name"], "sales");
    }

    #[test]
    fn json_answers_read_back_into_the_same_messages() {
        let participant = participant();
        let value = proto_names(serde_json::to_value(&participant).expect("serializes"));
        assert_eq!(serde_json::from_value::<pb::ParticipantInfo>(value).expect("reads"), participant);

        let job = pb::Job {
            id: "AJ_1".into(),
            dispatch_id: "AD_1".into(),
            agent_name: "sales".into(),
            room: Some(pb::Room { sid: "RM_1".into(), num_participants: 2, creation_time_ms: 5, ..Default::default() }),
            state: Some(pb::JobState {
                status: pb::JobStatus::JsRunning as i32,
                participant_identity: "agent-x".into(),
                worker_id: "AW_1".into(),
                started_at: 7,
                ..Default::default()
            }),
            attributes: HashMap::from([("someKey".to_owned(), "v".to_owned())]),
            ..Default::default()
        };
        let dispatch = pb::AgentDispatch {
            id: "AD_1".into(),
            agent_name: "sales".into(),
            room: "call-1".into(),
            metadata: "{\"agentId\":\"x\"}".into(),
            state: Some(pb::AgentDispatchState { jobs: vec![job], created_at: 9, deleted_at: 0 }),
            ..Default::default()
        };
        let value = proto_names(serde_json::to_value(&dispatch).expect("serializes"));
        assert_eq!(value["state"]["jobs"][0]["state"]["participant_identity"], "agent-x");
        assert_eq!(value["state"]["jobs"][0]["attributes"]["someKey"], "v");
        assert_eq!(serde_json::from_value::<pb::AgentDispatch>(value).expect("reads"), dispatch);
    }
}
