//! Bad input at the dev server: refused tokens get HTTP 401/400 with a reason (and a clear error
//! from our participant and from `agent-worker connect`); garbage frames, text frames and
//! malformed SDP close only their own connection; other rooms keep working and nothing panics.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use livekit_api::access_token::{AccessToken, Claims, VideoGrants};
use livekit_protocol as pb;
use support::livekit::{LOOPBACK, dev_server, join, token, wait_for};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use voice_agent::devserver::DevServer;
use voice_agent::livekit::room::{self, ConnectOptions, RoomEvent};
use voice_agent::livekit::signal::{self, ConnectError};

const LIMIT: Duration = Duration::from_secs(10);
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Server tasks run on runtime workers; test assertions run on the tests' own threads.
        if std::thread::current().name().is_some_and(|name| name.starts_with("tokio-runtime-worker")) {
            PANICS.fetch_add(1, Ordering::SeqCst);
        }
        default(info);
    }));
}

/// Signs claims as given (expired ones included), which LiveKit's token builder cannot do.
fn signed(claims: &Claims, secret: &str) -> String {
    // livekit-token installs jsonwebtoken's HMAC provider on its first use; make sure it has.
    let _ = Claims::from_unverified("");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signs")
}

fn claims(identity: &str, grants: VideoGrants) -> Claims {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as usize;
    Claims { iss: "devkey".into(), sub: identity.into(), nbf: now, exp: now + 600, video: grants, ..Claims::default() }
}

fn join_grants() -> VideoGrants {
    VideoGrants { room_join: true, room: "r".into(), ..VideoGrants::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_tokens_get_an_http_status_and_a_reason() {
    let server = dev_server().await;
    let expired = {
        let mut c = claims("a", join_grants());
        c.exp -= 3600;
        c.nbf -= 3600;
        signed(&c, "secret")
    };
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("missing", None, 401, "no access token"),
        ("malformed", Some("not-a-jwt".into()), 401, "not a valid JWT"),
        ("expired", Some(expired), 401, "expired"),
        ("wrong secret", Some(signed(&claims("a", join_grants()), "not-the-secret")), 401, "signature"),
        (
            "unknown key",
            Some(
                AccessToken::with_api_key("otherkey", "secret")
                    .with_identity("a")
                    .with_grants(join_grants())
                    .to_jwt()
                    .expect("signs"),
            ),
            401,
            "unknown API key",
        ),
        (
            "no join grant",
            Some(signed(&claims("a", VideoGrants { room: "r".into(), ..VideoGrants::default() }), "secret")),
            401,
            "roomJoin",
        ),
        ("no identity", Some(signed(&claims("", join_grants()), "secret")), 400, "identity"),
    ];
    let http = reqwest::Client::new();
    for (name, token, status, reason) in cases {
        let mut request = http.get(format!("http://{}/rtc/validate", server.address()));
        if let Some(token) = &token {
            request = request.query(&[("access_token", token)]);
        }
        let response = request.send().await.expect("reachable");
        assert_eq!(response.status().as_u16(), status, "{name}");
        assert_eq!(
            response.headers().get("access-control-allow-origin").map(|v| v.as_bytes()),
            Some(&b"*"[..]),
            "{name}: browsers can read it"
        );
        assert!(response.text().await.expect("body").contains(reason), "{name}");

        let Some(token) = token else {
            let error = room::connect(&server.url(), "", ConnectOptions::default()).await.expect_err(name);
            assert!(
                matches!(error, ConnectError::InvalidToken(_)),
                "an empty token is refused before connecting: {error}"
            );
            continue;
        };
        let error = room::connect(&server.url(), &token, ConnectOptions::default()).await.expect_err(name);
        match error {
            ConnectError::Refused { status: got, reason: why } => {
                assert_eq!(got, status, "{name}");
                assert!(why.contains(reason), "{name}: {why}");
            }
            other => panic!("{name}: expected a refusal, got {other}"),
        }
    }
    let plain = http
        .get(format!("http://{}/rtc", server.address()))
        .query(&[("access_token", token("r", "a"))])
        .send()
        .await
        .expect("reachable");
    assert_eq!(plain.status(), 404, "/rtc without a WebSocket upgrade");
    let v1 = http.get(format!("http://{}/rtc/v1/validate", server.address())).send().await.expect("reachable");
    assert_eq!(v1.status(), 404, "single-PC mode is absent, so livekit-client falls back to /rtc");
    server.stop().await;
}

#[tokio::test]
async fn the_connect_command_explains_a_refused_token() {
    let server = dev_server().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .args(["connect", "--room", "r", "--url", &server.url()])
        .env("LIVEKIT_API_KEY", "devkey")
        .env("LIVEKIT_API_SECRET", "not-the-secret")
        .output()
        .await
        .expect("agent-worker runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot join room `r`") && stderr.contains("HTTP 401") && stderr.contains("signature"),
        "{stderr}"
    );
    server.stop().await;
}

/// A raw signalling connection, as a broken client would open it.
async fn raw_join(server: &DevServer, room: &str, identity: &str) -> signal::WsStream {
    let url = signal::rtc_url(&server.url(), &signal::JoinParams { auto_subscribe: true }).expect("url");
    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert("authorization", format!("Bearer {}", token(room, identity)).parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("upgraded");
    let first = signal::next_message(&mut ws).await.expect("join response");
    assert!(matches!(first, pb::signal_response::Message::Join(_)));
    ws
}

/// True when the server ends the connection within the limit.
async fn closed_by_server(ws: &mut signal::WsStream) -> bool {
    tokio::time::timeout(LIMIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_clients_only_break_their_own_connection() {
    count_panics();
    let server = dev_server().await;
    let (alice, _alice_events) = join(&server, "healthy", "alice").await;
    let (_bob, mut bob_events) = join(&server, "healthy", "bob").await;

    let mut garbage = raw_join(&server, "broken", "garbage").await;
    garbage.send(Message::Binary(vec![0xff, 0xfe, 0x00, 0x13, 0x37].into())).await.expect("sent");
    assert!(closed_by_server(&mut garbage).await, "garbage frames close the connection");

    let mut text = raw_join(&server, "broken", "text").await;
    text.send(Message::Text("{\"offer\":{}}".into())).await.expect("sent");
    assert!(closed_by_server(&mut text).await, "text frames close the connection");

    let mut bad_sdp = raw_join(&server, "broken", "bad-sdp").await;
    let offer = pb::SessionDescription {
        r#type: "offer".into(),
        sdp: "v=0\r\nthis is not sdp\r\nm=audio".into(),
        ..Default::default()
    };
    bad_sdp
        .send(Message::Binary(signal::encode_request(pb::signal_request::Message::Offer(offer)).into()))
        .await
        .expect("sent");
    assert!(closed_by_server(&mut bad_sdp).await, "malformed SDP closes the connection");

    alice.send_data(b"still here".to_vec(), None, Vec::new(), true).await.expect("sent");
    let payload = wait_for(&mut bob_events, LIMIT, |e| match e {
        RoomEvent::DataReceived { payload, .. } => Some(payload),
        _ => None,
    })
    .await;
    assert_eq!(payload, b"still here", "the other room keeps working");
    let options = ConnectOptions { bind_ips: Some(vec![LOOPBACK]), ..ConnectOptions::default() };
    room::connect(&server.url(), &token("broken", "newcomer"), options).await.expect("the server still accepts joins");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "nothing panicked");
    server.stop().await;
}
