//! The token server's HTTP API, end to end over loopback.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use livekit_api::access_token::TokenVerifier;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TokenServer, settings};

async fn post(
    server: &TokenServer,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response =
        reqwest::Client::new().post(format!("{}{path}", server.url)).body(body).send().await.expect("server reachable");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

async fn get(server: &TokenServer, path: &str) -> (StatusCode, Value) {
    let response = reqwest::get(format!("{}{path}", server.url)).await.expect("server reachable");
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

fn verify(token: &str) -> livekit_api::access_token::Claims {
    TokenVerifier::with_api_key("devkey", "secret").verify(token).expect("token verifies with the LiveKit SDK")
}

fn now() -> usize {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as usize
}

#[tokio::test]
async fn a_token_grants_one_fresh_room_and_nothing_more() {
    let server = TokenServer::start(settings(&[("TOKEN_TTL_SECS", "900")])).await;
    let request = json!({"agentId": "clinic-hi", "language": "hi-IN", "voice": "vidya", "userName": "  Priya Sharma "});
    let (status, _, body) = post(&server, "/api/token", request.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["livekitUrl"], "ws://127.0.0.1:7880", "as configured, without a trailing slash");
    let claims = verify(body["token"].as_str().expect("token"));

    assert_eq!(claims.sub, body["identity"].as_str().expect("identity"));
    assert!(claims.sub.starts_with("user-"));
    assert_eq!(claims.name, "Priya Sharma", "trimmed user name");
    assert_eq!(claims.kind, "standard");
    let room = body["roomName"].as_str().expect("room");
    assert!(room.starts_with("call-clinic-hi-"), "{room}");
    assert_eq!(claims.video.room, room);
    assert!(claims.video.room_join);
    assert_eq!(
        (claims.video.can_publish, claims.video.can_subscribe, claims.video.can_publish_data),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(claims.video.can_publish_sources, ["microphone"]);
    assert!(
        !claims.video.room_admin && !claims.video.room_create && !claims.video.room_list && !claims.video.room_record
    );
    assert!(!claims.video.agent && !claims.video.hidden && !claims.video.recorder && !claims.video.ingress_admin);
    assert_eq!(claims.video.can_update_own_metadata, Some(false));
    let metadata: Value = serde_json::from_str(&claims.metadata).expect("metadata is JSON");
    assert_eq!(metadata, json!({"agentId": "clinic-hi", "language": "hi-IN", "voice": "vidya"}));
    assert!(claims.room_config.is_none(), "no explicit dispatch without AGENT_NAME");
    assert!(claims.nbf <= now() && claims.exp > now() + 890 && claims.exp <= now() + 900, "15 minute TTL");

    let (_, _, second) = post(&server, "/api/token", request.to_string()).await;
    assert_ne!(second["identity"], body["identity"], "identities are unique per request");
    assert_ne!(second["roomName"], body["roomName"], "each call gets a fresh room");
}

#[tokio::test]
async fn defaults_fill_in_what_the_caller_leaves_out() {
    let server = TokenServer::start(settings(&[])).await;
    let (status, _, body) = post(&server, "/api/token", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verify(body["token"].as_str().expect("token"));
    assert_eq!(claims.name, "Guest");
    let metadata: Value = serde_json::from_str(&claims.metadata).expect("JSON");
    assert_eq!(
        metadata,
        json!({"agentId": "default", "language": "en-IN", "voice": "anushka"}),
        "the default profile's choices"
    );
}

#[tokio::test]
async fn a_named_agent_is_dispatched_explicitly_with_the_same_metadata() {
    let server = TokenServer::start(settings(&[("AGENT_NAME", "receptionist")])).await;
    let request = json!({"agentId": "realestate-en", "language": "en-IN", "voice": "karun", "userName": "Ravi"});
    let (status, _, body) = post(&server, "/api/token", request.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verify(body["token"].as_str().expect("token"));
    let config = claims.room_config.expect("roomConfig");
    assert_eq!(config.agents.len(), 1);
    assert_eq!(config.agents[0].agent_name, "receptionist");
    assert_eq!(config.agents[0].metadata, claims.metadata);

    let raw = body["token"].as_str().expect("token").split('.').nth(1).expect("payload").to_owned();
    let payload: Value = serde_json::from_slice(&base64_url(&raw)).expect("JSON payload");
    assert_eq!(payload["roomConfig"]["agents"][0]["agentName"], "receptionist", "camelCase as LiveKit servers read it");
}

#[tokio::test]
async fn callers_cannot_ask_for_other_grants() {
    let server = TokenServer::start(settings(&[])).await;
    let request = json!({
        "userName": "Mallory", "room": "someone-elses-room", "identity": "agent-AJ_1", "roomAdmin": true,
        "canPublishSources": ["camera", "screen_share"], "video": {"roomAdmin": true}, "kind": "agent", "ttl": 999999,
    });
    let (status, _, body) = post(&server, "/api/token", request.to_string()).await;
    assert_eq!(status, StatusCode::OK, "unknown fields are ignored: {body}");
    let claims = verify(body["token"].as_str().expect("token"));
    assert_ne!(claims.video.room, "someone-elses-room");
    assert!(claims.sub.starts_with("user-") && claims.kind == "standard");
    assert!(!claims.video.room_admin && !claims.video.agent);
    assert_eq!(claims.video.can_publish_sources, ["microphone"]);
}

#[tokio::test]
async fn bad_requests_are_refused_naming_the_field() {
    let server = TokenServer::start(settings(&[])).await;
    let cases: Vec<(String, StatusCode, &str, Option<&str>)> = vec![
        (json!({"language": "fr-FR"}).to_string(), StatusCode::BAD_REQUEST, "unsupported_language", Some("language")),
        (
            json!({"language": "hi-IN", "voice": "shubh"}).to_string(),
            StatusCode::BAD_REQUEST,
            "unsupported_voice",
            Some("voice"),
        ),
        (json!({"agentId": "ghost"}).to_string(), StatusCode::NOT_FOUND, "unknown_agent", Some("agentId")),
        (json!({"agentId": "../etc"}).to_string(), StatusCode::BAD_REQUEST, "invalid_agent_id", Some("agentId")),
        (json!({"userName": "   "}).to_string(), StatusCode::BAD_REQUEST, "invalid_user_name", Some("userName")),
        (
            json!({"userName": "x".repeat(65)}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_user_name",
            Some("userName"),
        ),
        (json!({"userName": "Eve\u{7}"}).to_string(), StatusCode::BAD_REQUEST, "invalid_user_name", Some("userName")),
        (json!({"userName": 42}).to_string(), StatusCode::BAD_REQUEST, "invalid_field", Some("userName")),
        ("{\"userName\": ".to_owned(), StatusCode::BAD_REQUEST, "invalid_json", None),
        ("[1, 2]".to_owned(), StatusCode::BAD_REQUEST, "invalid_json", None),
        (
            format!("{{\"userName\": \"{}\"}}", "y".repeat(20_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, _, answer) = post(&server, "/api/token", body.clone()).await;
        let shown = &body[..body.len().min(60)];
        assert_eq!(got, status, "{shown}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{shown}: {answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{shown}: {answer}");
        assert_eq!(answer["error"]["field"].as_str(), field, "{shown}: {answer}");
        if let Some(field) = field {
            assert!(
                answer["error"]["message"].as_str().is_some_and(|m| m.contains(field)),
                "message names `{field}`: {answer}"
            );
        }
    }
    let (status, _, _) = post(&server, "/api/token", json!({"userName": "x".repeat(64)}).to_string()).await;
    assert_eq!(status, StatusCode::OK, "64 characters are allowed");
}

#[tokio::test]
async fn token_requests_are_rate_limited_per_client() {
    let server = TokenServer::start(settings(&[("TOKEN_RATE_LIMIT_PER_MIN", "3")])).await;
    let forwarded = |ip: &'static str| {
        let url = format!("{}/api/token", server.url);
        async move { reqwest::Client::new().post(url).header("x-forwarded-for", ip).send().await.expect("reachable") }
    };
    for _ in 0..3 {
        assert_eq!(forwarded("203.0.113.1").await.status(), StatusCode::OK);
    }
    let limited = forwarded("203.0.113.2").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "X-Forwarded-For is not trusted by default");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=20).contains(&retry_after), "one token per 20 s at 3/min: {retry_after}");
    let body: Value = limited.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited");

    let trusting =
        TokenServer::start(settings(&[("TOKEN_RATE_LIMIT_PER_MIN", "1"), ("TRUST_FORWARDED_FOR", "true")])).await;
    let send = |chain: &'static str| {
        let url = format!("{}/api/token", trusting.url);
        async move {
            reqwest::Client::new().post(url).header("x-forwarded-for", chain).send().await.expect("reachable").status()
        }
    };
    assert_eq!(send("198.51.100.7").await, StatusCode::OK);
    assert_eq!(send("198.51.100.8").await, StatusCode::OK, "a different client behind the proxy");
    assert_eq!(
        send("1.2.3.4, 198.51.100.7").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged left entry does not reset the limit"
    );
}

#[tokio::test]
async fn cache_invalidation_needs_the_admin_token() {
    let disabled = TokenServer::start(settings(&[])).await;
    let (status, _, body) = post(&disabled, "/api/invalidate-cache", "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("admin_disabled")));

    let server = TokenServer::start(settings(&[("ADMIN_TOKEN", "a-long-admin-token-1234")])).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/invalidate-cache", server.url);
    assert_eq!(client.post(&url).send().await.expect("reachable").status(), StatusCode::UNAUTHORIZED);
    let wrong = client.post(&url).bearer_auth("a-long-admin-token-1235").send().await.expect("reachable");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let all = client.post(&url).bearer_auth("a-long-admin-token-1234").send().await.expect("reachable");
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(all.json::<Value>().await.expect("JSON")["status"], "ok");
    let one = client
        .post(&url)
        .bearer_auth("a-long-admin-token-1234")
        .body(r#"{"agentId":"clinic-hi"}"#)
        .send()
        .await
        .expect("reachable");
    let body: Value = one.json().await.expect("JSON");
    assert_eq!(body["agentId"], "clinic-hi");
    let bad = client
        .post(&url)
        .bearer_auth("a-long-admin-token-1234")
        .body(r#"{"agentId":"a b"}"#)
        .send()
        .await
        .expect("reachable");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn catalog_endpoints_describe_languages_agents_and_profiles() {
    let server = TokenServer::start(settings(&[])).await;
    let (status, health) = get(&server, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "healthy");
    chrono::DateTime::parse_from_rfc3339(health["timestamp"].as_str().expect("timestamp")).expect("ISO 8601");

    let (_, languages) = get(&server, "/api/languages").await;
    let list = languages["languages"].as_array().expect("languages");
    assert_eq!(list.len(), 11);
    let hindi = list.iter().find(|l| l["code"] == "hi-IN").expect("Hindi");
    assert!(hindi["voices"].as_array().expect("voices").iter().any(|v| v["id"] == "arya" && v["gender"] == "female"));
    assert_eq!(
        (languages["defaultLanguage"].as_str(), languages["defaultVoice"].as_str()),
        (Some("hi-IN"), Some("arya"))
    );
    let (_, for_agent) = get(&server, "/api/languages?agentId=realestate-en").await;
    assert_eq!(
        (for_agent["defaultLanguage"].as_str(), for_agent["defaultVoice"].as_str()),
        (Some("en-IN"), Some("karun"))
    );
    let (status, _) = get(&server, "/api/languages?agentId=ghost").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, agents) = get(&server, "/api/agents").await;
    let ids: Vec<_> = agents["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(ids.contains(&"default".to_owned()) && ids.contains(&"clinic-hi".to_owned()), "{ids:?}");

    let (status, profile) = get(&server, "/api/config/clinic-hi").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((profile["language"].as_str(), profile["tts"]["model"].as_str()), (Some("hi-IN"), Some("bulbul:v2")));
    let (status, error) = get(&server, "/api/config/ghost").await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_agent")));
}

#[tokio::test]
async fn cors_is_same_origin_unless_origins_are_configured() {
    let preflight = |url: String, origin: &'static str| async move {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .expect("reachable")
    };
    let closed = TokenServer::start(settings(&[])).await;
    let answer = preflight(format!("{}/api/token", closed.url), "https://evil.example").await;
    assert!(answer.headers().get("access-control-allow-origin").is_none());

    let open = TokenServer::start(settings(&[("CORS_ORIGINS", "https://app.example.com")])).await;
    let allowed = preflight(format!("{}/api/token", open.url), "https://app.example.com").await;
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    let other = preflight(format!("{}/api/token", open.url), "https://evil.example").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).expect("base64url")
}
