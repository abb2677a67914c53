//! The token server's HTTP API, end to end over loopback.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use livekit_api::access_token::TokenVerifier;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::n8n::{Answer, MockN8n, profile_json};
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
    let request = json!({"agentId": "clinic-hi", "language": "hi-IN", "voice": "neha", "userName": "  Priya Sharma "});
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
    assert_eq!(metadata, json!({"agentId": "clinic-hi", "language": "hi-IN", "voice": "neha"}));
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
        json!({"agentId": "default", "language": "en-IN", "voice": "ritu"}),
        "the default profile's choices"
    );
}

#[tokio::test]
async fn a_named_agent_is_dispatched_explicitly_with_the_same_metadata() {
    let server = TokenServer::start(settings(&[("AGENT_NAME", "receptionist")])).await;
    let request = json!({"agentId": "realestate-en", "language": "en-IN", "voice": "aditya", "userName": "Ravi",
        "variables": {"caller_name": "Ravi Kumar", "budget_lakh": 90}});
    let (status, _, body) = post(&server, "/api/token", request.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verify(body["token"].as_str().expect("token"));
    let metadata: Value = serde_json::from_str(&claims.metadata).expect("metadata is JSON");
    assert_eq!(
        metadata["variables"],
        json!({"caller_name": "Ravi Kumar", "budget_lakh": "90"}),
        "the page's placeholder values travel with the call, as text"
    );
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
            json!({"variables": {"note": "x".repeat(501)}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_variables",
            Some("variables"),
        ),
        (
            json!({"language": "hi-IN", "voice": "arya"}).to_string(),
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
        (
            json!({"userName": "Ravi \u{202E}gnp.exe"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_user_name",
            Some("userName"),
        ),
        (
            json!({"userName": "Ra\u{200B}vi"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_user_name",
            Some("userName"),
        ),
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
    let hindi_voices = hindi["voices"].as_array().expect("voices");
    assert!(hindi_voices.iter().any(|v| v["id"] == "ritu" && v["gender"] == "female"), "{hindi}");
    assert_eq!(hindi_voices.len(), 37, "bulbul:v3, the default model, has 37 voices");
    assert_eq!(
        (languages["defaultLanguage"].as_str(), languages["defaultVoice"].as_str()),
        (Some("hi-IN"), Some("shubh"))
    );
    assert_eq!(
        (languages["ttsProvider"].as_str(), languages["ttsModel"].as_str()),
        (Some("sarvam"), Some("bulbul:v3"))
    );
    let (_, for_agent) = get(&server, "/api/languages?agentId=realestate-en").await;
    assert_eq!(
        (for_agent["defaultLanguage"].as_str(), for_agent["defaultVoice"].as_str()),
        (Some("en-IN"), Some("rahul"))
    );
    // Another provider's voices, in the languages every provider of the agent speaks.
    let (_, hotel) = get(&server, "/api/languages?agentId=hotel-en").await;
    assert_eq!(hotel["ttsProvider"], "elevenlabs", "{hotel}");
    let codes: Vec<&str> =
        hotel["languages"].as_array().expect("languages").iter().filter_map(|l| l["code"].as_str()).collect();
    assert_eq!(codes, ["hi-IN", "en-IN"], "Deepgram and ElevenLabs share these with Sarvam");
    assert!(
        hotel["voices"]
            .as_array()
            .expect("voices")
            .iter()
            .any(|v| v["id"] == "EXAVITQu4vr4xnSDxMaL" && v["name"] == "Sarah")
    );
    let (_, openai) = get(&server, "/api/languages?agentId=insurance-hi").await;
    assert!(openai["voices"].as_array().expect("voices").iter().any(|v| v["id"] == "coral"), "{openai}");
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
    assert_eq!((profile["language"].as_str(), profile["voice"].as_str()), (Some("hi-IN"), Some("priya")));
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

#[tokio::test]
async fn error_messages_repeat_at_most_the_start_of_a_value() {
    let server = TokenServer::start(settings(&[])).await;
    let huge = "x".repeat(15_000);
    for (body, field) in [
        (json!({"agentId": huge}), "agentId"),
        (json!({"language": huge}), "language"),
        (json!({"language": "hi-IN", "voice": huge}), "voice"),
    ] {
        let (status, _, answer) = post(&server, "/api/token", body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        let message = answer["error"]["message"].as_str().expect("a message");
        assert!(message.contains(field), "{message}");
        assert!(message.len() < 400, "`{field}` is echoed in full: {} bytes", message.len());
    }
    let (status, answer) = get(&server, &format!("/api/languages?agentId={huge}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"]["message"].as_str().is_some_and(|m| m.len() < 400), "{answer}");
}

#[tokio::test]
async fn every_api_route_is_rate_limited_per_client() {
    let server = TokenServer::start(settings(&[("API_RATE_LIMIT_PER_MIN", "3")])).await;
    for path in ["/api/config/default", "/api/languages?agentId=default", "/api/agents"] {
        assert_eq!(get(&server, path).await.0, StatusCode::OK, "{path}");
    }
    for path in ["/api/config/clinic-hi", "/api/languages?agentId=ghost", "/api/agents"] {
        let response = reqwest::get(format!("{}{path}", server.url)).await.expect("reachable");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "rate_limited");
    }
    let (status, _, _) = post(&server, "/api/invalidate-cache", "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "admin routes too");
    let (status, _, body) = post(&server, "/api/token", "").await;
    assert_eq!(status, StatusCode::OK, "tokens have their own budget: {body}");
    assert_eq!(get(&server, "/health").await.0, StatusCode::OK, "health checks are not API calls");
}

#[tokio::test]
async fn forwarded_addresses_with_ports_are_their_own_clients_and_ipv6_counts_by_64() {
    let server =
        TokenServer::start(settings(&[("TOKEN_RATE_LIMIT_PER_MIN", "1"), ("TRUST_FORWARDED_FOR", "true")])).await;
    let send = |entry: &'static str| {
        let url = format!("{}/api/token", server.url);
        async move {
            reqwest::Client::new().post(url).header("x-forwarded-for", entry).send().await.expect("reachable").status()
        }
    };
    assert_eq!(send("10.9.1.2:41234").await, StatusCode::OK);
    assert_eq!(send("10.9.1.3:41234").await, StatusCode::OK, "another client, not the proxy's one budget");
    assert_eq!(send("10.9.1.2:50000").await, StatusCode::TOO_MANY_REQUESTS, "the same client on another port");
    assert_eq!(send("[2001:db8::1]:443").await, StatusCode::OK);
    assert_eq!(send("[2001:db8::2]:443").await, StatusCode::TOO_MANY_REQUESTS, "the same /64");
    assert_eq!(send("2001:db8:0:1::1").await, StatusCode::OK, "the next /64");
}

#[tokio::test]
async fn the_profile_is_public_in_part_and_whole_only_with_the_admin_token() {
    let server = TokenServer::start(settings(&[("ADMIN_TOKEN", "a-long-admin-token-1234")])).await;
    let (status, public) = get(&server, "/api/config/clinic-hi").await;
    assert_eq!(status, StatusCode::OK);
    for field in ["id", "name", "greeting", "language", "voice"] {
        assert!(public[field].is_string(), "`{field}` is public: {public}");
    }
    assert!(public["languages"].as_array().is_some_and(|l| l.iter().any(|c| c == "hi-IN")), "{public}");
    assert!(public["voices"].as_array().is_some_and(|v| v.iter().any(|v| v["id"] == "neha")), "{public}");
    for field in ["system_prompt", "llm", "stt", "tts", "turn", "lead_fields", "apology"] {
        assert!(public.get(field).is_none(), "`{field}` is not for everyone: {public}");
    }
    let text = public.to_string();
    assert!(!text.contains("You are") && !text.contains("llama"), "no prompt, no model: {text}");

    let url = format!("{}/api/config/clinic-hi", server.url);
    let client = reqwest::Client::new();
    let full: Value = client
        .get(&url)
        .bearer_auth("a-long-admin-token-1234")
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("JSON");
    assert!(full["system_prompt"].as_str().is_some_and(|p| p.len() > 400), "{full}");
    assert_eq!(full["tts"][0]["model"], "bulbul:v3");
    let wrong = client.get(&url).bearer_auth("a-long-admin-token-1235").send().await.expect("reachable");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "a wrong token is refused, not downgraded");

    let disabled = TokenServer::start(settings(&[])).await;
    let answer =
        client.get(format!("{}/api/config/clinic-hi", disabled.url)).bearer_auth("x").send().await.expect("reachable");
    assert_eq!(answer.status(), StatusCode::FORBIDDEN, "admin access is off without ADMIN_TOKEN");
}

/// 1,100 requests for made-up agent ids, then n8n fails: callers of the real agent still get the
/// last profile n8n gave, not a 503.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_agent_ids_do_not_cost_the_real_profile_during_an_outage() {
    let n8n = MockN8n::start().await;
    n8n.answer("n8n-sales", Answer::Json(reqwest::StatusCode::OK, profile_json("n8n-sales", "Sales from n8n")));
    let base = n8n.base_url.to_string();
    let server = TokenServer::start(settings(&[
        ("N8N_BASE_URL", &base),
        ("PROFILE_CACHE_TTL_SECS", "1"),
        ("API_RATE_LIMIT_PER_MIN", "0"),
    ]))
    .await;
    let (status, profile) = get(&server, "/api/config/n8n-sales").await;
    assert_eq!((status, profile["name"].as_str()), (StatusCode::OK, Some("Sales from n8n")));

    let statuses: Vec<StatusCode> = futures_util::stream::iter(0..1_100)
        .map(|n| {
            let url = format!("{}/api/config/made-up-{n}", server.url);
            async move { reqwest::get(url).await.expect("reachable").status() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::NOT_FOUND), "made-up ids are unknown");

    n8n.answer("n8n-sales", Answer::ErrorInWorkflow);
    let asked_before = n8n.hits();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, profile) = get(&server, "/api/config/n8n-sales").await;
        assert_eq!((status, profile["name"].as_str()), (StatusCode::OK, Some("Sales from n8n")), "{profile}");
        if n8n.hits() > asked_before {
            break;
        }
        assert!(Instant::now() < deadline, "the profile went stale and n8n was asked again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn livekit_credentials_never_reach_browsers() {
    let server = TokenServer::start(settings(&[
        ("LIVEKIT_URL", "wss://lkuser:lkpass@lk.example.com"),
        ("LIVEKIT_PUBLIC_URL", "wss://pubuser:pubpass@lk-public.example.com:7443/"),
    ]))
    .await;
    let response =
        reqwest::Client::new().post(format!("{}/api/token", server.url)).body("").send().await.expect("reachable");
    let csp = response.headers()["content-security-policy"].to_str().expect("ASCII").to_owned();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["livekitUrl"], "wss://lk-public.example.com:7443");
    assert!(csp.contains("wss://lk-public.example.com:7443"), "{csp}");
    assert!(!csp.contains("pubpass") && !csp.contains("pubuser"), "{csp}");
}

#[tokio::test]
async fn the_page_forbids_framing_and_foreign_scripts() {
    let server = TokenServer::start(settings(&[])).await;
    for path in ["/", "/app.js", "/api/agents", "/nonexistent"] {
        let response = reqwest::get(format!("{}{path}", server.url)).await.expect("reachable");
        let headers = response.headers();
        let csp = headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:7880 http://127.0.0.1:7880"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
}

/// A request announcing a 1 GB body is answered 413 at once, before any of the body is sent,
/// and the connection is closed.
#[tokio::test]
async fn a_huge_announced_body_is_refused_at_once() {
    let server = TokenServer::start(settings(&[])).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("reachable");
    let head =
        "POST /api/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("answered and closed without waiting for the body")
        .expect("readable");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"body_too_large\""), "{answer}");
}
