//! A LiveKit room as a participant sees it, in the classic dual-PeerConnection mode: a handle to
//! act ([`Room`]) and a stream of [`RoomEvent`]s.
//!
//! Where LiveKit's protocol notes and real clients disagree, real clients win; the corrections
//! live in the docs of the code that follows them (e.g. [`crate::livekit::peer::sdp`]).

mod engine;
mod events;
mod participants;
mod shell;
mod tracks;

use std::collections::HashMap;
use std::net::IpAddr;

use livekit_protocol::DataPacket;
use tokio::sync::{mpsc, oneshot};

pub use events::{RoomError, RoomEvent};
pub use participants::{Participant, ParticipantKind, Track};
pub use tracks::{LocalAudioTrack, RemoteAudioTrack};

use crate::livekit::data::{self, Reliability};
use crate::livekit::signal::ConnectError;
use engine::{Carried, Command};
use shell::{Request, Session};

/// Failures a LiveKit server can simulate on request, as LiveKit's SDKs offer for testing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The server removes us (a DISCONNECT leave).
    ServerLeave,
    /// The server asks for a full reconnect (a RECONNECT leave).
    FullReconnect,
    /// The server's node drops us without a word; we notice and rejoin.
    NodeFailure,
}

/// How to join a room; the default suits an agent.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Subscribe to every track in the room (what agents want).
    pub auto_subscribe: bool,
    /// Local addresses for WebRTC; `None` means every interface (see [`crate::livekit::peer::host_ips`]).
    pub bind_ips: Option<Vec<IpAddr>>,
    /// How many times to try rejoining after the session breaks before giving up.
    pub reconnect_attempts: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { auto_subscribe: true, bind_ips: None, reconnect_attempts: 10 }
    }
}

/// A handle to a joined room; clones share it. The room is left when [`Room::disconnect`] is
/// called or the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Room {
    requests: mpsc::Sender<Request>,
    name: String,
    local_identity: String,
}

/// Joins the room the token grants and returns the room with its events.
pub async fn connect(
    url: &str,
    token: &str,
    options: ConnectOptions,
) -> Result<(Room, mpsc::UnboundedReceiver<RoomEvent>), ConnectError> {
    let session = Session::open(url, token, &options, Carried::default()).await.map_err(|(error, _)| error)?;
    let (requests, requests_rx) = mpsc::channel(256);
    let (events, events_rx) = mpsc::unbounded_channel();
    let room = Room {
        requests,
        name: session.engine.room_name.clone(),
        local_identity: session.engine.local_identity.clone(),
    };
    tokio::spawn(shell::run(session, url.to_owned(), token.to_owned(), options, requests_rx, events));
    Ok((room, events_rx))
}

impl Room {
    /// The room's name as the server reported it on join.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Our participant identity, as granted by the token.
    pub fn local_identity(&self) -> &str {
        &self.local_identity
    }

    /// Publishes an audio track (source: microphone) and starts sending silence on it until audio
    /// is pushed.
    pub async fn publish_audio(&self, name: &str) -> Result<LocalAudioTrack, RoomError> {
        let (reply, answer) = oneshot::channel();
        self.request(Command::PublishAudio { name: name.to_owned(), reply }).await?;
        let published = answer.await.map_err(|_| RoomError::Closed)??;
        Ok(LocalAudioTrack::new(published.outgoing, published.sid))
    }

    /// Sends a user packet to everyone, or to `destinations` (identities) when not empty.
    pub async fn send_data(
        &self,
        payload: Vec<u8>,
        topic: Option<&str>,
        destinations: Vec<String>,
        reliable: bool,
    ) -> Result<(), RoomError> {
        let reliability = if reliable { Reliability::Reliable } else { Reliability::Lossy };
        let packet = data::user_packet(payload, topic.map(str::to_owned), destinations, reliability);
        self.send_packets(vec![packet]).await
    }

    /// Sends a whole text stream (header, chunks, trailer) on `topic`.
    pub async fn send_text(
        &self,
        topic: &str,
        text: &str,
        attributes: HashMap<String, String>,
    ) -> Result<(), RoomError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.send_packets(data::text_stream_packets(topic, text, attributes, now_ms, data::new_stream_id())).await
    }

    /// Sends prepared data packets in order, reliable ones with increasing sequence numbers.
    pub async fn send_packets(&self, packets: Vec<DataPacket>) -> Result<(), RoomError> {
        for packet in &packets {
            data::encode_for_send(packet).map_err(|e| RoomError::TooLarge(e.to_string()))?;
        }
        self.request(Command::SendPackets { packets }).await
    }

    /// Sets our participant attributes (an empty value deletes a key) and waits for the server.
    pub async fn set_attributes(&self, attributes: HashMap<String, String>) -> Result<(), RoomError> {
        self.update_self(None, attributes).await
    }

    /// Changes the name others see for us, and waits for the server.
    pub async fn set_name(&self, name: &str) -> Result<(), RoomError> {
        self.update_self(Some(name.to_owned()), HashMap::new()).await
    }

    async fn update_self(&self, name: Option<String>, attributes: HashMap<String, String>) -> Result<(), RoomError> {
        let (reply, answer) = oneshot::channel();
        self.request(Command::UpdateSelf { name, attributes, reply }).await?;
        answer.await.map_err(|_| RoomError::Closed)?
    }

    /// Asks the server to simulate a failure, to test how the room recovers.
    pub async fn simulate(&self, scenario: Scenario) -> Result<(), RoomError> {
        use livekit_protocol::simulate_scenario::Scenario as S;
        let scenario = match scenario {
            Scenario::ServerLeave => S::ServerLeave(true),
            Scenario::FullReconnect => S::LeaveRequestFullReconnect(true),
            Scenario::NodeFailure => S::NodeFailure(true),
        };
        self.request(Command::Simulate(scenario)).await
    }

    /// Leaves the room and waits until the server was told.
    pub async fn disconnect(&self) {
        let (done, wait) = oneshot::channel();
        if self.requests.send(Request::Leave(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    async fn request(&self, command: Command) -> Result<(), RoomError> {
        self.requests.send(Request::Engine(command)).await.map_err(|_| RoomError::Closed)
    }
}
