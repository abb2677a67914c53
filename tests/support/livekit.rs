//! Helpers for tests that join rooms on our dev server.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use livekit_api::access_token::{AccessToken, VideoGrants};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use voice_agent::config::Secret;
use voice_agent::devserver::{DEV_API_KEY, DEV_API_SECRET, DevServer, DevServerConfig};
use voice_agent::livekit::peer::host_ips;
use voice_agent::livekit::room::{self, ConnectOptions, Room, RoomEvent};

pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

pub async fn dev_server() -> DevServer {
    dev_server_with(|_, _| {}).await
}

/// A dev server on loopback, its config adjusted by `configure`, which is also told the URL the
/// server will have.
pub async fn dev_server_with(configure: impl FnOnce(&mut DevServerConfig, &str)) -> DevServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let mut config = DevServerConfig::new(DEV_API_KEY.into(), Secret::new(DEV_API_SECRET), vec![LOOPBACK]);
    configure(&mut config, &format!("ws://127.0.0.1:{port}"));
    DevServer::start(([127, 0, 0, 1], port).into(), config).await.expect("dev server starts")
}

pub fn token(room: &str, identity: &str) -> String {
    let grants = VideoGrants {
        room_join: true,
        room: room.into(),
        can_update_own_metadata: Some(true),
        ..VideoGrants::default()
    };
    AccessToken::with_api_key(DEV_API_KEY, DEV_API_SECRET)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(grants)
        .to_jwt()
        .expect("signs")
}

pub async fn join(server: &DevServer, room: &str, identity: &str) -> (Room, mpsc::UnboundedReceiver<RoomEvent>) {
    let options = ConnectOptions { bind_ips: Some(vec![LOOPBACK]), ..ConnectOptions::default() };
    room::connect(&server.url(), &token(room, identity), options)
        .await
        .unwrap_or_else(|e| panic!("{identity} joins: {e}"))
}

/// A caller named `caller` in `room`, which the server closes a second after everyone has left,
/// so the agent's job there ends promptly.
pub async fn join_as_caller(url: &str, room: &str) -> (Room, mpsc::UnboundedReceiver<RoomEvent>) {
    let grants = VideoGrants { room_join: true, room: room.into(), ..VideoGrants::default() };
    let config = livekit_protocol::RoomConfiguration { departure_timeout: 1, ..Default::default() };
    let token = AccessToken::with_api_key(DEV_API_KEY, DEV_API_SECRET)
        .with_identity("caller")
        .with_grants(grants)
        .with_room_config(config)
        .to_jwt()
        .expect("signs");
    let options = ConnectOptions { bind_ips: Some(vec![LOOPBACK]), ..ConnectOptions::default() };
    room::connect(url, &token, options).await.expect("the caller joins")
}

/// The next event matching `wanted`, skipping others, within `limit`.
pub async fn wait_for<T>(
    events: &mut mpsc::UnboundedReceiver<RoomEvent>,
    limit: Duration,
    mut wanted: impl FnMut(RoomEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(limit, async {
        loop {
            let event = events.recv().await.expect("room still open");
            if let Some(found) = wanted(event) {
                return found;
            }
        }
    })
    .await
    .expect("the event arrived in time")
}

/// A dev server with `agent-worker connect --loopback` (identity `echo`) already in `room`.
pub async fn room_with_loopback(room: &str) -> (DevServer, Child) {
    let config = DevServerConfig::new(DEV_API_KEY.into(), Secret::new(DEV_API_SECRET), host_ips());
    let server = DevServer::start("127.0.0.1:0".parse().expect("address"), config).await.expect("dev server starts");
    let mut loopback = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .args(["connect", "--room", room, "--identity", "echo", "--loopback", "--url", &server.url()])
        .env("LIVEKIT_API_KEY", DEV_API_KEY)
        .env("LIVEKIT_API_SECRET", DEV_API_SECRET)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("agent-worker runs");
    let mut lines = BufReader::new(loopback.stdout.take().expect("piped")).lines();
    let joined = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("joined") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(joined, Ok(true), "agent-worker connect --loopback joined the room");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (server, loopback)
}
