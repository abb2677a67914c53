//! The room's task: owns the signal WebSocket and the two peers, feeds the [`Engine`], carries
//! out its actions, and rejoins when the session breaks.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use livekit_protocol as pb;
use pb::signal_response;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::ConnectOptions;
use super::engine::{Action, Carried, Command, Engine, Target};
use super::events::RoomEvent;
use crate::livekit::peer::{self, DriverEvent, PeerConfig, PeerHandle};
use crate::livekit::signal::{self, ConnectError, JoinParams, WsStream};

/// What the room's handles ask of its task.
#[derive(Debug)]
pub(crate) enum Request {
    Engine(Command),
    Leave(oneshot::Sender<()>),
}

/// Waits between rejoin attempts; the last repeats.
const BACKOFF: &[Duration] = &[
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(5),
];

struct Peer {
    handle: PeerHandle,
    events: mpsc::UnboundedReceiver<DriverEvent>,
    task: tokio::task::JoinHandle<()>,
}

/// One signalling session: a WebSocket, two peers and the engine driving them.
pub(crate) struct Session {
    ws: WsStream,
    pub engine: Engine,
    publisher: Peer,
    subscriber: Peer,
}

enum Outcome {
    Reconnect(String),
    Closed(String),
}

impl Session {
    /// Joins the room: signal connection, JoinResponse, then both peers.
    pub async fn open(
        url: &str,
        token: &str,
        options: &ConnectOptions,
        carried: Carried,
    ) -> Result<Self, (ConnectError, Carried)> {
        let join_url = match signal::rtc_url(url, &JoinParams { auto_subscribe: options.auto_subscribe }) {
            Ok(join_url) => join_url,
            Err(e) => return Err((e, carried)),
        };
        let (ws, first) = match signal::open(&join_url, token).await {
            Ok(opened) => opened,
            Err(e) => return Err((e, carried)),
        };
        let join = match first {
            signal_response::Message::Join(join) => join,
            signal_response::Message::Leave(leave) => {
                let reason =
                    pb::DisconnectReason::try_from(leave.reason).map(|r| r.as_str_name()).unwrap_or("UNKNOWN_REASON");
                return Err((ConnectError::Left(reason.to_owned()), carried));
            }
            other => {
                return Err((ConnectError::Protocol(format!("expected a JoinResponse first, got {other:?}")), carried));
            }
        };
        let ips: Vec<IpAddr> = options.bind_ips.clone().unwrap_or_else(peer::host_ips);
        let identity = join.participant.as_ref().map(|p| p.identity.clone()).unwrap_or_default();
        let publisher = match start_peer(&ips, format!("{identity}/publisher")).await {
            Ok(peer) => peer,
            Err(e) => return Err((e, carried)),
        };
        let subscriber = match start_peer(&ips, format!("{identity}/subscriber")).await {
            Ok(peer) => peer,
            Err(e) => return Err((e, carried)),
        };
        let engine = Engine::new(&join, carried, Instant::now());
        Ok(Self { ws, engine, publisher, subscriber })
    }

    /// Runs until the session ends; `token` is updated when the server refreshes it.
    async fn run(
        &mut self,
        requests: &mut mpsc::Receiver<Request>,
        events: &mpsc::UnboundedSender<RoomEvent>,
        token: &mut String,
    ) -> Outcome {
        loop {
            for action in self.engine.take_actions() {
                if let Some(outcome) = self.execute(action, events).await {
                    return outcome;
                }
            }
            let deadline = tokio::time::Instant::from_std(self.engine.next_deadline());
            tokio::select! {
                frame = self.ws.next() => match frame {
                    Some(Ok(Message::Binary(bytes))) => match signal::decode_response(&bytes) {
                        Ok(signal_response::Message::RefreshToken(fresh)) => *token = fresh,
                        Ok(message) => self.engine.handle_signal(message, Instant::now()),
                        Err(signal::FrameError::Empty) => {}
                        Err(e) => tracing::warn!("ignored a malformed signalling frame: {e}"),
                    },
                    Some(Ok(Message::Close(_))) | None => return Outcome::Reconnect("the signal connection closed".into()),
                    Some(Err(e)) => return Outcome::Reconnect(format!("the signal connection failed: {e}")),
                    Some(Ok(_)) => {}
                },
                Some(event) = self.publisher.events.recv() => self.engine.handle_peer(Target::Publisher, event, Instant::now()),
                Some(event) = self.subscriber.events.recv() => self.engine.handle_peer(Target::Subscriber, event, Instant::now()),
                request = requests.recv() => match request {
                    Some(Request::Engine(command)) => self.engine.handle_command(command, Instant::now()),
                    Some(Request::Leave(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        return Outcome::Closed("CLIENT_INITIATED".into());
                    }
                    None => {
                        self.leave().await;
                        return Outcome::Closed("CLIENT_INITIATED".into());
                    }
                },
                () = tokio::time::sleep_until(deadline) => self.engine.handle_tick(Instant::now(), wallclock_ms()),
            }
        }
    }

    async fn execute(&mut self, action: Action, events: &mpsc::UnboundedSender<RoomEvent>) -> Option<Outcome> {
        match action {
            Action::Signal(message) => {
                let frame = Message::Binary(signal::encode_request(message).into());
                if let Err(e) = self.ws.send(frame).await {
                    return Some(Outcome::Reconnect(format!("the signal connection failed: {e}")));
                }
            }
            Action::Peer(target, command) => {
                let peer = match target {
                    Target::Publisher => &self.publisher,
                    Target::Subscriber => &self.subscriber,
                };
                if !peer.handle.send(command).await {
                    return Some(Outcome::Reconnect(format!("the {target:?} peer connection stopped")));
                }
            }
            Action::Emit(event) => {
                let _ = events.send(event);
            }
            Action::Reconnect(reason) => return Some(Outcome::Reconnect(reason)),
            Action::Close(reason) => return Some(Outcome::Closed(reason)),
        }
        None
    }

    /// Tells the server we are leaving, as LiveKit clients do before closing.
    async fn leave(&mut self) {
        let leave = pb::LeaveRequest {
            reason: pb::DisconnectReason::ClientInitiated as i32,
            action: pb::leave_request::Action::Disconnect as i32,
            ..Default::default()
        };
        let frame = Message::Binary(signal::encode_request(pb::signal_request::Message::Leave(leave)).into());
        let _ = self.ws.send(frame).await;
        let _ = self.ws.close(None).await;
    }

    /// Stops both peers and waits for them, so no task outlives the session.
    async fn shut_down(self) -> Carried {
        let Self { mut ws, engine, publisher, subscriber } = self;
        let carried = engine.into_carried();
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        drop(publisher.handle);
        drop(subscriber.handle);
        let _ = publisher.task.await;
        let _ = subscriber.task.await;
        carried
    }
}

async fn start_peer(ips: &[IpAddr], name: String) -> Result<Peer, ConnectError> {
    let (handle, events, task) = peer::spawn(PeerConfig { ice_lite: false }, ips, name)
        .await
        .map_err(|e| ConnectError::Media(format!("cannot open UDP sockets: {e}")))?;
    Ok(Peer { handle, events, task })
}

fn wallclock_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The room's task: sessions one after another until the room closes for good.
pub(crate) async fn run(
    mut session: Session,
    url: String,
    mut token: String,
    options: ConnectOptions,
    mut requests: mpsc::Receiver<Request>,
    events: mpsc::UnboundedSender<RoomEvent>,
) {
    loop {
        let outcome = session.run(&mut requests, &events, &mut token).await;
        let carried = session.shut_down().await;
        let reason = match outcome {
            Outcome::Closed(reason) => {
                let _ = events.send(RoomEvent::Disconnected { reason });
                return;
            }
            Outcome::Reconnect(reason) => reason,
        };
        tracing::info!("rejoining the room: {reason}");
        let _ = events.send(RoomEvent::Reconnecting { reason: reason.clone() });
        match rejoin(&url, &token, &options, carried, &mut requests).await {
            Ok((next, held)) => {
                session = next;
                let _ = events.send(RoomEvent::Reconnected);
                for command in held {
                    session.engine.handle_command(command, Instant::now());
                }
            }
            Err(why) => {
                let _ = events.send(RoomEvent::Disconnected { reason: format!("{reason}; rejoining failed: {why}") });
                return;
            }
        }
    }
}

/// Joins again with backoff. Commands that arrive meanwhile are held and returned, to be carried
/// out in the new session rather than lost.
async fn rejoin(
    url: &str,
    token: &str,
    options: &ConnectOptions,
    mut carried: Carried,
    requests: &mut mpsc::Receiver<Request>,
) -> Result<(Session, Vec<Command>), String> {
    let mut held = Vec::new();
    let mut last = String::new();
    for attempt in 0..options.reconnect_attempts.max(1) {
        let wait = BACKOFF[usize::try_from(attempt).unwrap_or(usize::MAX).min(BACKOFF.len() - 1)];
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            request = requests.recv() => match request {
                Some(Request::Leave(done)) => {
                    let _ = done.send(());
                    return Err("we left while rejoining".into());
                }
                None => return Err("the room was dropped while rejoining".into()),
                Some(Request::Engine(command)) => held.push(command),
            },
        }
        match Session::open(url, token, options, carried).await {
            Ok(session) => return Ok((session, held)),
            Err((error, back)) => {
                carried = back;
                last = error.to_string();
                tracing::warn!(attempt = attempt + 1, "rejoin failed: {error}");
                if matches!(
                    error,
                    ConnectError::Refused { status: 401 | 403, .. }
                        | ConnectError::InvalidUrl(_)
                        | ConnectError::InvalidToken(_)
                ) {
                    break;
                }
            }
        }
    }
    Err(last)
}
