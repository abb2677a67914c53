//! One hostile or stalled connection cannot make the dev server hold more than a bounded amount:
//! floods of ICE candidates or track requests, a participant that never reads its socket, and
//! more participants, rooms or connections than allowed are refused or closed, while everyone
//! else carries on. And a dev server open to the network with the well-known keys says so.

mod support;

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_protocol as pb;
use pb::{signal_request, signal_response};
use support::livekit::{dev_server, dev_server_with, token};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use voice_agent::devserver::{DEV_API_KEY, DEV_API_SECRET, DevServer};
use voice_agent::livekit::peer::CandidateInit;
use voice_agent::livekit::signal;

const LIMIT: Duration = Duration::from_secs(30);

fn join_request(server: &DevServer, token: &str) -> tungstenite::handshake::client::Request {
    let url = signal::rtc_url(&server.url(), &signal::JoinParams { auto_subscribe: true }).expect("url");
    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    request
}

/// A raw signalling connection and the first message the server sent on it.
async fn raw_join(server: &DevServer, token: &str) -> (signal::WsStream, signal_response::Message) {
    let (mut ws, _) = tokio_tungstenite::connect_async(join_request(server, token)).await.expect("upgraded");
    let first = next(&mut ws).await.expect("a first message");
    (ws, first)
}

async fn next<S>(ws: &mut S) -> Option<signal_response::Message>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await? {
            Ok(Message::Binary(bytes)) => return signal::decode_response(&bytes).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn send<S>(ws: &mut S, message: signal_request::Message) -> bool
where
    S: Sink<Message> + Unpin,
{
    ws.send(Message::Binary(signal::encode_request(message).into())).await.is_ok()
}

/// True when the server ends the connection within the limit.
async fn closed_by_server(ws: &mut signal::WsStream) -> bool {
    tokio::time::timeout(LIMIT, async { while next(ws).await.is_some() {} }).await.is_ok()
}

fn is_join(message: &signal_response::Message) -> bool {
    matches!(message, signal_response::Message::Join(_))
}

fn refused_join(message: &signal_response::Message) -> bool {
    matches!(message, signal_response::Message::Leave(leave) if leave.reason == pb::DisconnectReason::JoinFailure as i32)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_ice_candidates_closes_the_connection() {
    let server = dev_server().await;
    let (mut flood, first) = raw_join(&server, &token("flood", "flooder")).await;
    assert!(is_join(&first));
    // Before any offer, so every candidate waits for a description that never comes.
    for port in 0..5_000u32 {
        let candidate = format!("candidate:{port} 1 udp 2130706431 127.0.0.1 {} typ host", 10_000 + port);
        let trickle = pb::TrickleRequest {
            candidate_init: CandidateInit::new(candidate, "0").to_json(),
            target: pb::SignalTarget::Publisher as i32,
            r#final: false,
        };
        if !send(&mut flood, signal_request::Message::Trickle(trickle)).await {
            break;
        }
    }
    assert!(closed_by_server(&mut flood).await, "the server closes a client that floods candidates");
    let (_healthy, first) = raw_join(&server, &token("flood", "healthy")).await;
    assert!(is_join(&first), "the room still takes participants");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn track_requests_past_the_limit_are_refused() {
    let server = dev_server().await;
    let (mut client, first) = raw_join(&server, &token("tracks", "publisher")).await;
    assert!(is_join(&first));
    const REQUESTS: usize = 1_000;
    for index in 0..REQUESTS {
        let request = pb::AddTrackRequest {
            cid: format!("cid-{index}"),
            name: "microphone".into(),
            r#type: pb::TrackType::Audio as i32,
            source: pb::TrackSource::Microphone as i32,
            ..Default::default()
        };
        assert!(send(&mut client, signal_request::Message::AddTrack(request)).await, "sent");
    }
    let (mut published, mut refused) = (0, 0);
    let counted = tokio::time::timeout(LIMIT, async {
        while published + refused < REQUESTS {
            match next(&mut client).await {
                Some(signal_response::Message::TrackPublished(_)) => published += 1,
                Some(signal_response::Message::RequestResponse(response))
                    if response.reason == pb::request_response::Reason::LimitExceeded as i32 =>
                {
                    refused += 1
                }
                Some(_) => {}
                None => break,
            }
        }
    })
    .await;
    assert!(counted.is_ok(), "every request was answered ({published} published, {refused} refused)");
    assert_eq!((published, refused), (16, REQUESTS - 16), "at most 16 tracks per participant");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_participant_that_never_reads_is_closed_and_the_room_goes_on() {
    let server = dev_server().await;

    // A client with a small receive buffer that reads its join response and then nothing.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small receive buffer");
    let tcp = socket.connect(server.address()).await.expect("connects");
    let (mut stalled, _) =
        tokio_tungstenite::client_async(join_request(&server, &token("slow", "stalled")), tcp).await.expect("upgraded");
    assert!(next(&mut stalled).await.is_some_and(|m| is_join(&m)));

    // Another participant changes its metadata again and again, each time once the server has
    // told it the last change: every change is also an update the stalled client should read.
    let (chatty, first) = raw_join(&server, &token("slow", "chatty")).await;
    assert!(is_join(&first));
    let (mut chatty_tx, mut chatty_rx) = chatty.split();
    let (echoed_tx, mut echoed) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(async move {
        while let Some(message) = next(&mut chatty_rx).await {
            let signal_response::Message::Update(update) = message else { continue };
            if update.participants.iter().any(|p| p.identity == "chatty") {
                let _ = echoed_tx.send(());
            }
            if update
                .participants
                .iter()
                .any(|p| p.identity == "stalled" && p.state == pb::participant_info::State::Disconnected as i32)
            {
                return true;
            }
        }
        false
    });
    let filler = "x".repeat(100 * 1024);
    let flood = async {
        for round in 0..2_000 {
            let update = pb::UpdateParticipantMetadata {
                metadata: format!("{round} {filler}"),
                request_id: round,
                ..Default::default()
            };
            if !send(&mut chatty_tx, signal_request::Message::UpdateMetadata(update)).await
                || echoed.recv().await.is_none()
            {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LIMIT, flood).await;
    let removed = tokio::time::timeout(LIMIT, watcher).await;
    assert!(
        matches!(removed, Ok(Ok(true))),
        "the participant that does not read is closed and the others see it leave"
    );
    drop(stalled);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rooms_take_no_more_participants_than_allowed() {
    let server = dev_server_with(|config, _| {
        config.limits.max_participants_per_room = 2;
        config.limits.max_rooms = 2;
    })
    .await;
    let (_a, first) = raw_join(&server, &token("one", "a")).await;
    assert!(is_join(&first));
    let (_b, first) = raw_join(&server, &token("one", "b")).await;
    assert!(is_join(&first));
    let (mut c, first) = raw_join(&server, &token("one", "c")).await;
    assert!(refused_join(&first), "a third participant is refused with a leave (JOIN_FAILURE): {first:?}");
    assert!(closed_by_server(&mut c).await);

    // The creating token's roomConfig.maxParticipants is honoured too.
    let grants = VideoGrants { room_join: true, room: "two".into(), ..VideoGrants::default() };
    let config = pb::RoomConfiguration { max_participants: 1, ..Default::default() };
    let limited = AccessToken::with_api_key(DEV_API_KEY, DEV_API_SECRET)
        .with_identity("d")
        .with_grants(grants)
        .with_room_config(config)
        .to_jwt()
        .expect("signs");
    let (_d, first) = raw_join(&server, &limited).await;
    assert!(is_join(&first));
    let (mut e, first) = raw_join(&server, &token("two", "e")).await;
    assert!(refused_join(&first), "roomConfig allows one: {first:?}");
    assert!(closed_by_server(&mut e).await);

    let (mut f, first) = raw_join(&server, &token("three", "f")).await;
    assert!(refused_join(&first), "two rooms are open, the most allowed: {first:?}");
    assert!(closed_by_server(&mut f).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_limit_are_refused_until_one_closes() {
    let server = dev_server_with(|config, _| config.limits.max_connections = 2).await;
    let (a, first) = raw_join(&server, &token("one", "a")).await;
    assert!(is_join(&first));
    let (_b, first) = raw_join(&server, &token("two", "b")).await;
    assert!(is_join(&first));
    match tokio_tungstenite::connect_async(join_request(&server, &token("three", "c"))).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| "a connection")),
    }
    drop(a);
    let admitted = tokio::time::timeout(LIMIT, async {
        loop {
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(join_request(&server, &token("three", "c"))).await
                && next(&mut ws).await.is_some_and(|m| is_join(&m))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(admitted.is_ok(), "a closed connection frees its place");
    server.stop().await;
}

#[tokio::test]
async fn an_open_dev_server_with_the_dev_keys_warns_at_start() {
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .args(["dev-server", "--bind", "0.0.0.0:0", "--rtc-ip", "127.0.0.1"])
        .env_remove("LIVEKIT_API_KEY")
        .env_remove("LIVEKIT_API_SECRET")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("agent-worker runs");
    let mut lines = BufReader::new(server.stdout.take().expect("piped")).lines();
    let warned = tokio::time::timeout(LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("OPEN TO THE NETWORK WITH THE WELL-KNOWN KEYS") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(warned, Ok(true), "the warning is logged at start-up");
    let _ = server.kill().await;
}
