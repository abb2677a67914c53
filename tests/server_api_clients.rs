//! LiveKit's server API on the dev server, through LiveKit's own server SDKs in their current
//! releases (pinned by `scripts/setup.sh`): `livekit-api` from PyPI, which speaks protobuf, and
//! `livekit-server-sdk` from npm, which speaks JSON; and through curl with a hand-made token,
//! exactly as the README shows it. Our worker registers under an agent name, so only an
//! explicit `CreateDispatch` brings it into a call; then each way of ending a call
//! (RemoveParticipant, DeleteDispatch, DeleteRoom) really ends the worker's job and its call
//! record reaches n8n. Refusals (no token, the wrong grant, another room's grant, a wrong secret)
//! come back as the Twirp errors the SDKs raise.

mod support;

use std::process::Stdio;
use std::time::Duration;

use livekit_api::access_token::{AccessToken, VideoGrants};
use serde_json::{Value, json};
use support::agent::Stage;
use support::repo_path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use voice_agent::devserver::{DEV_API_KEY, DEV_API_SECRET};

/// The name our worker registers under: it then takes explicit dispatches only.
const AGENT: &str = "front-desk";
const WAIT: Duration = Duration::from_secs(30);

/// One of LiveKit's server SDKs, driven a call at a time through `tests/sdk/*/server_api.*`.
struct Sdk {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// A Twirp error as the SDK raised it.
#[derive(Debug)]
struct Refused {
    code: String,
    status: u64,
    message: String,
}

impl Sdk {
    fn python(url: &str) -> Self {
        let python = repo_path("tests/sdk/python/.venv/bin/python");
        assert!(python.exists(), "LiveKit's Python SDK is missing: run scripts/setup.sh");
        Self::spawn(Command::new(python).arg(repo_path("tests/sdk/python/server_api.py")), url)
    }

    fn node(url: &str) -> Self {
        let sdk = repo_path("tests/sdk/node/node_modules/livekit-server-sdk");
        assert!(sdk.is_dir(), "LiveKit's Node server SDK is missing: run scripts/setup.sh");
        Self::spawn(Command::new("node").arg(repo_path("tests/sdk/node/server_api.mjs")), url)
    }

    fn spawn(command: &mut Command, url: &str) -> Self {
        let mut child = command
            .args(["--url", &url.replacen("ws", "http", 1)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the SDK script runs");
        let stdin = child.stdin.take().expect("piped");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        Self { _child: child, stdin, lines }
    }

    /// Calls `op` with the dev server's key and secret: the SDK signs its own token with the
    /// grants it believes the call needs, as operators use it.
    async fn call(&mut self, op: &str, args: Value) -> Result<Value, Refused> {
        self.send(op, json!({"key": DEV_API_KEY, "secret": DEV_API_SECRET}), args).await
    }

    /// Calls `op` with `token` as it is.
    async fn call_with(&mut self, token: &str, op: &str, args: Value) -> Result<Value, Refused> {
        self.send(op, json!({"token": token}), args).await
    }

    async fn send(&mut self, op: &str, auth: Value, args: Value) -> Result<Value, Refused> {
        let request = json!({"op": op, "auth": auth, "args": args});
        self.stdin.write_all(format!("{request}\n").as_bytes()).await.expect("the SDK script reads");
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{op} answered in time"))
            .expect("the SDK script writes")
            .unwrap_or_else(|| panic!("the SDK script ended during {op}; its error is above"));
        let answer: Value = serde_json::from_str(&line).expect("the script answers JSON");
        match answer.get("error") {
            Some(error) => Err(Refused {
                code: error["code"].as_str().unwrap_or_default().to_owned(),
                status: error["status"].as_u64().unwrap_or_default(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
            }),
            None => Ok(answer["ok"].clone()),
        }
    }
}

fn token_with(grants: VideoGrants) -> String {
    AccessToken::with_api_key(DEV_API_KEY, DEV_API_SECRET)
        .with_identity("operator")
        .with_grants(grants)
        .to_jwt()
        .expect("signs")
}

fn admin_of(room: &str) -> String {
    token_with(VideoGrants { room_admin: true, room: room.into(), ..VideoGrants::default() })
}

/// Asserts a refusal is Twirp's `unauthenticated` (401) and says `why`.
fn assert_refused(answer: Result<Value, Refused>, why: &str) {
    let refused = answer.expect_err("refused");
    assert_eq!((refused.code.as_str(), refused.status), ("unauthenticated", 401), "{refused:?}");
    assert!(refused.message.contains(why), "{why:?} not in {refused:?}");
}

/// Refusals every SDK must see as Twirp errors.
async fn refusals(sdk: &mut Sdk, room: &str) {
    let create = json!({"room": room, "agent_name": AGENT});
    let list_only = token_with(VideoGrants { room_list: true, ..VideoGrants::default() });
    assert_refused(sdk.call_with(&list_only, "create_dispatch", create.clone()).await, "roomAdmin grant");
    assert_refused(sdk.call_with(&admin_of("another-room"), "create_dispatch", create).await, "another room");
    assert_refused(sdk.call_with(&admin_of(room), "delete_room", json!({"room": room})).await, "roomCreate");
    assert_refused(sdk.call_with(&admin_of(room), "list_rooms", json!({})).await, "roomList");
    let forged = AccessToken::with_api_key(DEV_API_KEY, "not-the-secret")
        .with_grants(VideoGrants { room_list: true, ..VideoGrants::default() })
        .to_jwt()
        .expect("signs");
    assert_refused(sdk.call_with(&forged, "list_rooms", json!({})).await, "signature");
}

/// Dispatches the agent into the caller's room through `sdk` and checks every view of the call:
/// the dispatch and its job, the room, its participants, an update. Answers the dispatch id.
async fn dispatch_and_inspect(stage: &Stage, sdk: &mut Sdk, room: &str) -> (support::agent::Caller, String) {
    let caller = stage.call(room, "").await;
    let dispatch = sdk.call("create_dispatch", json!({"room": room, "agent_name": AGENT})).await.expect("dispatched");
    let dispatch_id = dispatch["id"].as_str().expect("a dispatch id").to_owned();
    assert!(dispatch_id.starts_with("AD_"), "{dispatch}");
    assert_eq!((dispatch["agentName"].as_str(), dispatch["room"].as_str()), (Some(AGENT), Some(room)));

    let greeting = caller.agent_said(1, WAIT).await;
    assert!(!greeting.is_empty(), "the dispatched agent greets the caller");

    // As on LiveKit, the room also holds the default dispatch it got when the caller opened it,
    // which no worker takes here: ours registered under a name.
    let dispatches = sdk.call("list_dispatch", json!({"room": room})).await.expect("listed");
    let names: Vec<&str> = dispatches["agentDispatches"]
        .as_array()
        .expect("dispatches")
        .iter()
        .map(|d| d["agentName"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["", AGENT], "{dispatches}");
    let ours = &dispatches["agentDispatches"][1];
    assert_eq!(ours["id"].as_str(), Some(dispatch_id.as_str()));
    let job = &ours["state"]["jobs"][0];
    assert_eq!(job["room"]["name"].as_str(), Some(room), "the job the worker took: {dispatches}");
    assert_eq!(job["state"]["status"].as_str(), Some("JS_RUNNING"), "{dispatches}");

    let participants = sdk.call("list_participants", json!({"room": room})).await.expect("listed");
    let kinds: Vec<(&str, &str)> = participants["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| (p["identity"].as_str().unwrap_or_default(), p["kind"].as_str().unwrap_or("STANDARD")))
        .collect();
    assert_eq!(kinds.len(), 2, "{participants}");
    assert!(kinds.contains(&("caller", "STANDARD")) && kinds.iter().any(|(_, kind)| *kind == "AGENT"), "{kinds:?}");

    let rooms = sdk.call("list_rooms", json!({"names": [room]})).await.expect("listed");
    assert_eq!(rooms["rooms"][0]["name"].as_str(), Some(room), "{rooms}");
    assert_eq!(rooms["rooms"][0]["numParticipants"].as_u64(), Some(2), "{rooms}");

    let updated = sdk
        .call(
            "update_participant",
            json!({"room": room, "identity": "caller", "name": "Priya", "attributes": {"lead": "hot"}}),
        )
        .await
        .expect("updated");
    assert_eq!((updated["name"].as_str(), updated["attributes"]["lead"].as_str()), (Some("Priya"), Some("hot")));
    (caller, dispatch_id)
}

/// The call record n8n received, and that the worker has no job left.
async fn call_ended(stage: &Stage, room: &str, reason: &str) {
    let record = stage.call_record(WAIT).await.body;
    assert_eq!((record["room"].as_str(), record["end_reason"].as_str()), (Some(room), Some(reason)), "{record}");
    stage.worker.until("no job left", |s| s.job_count == 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn livekit_api_for_python_dispatches_the_agent_and_removes_the_caller() {
    let stage = Stage::start_named(AGENT).await;
    let mut sdk = Sdk::python(&stage.server.url());
    refusals(&mut sdk, "py-call").await;
    let (caller, _) = dispatch_and_inspect(&stage, &mut sdk, "py-call").await;

    sdk.call("remove_participant", json!({"room": "py-call", "identity": "caller"})).await.expect("removed");
    call_ended(&stage, "py-call", "caller_left").await;
    drop(caller);
    let again = sdk.call("remove_participant", json!({"room": "py-call", "identity": "caller"})).await;
    let refused = again.expect_err("gone");
    assert_eq!((refused.code.as_str(), refused.status), ("not_found", 404), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn livekit_server_sdk_for_node_deletes_the_dispatch_then_the_room() {
    let stage = Stage::start_named(AGENT).await;
    let mut sdk = Sdk::node(&stage.server.url());
    refusals(&mut sdk, "node-call").await;
    let (caller, dispatch_id) = dispatch_and_inspect(&stage, &mut sdk, "node-call").await;

    sdk.call("delete_dispatch", json!({"room": "node-call", "dispatch_id": dispatch_id})).await.expect("deleted");
    caller.until("the agent leaves", WAIT, |heard| heard.agent_left.is_some()).await;
    call_ended(&stage, "node-call", "job_terminated").await;
    let listed = sdk.call("list_dispatch", json!({"room": "node-call"})).await.expect("listed");
    let ids: Vec<&str> =
        listed["agentDispatches"].as_array().into_iter().flatten().filter_map(|d| d["id"].as_str()).collect();
    assert!(ids.len() == 1 && !ids.contains(&dispatch_id.as_str()), "only the default dispatch is left: {listed}");

    sdk.call("delete_room", json!({"room": "node-call"})).await.expect("deleted");
    let rooms = sdk.call("list_rooms", json!({})).await.expect("listed");
    assert_eq!(rooms["rooms"].as_array().map(Vec::len), Some(0), "{rooms}");
    let refused = sdk.call("delete_room", json!({"room": "node-call"})).await.expect_err("no such room");
    assert_eq!((refused.code.as_str(), refused.status), ("not_found", 404), "{refused:?}");
}

/// The README's curl example (section "The dev server's server API"), word for word: a token
/// made with openssl, CreateDispatch, then DeleteRoom.
const README_CURL: &str = r#"
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
claims=$(printf '{"iss":"%s","sub":"operator","exp":%d,"video":{"room":"%s","roomAdmin":true,"roomCreate":true}}' \
  "$LIVEKIT_API_KEY" $(( $(date +%s) + 600 )) "$ROOM" | b64url)
signature=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -hmac "$LIVEKIT_API_SECRET" -binary | b64url)
TOKEN="$header.$claims.$signature"
API=${LIVEKIT_URL/ws/http}

case "$STEP" in
dispatch)
curl -sS -X POST "$API/twirp/livekit.AgentDispatchService/CreateDispatch" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"room\": \"$ROOM\", \"agent_name\": \"$AGENT_NAME\"}" ;;
end)
curl -sS -X POST "$API/twirp/livekit.RoomService/DeleteRoom" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"room\": \"$ROOM\"}" ;;
anonymous)
curl -sS -X POST "$API/twirp/livekit.RoomService/DeleteRoom" \
  -H 'Content-Type: application/json' -d "{\"room\": \"$ROOM\"}" ;;
esac
"#;

async fn curl(url: &str, room: &str, step: &str) -> Value {
    let output = Command::new("bash")
        .args(["-c", README_CURL])
        .env("LIVEKIT_URL", url)
        .env("LIVEKIT_API_KEY", DEV_API_KEY)
        .env("LIVEKIT_API_SECRET", DEV_API_SECRET)
        .env("AGENT_NAME", AGENT)
        .env("ROOM", room)
        .env("STEP", step)
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{step}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{step} answered JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_dispatches_the_agent_and_ends_the_call_as_the_readme_shows() {
    let stage = Stage::start_named(AGENT).await;
    let url = stage.server.url();
    let caller = stage.call("curl-call", "").await;

    let refused = curl(&url, "curl-call", "anonymous").await;
    assert_eq!(refused["code"], "unauthenticated", "{refused}");
    assert!(refused["msg"].as_str().is_some_and(|m| m.contains("no access token")), "{refused}");

    let dispatch = curl(&url, "curl-call", "dispatch").await;
    assert!(dispatch["id"].as_str().is_some_and(|id| id.starts_with("AD_")), "{dispatch}");
    assert_eq!(dispatch["agent_name"], AGENT, "JSON answers use the proto field names: {dispatch}");
    caller.agent_said(1, WAIT).await;

    assert_eq!(curl(&url, "curl-call", "end").await, json!({}));
    caller.until("the agent leaves", WAIT, |heard| heard.agent_left.is_some()).await;
    caller.until("the caller is removed", WAIT, |heard| heard.disconnected.is_some()).await;
    call_ended(&stage, "curl-call", "job_terminated").await;
}
