//! The task that drives one [`PeerCore`]: it owns the UDP sockets and the timer, applies
//! commands in order, and routes received media straight to its consumers (a decoder's channel
//! or, in the dev server, other peers) so audio never takes a detour through the room's task.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};

use super::candidate::CandidateInit;
use super::core::{CoreOutput, MediaPacket, OfferRequest, PeerConfig, PeerCore, PeerError, PeerEvent};
use crate::audio::{Pacer, ROOM_FRAME_SAMPLES};

/// Enough for a second of commands from a busy room; media beyond it is dropped, not queued.
const COMMAND_QUEUE: usize = 1024;
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
    /// Forwards one frame received elsewhere (the dev server's forwarding).
    WriteAudio {
        mid: String,
        rtp_time: u64,
        wallclock: Instant,
        data: Arc<[u8]>,
    },
    /// Sends a frame from `source` on section `mid` every 20 ms, in real time, from now on.
    SendAudio {
        mid: String,
        source: Box<dyn AudioSource>,
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

/// Gives the peer one encoded 20 ms frame per pacing slot. The peer's own task paces and sends
/// it, so a local track costs no task of its own and no hop between tasks per frame.
pub trait AudioSource: Send + std::fmt::Debug {
    /// The frame for this slot; `None` sends nothing in it.
    fn next_packet(&mut self) -> Option<Arc<[u8]>>;
    /// Called when sending starts. The source notifies `wake` when sound is queued while it is
    /// silent, so the first frame of an answer leaves at once instead of at the next slot.
    fn attach(&mut self, wake: Arc<Notify>);
    /// Whether sound is queued while the last frame sent was silence.
    fn sound_waiting(&self) -> bool;
    /// Whether the last frame sent carried sound.
    fn talking(&self) -> bool;
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
        let socket = UdpSocket::bind(SocketAddr::new(*ip, 0)).await?;
        sockets.push((socket.local_addr()?, socket));
    }
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let (events, events_rx) = mpsc::unbounded_channel();
    let handle = PeerHandle { commands: commands_tx };
    let task = tokio::spawn(run(config, sockets, commands, events, name));
    Ok((handle, events_rx, task))
}

/// The peer's loop. Sockets are read here rather than by reader tasks, so a datagram costs one
/// task wake-up instead of two and a channel hop.
async fn run(
    config: PeerConfig,
    sockets: Vec<(SocketAddr, UdpSocket)>,
    mut commands: mpsc::Receiver<PeerCommand>,
    events: mpsc::UnboundedSender<DriverEvent>,
    name: String,
) {
    let now = Instant::now();
    let mut core = PeerCore::new(config, now);
    for (local, _) in &sockets {
        if let Some(candidate) = core.add_local_candidate(*local, now) {
            let _ = events.send(DriverEvent::Peer(PeerEvent::LocalCandidate(candidate)));
        }
    }
    let wake = Arc::new(Notify::new());
    let mut driver = Driver {
        core,
        events,
        routes: HashMap::new(),
        seen: HashSet::new(),
        audio: Vec::new(),
        name,
        wake: wake.clone(),
    };
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        driver.flush(&sockets);
        if !driver.core.is_alive() {
            break;
        }
        let deadline = tokio::time::Instant::from_std(driver.next_deadline());
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => driver.apply(command),
                None => break,
            },
            received = recv_any(&sockets, &mut buffer) => match received {
                Ok((length, source, local)) => driver.core.handle_datagram(Instant::now(), source, local, &buffer[..length]),
                Err(e) => {
                    tracing::debug!(peer = %driver.name, "UDP socket failed: {e}");
                    break;
                }
            },
            () = wake.notified() => driver.talk_now(Instant::now()),
            () = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                driver.pace(now);
                driver.core.handle_timeout(now);
            }
        }
    }
    driver.core.close(Instant::now());
    driver.flush(&sockets);
    tracing::debug!(peer = %driver.name, "peer connection closed");
}

/// The next datagram on any of the sockets: `(length, source, local address)`.
fn recv_any<'a>(
    sockets: &'a [(SocketAddr, UdpSocket)],
    buffer: &'a mut [u8],
) -> impl Future<Output = std::io::Result<(usize, SocketAddr, SocketAddr)>> + 'a {
    std::future::poll_fn(move |cx| {
        for (local, socket) in sockets {
            loop {
                let mut read = ReadBuf::new(buffer);
                match socket.poll_recv_from(cx, &mut read) {
                    Poll::Ready(Ok(source)) => return Poll::Ready(Ok((read.filled().len(), source, *local))),
                    // ICMP "port unreachable" from an earlier send surfaces here on Linux; the
                    // socket is fine, so read on, which also re-arms its wake-up.
                    Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
        }
        Poll::Pending
    })
}

struct Driver {
    core: PeerCore,
    events: mpsc::UnboundedSender<DriverEvent>,
    routes: HashMap<String, Vec<MediaSink>>,
    seen: HashSet<String>,
    audio: Vec<OutgoingAudio>,
    name: String,
    /// Notified by local tracks when sound is queued after silence.
    wake: Arc<Notify>,
}

/// A local track being sent: its section, schedule and frames.
struct OutgoingAudio {
    mid: String,
    pacer: Pacer,
    rtp_base: u64,
    source: Box<dyn AudioSource>,
}

impl Driver {
    fn next_deadline(&self) -> Instant {
        self.audio.iter().map(|a| a.pacer.next_deadline()).fold(self.core.next_timeout(), Instant::min)
    }

    /// Brings forward the slot of every track whose sound is waiting after silence; the pacing
    /// timer then sends it.
    fn talk_now(&mut self, now: Instant) {
        for audio in &mut self.audio {
            if audio.source.sound_waiting() {
                audio.pacer.pull_in(now);
            }
        }
    }

    /// Sends the frame of every track whose slot is due.
    fn pace(&mut self, now: Instant) {
        for audio in &mut self.audio {
            let Some(slot) = audio.pacer.poll(now) else { continue };
            let packet = audio.source.next_packet();
            if !audio.source.talking() && audio.pacer.lead() > Duration::ZERO {
                audio.pacer.give_back();
            }
            let Some(packet) = packet else { continue };
            let rtp_time = audio.rtp_base + slot.index * ROOM_FRAME_SAMPLES as u64;
            if let Err(e) = self.core.write_audio(&audio.mid, rtp_time, now, packet, now) {
                tracing::trace!(peer = %self.name, "audio not sent: {e}");
            }
        }
    }

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
            PeerCommand::SendAudio { mid, mut source } => {
                self.audio.retain(|a| a.mid != mid);
                source.attach(self.wake.clone());
                let rtp_base = u64::from(rand::random::<u32>());
                self.audio.push(OutgoingAudio { mid, pacer: Pacer::new(now, 0), rtp_base, source });
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
    fn flush(&mut self, sockets: &[(SocketAddr, UdpSocket)]) {
        while let Some(output) = self.core.poll_output() {
            match output {
                CoreOutput::Transmit { source, destination, contents } => {
                    let Some((_, socket)) = sockets.iter().find(|(local, _)| *local == source) else { continue };
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
