//! The task that drives one [`PeerCore`]: it owns the UDP sockets and the timer, applies
//! commands in order, and routes received media straight to its consumers (a decoder's channel
//! or, in the dev server, other peers) so audio never takes a detour through the room's task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::candidate::CandidateInit;
use super::core::{CoreOutput, MediaPacket, OfferRequest, PeerConfig, PeerCore, PeerError, PeerEvent};

/// Enough for a second of commands from a busy room; media beyond it is dropped, not queued.
const COMMAND_QUEUE: usize = 1024;
const DATAGRAM_QUEUE: usize = 512;
/// Larger than any datagram WebRTC sends (MTU-sized), with room for jumbo frames.
const MAX_DATAGRAM: usize = 2048;

/// Where received media for one section goes.
#[derive(Debug, Clone)]
pub enum MediaSink {
    /// To a consumer, such as a decoder.
    Channel(mpsc::Sender<MediaPacket>),
    /// Forwarded to another peer's send-only section (the dev server's forwarding).
    Peer { peer: PeerHandle, mid: String },
}

#[derive(Debug)]
pub enum PeerCommand {
    /// Apply a remote offer and answer it (emits [`DriverEvent::Answer`]); media of the listed
    /// sections is routed from the first packet.
    AcceptOffer {
        sdp: String,
        routes: Vec<(String, MediaSink)>,
    },
    /// Offer the requested changes (emits [`DriverEvent::Offer`] when negotiation is needed).
    CreateOffer(OfferRequest),
    AcceptAnswer(String),
    AddRemoteCandidate(CandidateInit),
    WriteAudio {
        mid: String,
        rtp_time: u64,
        wallclock: Instant,
        data: Arc<[u8]>,
    },
    SendData {
        label: String,
        data: Vec<u8>,
    },
    /// Replaces where a section's media goes; an empty list stops routing it.
    Route {
        mid: String,
        sinks: Vec<MediaSink>,
    },
}

/// What the driver reports to its owner.
#[derive(Debug)]
pub enum DriverEvent {
    Peer(PeerEvent),
    Answer(String),
    Offer(String),
    /// Our offer's send-only audio sections, by msid track id, once the answer is applied.
    LocalTracks(Vec<(String, String)>),
    /// The first packet on a media section (a track really flows).
    FirstMedia(String),
    Error(PeerError),
}

/// A cheap handle for sending commands; the peer shuts down when every handle is dropped.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    commands: mpsc::Sender<PeerCommand>,
}

impl PeerHandle {
    /// Sends a control command, waiting if the queue is full.
    pub async fn send(&self, command: PeerCommand) -> bool {
        self.commands.send(command).await.is_ok()
    }

    /// Sends without waiting; media is dropped rather than delayed when the peer is behind.
    pub fn try_send(&self, command: PeerCommand) -> bool {
        self.commands.try_send(command).is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// A handle whose commands a test reads directly, with no peer behind it.
    #[cfg(test)]
    pub(crate) fn for_test() -> (Self, mpsc::Receiver<PeerCommand>) {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        (Self { commands }, receiver)
    }
}

struct Datagram {
    local: SocketAddr,
    source: SocketAddr,
    contents: Vec<u8>,
}

/// Binds one UDP socket per address and starts the peer's task.
///
/// One socket per interface address (not one wildcard socket) tells us the local address each
/// datagram arrived on, which ICE needs to match candidate pairs.
pub async fn spawn(
    config: PeerConfig,
    ips: &[IpAddr],
    name: String,
) -> std::io::Result<(PeerHandle, mpsc::UnboundedReceiver<DriverEvent>, tokio::task::JoinHandle<()>)> {
    let mut sockets = Vec::new();
    for ip in ips {
        sockets.push(Arc::new(UdpSocket::bind(SocketAddr::new(*ip, 0)).await?));
    }
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let (events, events_rx) = mpsc::unbounded_channel();
    let handle = PeerHandle { commands: commands_tx };
    let task = tokio::spawn(run(config, sockets, commands, events, name));
    Ok((handle, events_rx, task))
}

async fn run(
    config: PeerConfig,
    sockets: Vec<Arc<UdpSocket>>,
    mut commands: mpsc::Receiver<PeerCommand>,
    events: mpsc::UnboundedSender<DriverEvent>,
    name: String,
) {
    let now = Instant::now();
    let mut core = PeerCore::new(config, now);
    let (datagram_tx, mut datagrams) = mpsc::channel::<Datagram>(DATAGRAM_QUEUE);
    let mut readers = JoinSet::new();
    let mut by_local = HashMap::new();
    for socket in sockets {
        let Ok(local) = socket.local_addr() else { continue };
        if let Some(candidate) = core.add_local_candidate(local, now) {
            let _ = events.send(DriverEvent::Peer(PeerEvent::LocalCandidate(candidate)));
        }
        by_local.insert(local, socket.clone());
        readers.spawn(read_socket(socket, local, datagram_tx.clone()));
    }
    drop(datagram_tx);
    let mut driver = Driver { core, events, routes: HashMap::new(), seen: Default::default(), name };

    loop {
        driver.flush(&by_local);
        if !driver.core.is_alive() {
            break;
        }
        let deadline = tokio::time::Instant::from_std(driver.core.next_timeout());
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => driver.apply(command),
                None => break,
            },
            datagram = datagrams.recv() => match datagram {
                Some(d) => driver.core.handle_datagram(Instant::now(), d.source, d.local, &d.contents),
                None => break,
            },
            () = tokio::time::sleep_until(deadline) => driver.core.handle_timeout(Instant::now()),
        }
    }
    driver.core.close(Instant::now());
    driver.flush(&by_local);
    readers.shutdown().await;
    tracing::debug!(peer = %driver.name, "peer connection closed");
}

async fn read_socket(socket: Arc<UdpSocket>, local: SocketAddr, datagrams: mpsc::Sender<Datagram>) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((length, source)) => {
                let datagram = Datagram { local, source, contents: buffer[..length].to_vec() };
                if datagrams.send(datagram).await.is_err() {
                    return;
                }
            }
            // ICMP "port unreachable" from a previous send surfaces here on Linux; keep reading.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                tracing::debug!(%local, "UDP socket closed: {e}");
                return;
            }
        }
    }
}

struct Driver {
    core: PeerCore,
    events: mpsc::UnboundedSender<DriverEvent>,
    routes: HashMap<String, Vec<MediaSink>>,
    seen: std::collections::HashSet<String>,
    name: String,
}

impl Driver {
    fn apply(&mut self, command: PeerCommand) {
        let now = Instant::now();
        match command {
            PeerCommand::AcceptOffer { sdp, routes } => {
                for (mid, sink) in routes {
                    self.routes.insert(mid, vec![sink]);
                }
                match self.core.accept_offer(&sdp, now) {
                    Ok(answer) => self.emit(DriverEvent::Answer(answer)),
                    Err(e) => self.emit(DriverEvent::Error(e)),
                }
            }
            PeerCommand::CreateOffer(request) => match self.core.create_offer(request, now) {
                Ok(Some(offer)) => self.emit(DriverEvent::Offer(offer)),
                Ok(None) => {}
                Err(e) => self.emit(DriverEvent::Error(e)),
            },
            PeerCommand::AcceptAnswer(sdp) => match self.core.accept_answer(&sdp, now) {
                Ok(()) => {
                    let tracks = self.core.local_tracks();
                    self.emit(DriverEvent::LocalTracks(tracks));
                }
                Err(e) => self.emit(DriverEvent::Error(e)),
            },
            PeerCommand::AddRemoteCandidate(init) => match init.to_str0m() {
                Ok(Some(candidate)) => self.core.add_remote_candidate(candidate, now),
                Ok(None) => {}
                Err(e) => tracing::debug!(peer = %self.name, "ignored a remote candidate: {e}"),
            },
            PeerCommand::WriteAudio { mid, rtp_time, wallclock, data } => {
                if let Err(e) = self.core.write_audio(&mid, rtp_time, wallclock, data, now) {
                    tracing::trace!(peer = %self.name, "audio not sent: {e}");
                }
            }
            PeerCommand::SendData { label, data } => {
                if let Err(e) = self.core.send_data(&label, data, now) {
                    self.emit(DriverEvent::Error(e));
                }
            }
            PeerCommand::Route { mid, sinks } => {
                if sinks.is_empty() {
                    self.routes.remove(&mid);
                } else {
                    self.routes.insert(mid, sinks);
                }
            }
        }
    }

    fn emit(&self, event: DriverEvent) {
        let _ = self.events.send(event);
    }

    /// Sends pending datagrams and hands out events and media.
    fn flush(&mut self, sockets: &HashMap<SocketAddr, Arc<UdpSocket>>) {
        while let Some(output) = self.core.poll_output() {
            match output {
                CoreOutput::Transmit { source, destination, contents } => {
                    let Some(socket) = sockets.get(&source) else { continue };
                    // UDP is lossy anyway: a full socket buffer drops the datagram, like the network.
                    if let Err(e) = socket.try_send_to(&contents, destination)
                        && e.kind() != std::io::ErrorKind::WouldBlock
                    {
                        tracing::trace!(peer = %self.name, %destination, "send failed: {e}");
                    }
                }
                CoreOutput::Event(PeerEvent::Media(packet)) => self.route(packet),
                CoreOutput::Event(event) => self.emit(DriverEvent::Peer(event)),
            }
        }
    }

    fn route(&mut self, packet: MediaPacket) {
        if !self.seen.contains(&packet.mid) {
            self.seen.insert(packet.mid.clone());
            self.emit(DriverEvent::FirstMedia(packet.mid.clone()));
        }
        let Some(sinks) = self.routes.get_mut(&packet.mid) else { return };
        sinks.retain(|sink| match sink {
            MediaSink::Channel(channel) => match channel.try_send(packet.clone()) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
            MediaSink::Peer { peer, mid } => {
                let command = PeerCommand::WriteAudio {
                    mid: mid.clone(),
                    rtp_time: packet.rtp_time,
                    wallclock: packet.network_time,
                    data: packet.data.clone(),
                };
                peer.try_send(command) || !peer.is_closed()
            }
        });
    }
}
