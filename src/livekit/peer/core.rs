//! One WebRTC PeerConnection as a sans-IO state machine: str0m plus what LiveKit needs on top
//! (data channels by label with send queues, the track carried by each media section, Opus
//! payload types). Time and datagrams are inputs; transmissions and events are outputs.
//!
//! Every mutation drains str0m to its next timeout before returning (str0m's contract), so a
//! caller can mutate, then read outputs at leisure.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::sdp::{self, MediaSection};

/// Limits what a slow or stalled peer can make us buffer on a reliable data channel.
const MAX_PENDING_DATA_BYTES: usize = 4 * 1024 * 1024;
/// str0m asks for time at least this often; bounds how long a quiet peer sleeps.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Why a negotiation step or a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The remote SDP could not be parsed.
    #[error("the {what} SDP is malformed: {why}")]
    BadSdp {
        /// `offer` or `answer`.
        what: &'static str,
        /// str0m's complaint.
        why: String,
    },
    /// str0m could not apply the SDP or build an offer.
    #[error("negotiation failed: {0}")]
    Negotiation(String),
    /// An answer arrived while we had no offer outstanding.
    #[error("there is no pending offer to apply this answer to")]
    NoPendingOffer,
    /// Audio was written to a mid we do not send on.
    #[error("no media section {0} that can send")]
    UnknownMid(String),
    /// The remote side did not accept Opus on this mid.
    #[error("media section {0} has no Opus payload type")]
    NoOpus(String),
    /// The named channel's send queue hit its byte limit.
    #[error("data channel `{0}` backlog is full; the peer is not reading")]
    DataBacklog(String),
    /// The connection is dead (ICE failed or str0m errored); nothing more will work.
    #[error("the peer connection failed: {0}")]
    Failed(String),
}

/// How this side behaves in ICE.
#[derive(Debug, Clone, Copy)]
pub struct PeerConfig {
    /// Servers (our dev server, like LiveKit Cloud) are ICE-lite, so clients are always the
    /// controlling agent; clients run full ICE.
    pub ice_lite: bool,
}

/// A data channel to open in an offer, as LiveKit names and configures them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The label LiveKit routes by: `_reliable` or `_lossy`.
    pub label: String,
    /// Unordered and never retransmitted (`_lossy`), else ordered and reliable.
    pub lossy: bool,
}

/// Changes to negotiate in the next offer.
#[derive(Debug, Clone, Default)]
pub struct OfferRequest {
    /// Data channels to open.
    pub channels: Vec<ChannelSpec>,
    /// Send-only audio sections: `(msid stream id, msid track id)`.
    pub add_audio: Vec<(String, String)>,
    /// Sections to stop sending on (their track went away).
    pub deactivate: Vec<String>,
    /// New ICE credentials, after the network path broke.
    pub ice_restart: bool,
}

/// An Opus frame received on a media section.
#[derive(Debug, Clone)]
pub struct MediaPacket {
    /// The media section it arrived on, which names the track.
    pub mid: String,
    /// RTP time in 48 kHz units, extended past 32-bit wrap-around.
    pub rtp_time: u64,
    /// When its datagram arrived.
    pub network_time: Instant,
    /// False after a gap in RTP sequence numbers: a frame was lost just before this one.
    pub contiguous: bool,
    /// The Opus payload.
    pub data: Arc<[u8]>,
}

/// What happened on the connection, for the driver to act on.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    /// A local candidate to trickle, as `candidate:...` text.
    LocalCandidate(String),
    /// ICE and DTLS are up; media and data can flow.
    Connected,
    /// ICE moved to this state (disconnected is often temporary).
    IceState(IceConnectionState),
    /// The data channel with this label opened; queued sends go out.
    ChannelOpen(String),
    /// A message on a data channel.
    ChannelData {
        /// The channel's label.
        label: String,
        /// The message bytes.
        data: Vec<u8>,
    },
    /// The data channel with this label closed.
    ChannelClosed(String),
    /// An Opus frame arrived.
    Media(MediaPacket),
    /// The connection is closed; nothing more will flow.
    Closed,
    /// The connection died; why, for logs.
    Failed(String),
}

/// What the core asks its driver to do.
#[derive(Debug)]
pub enum CoreOutput {
    /// Send a UDP datagram.
    Transmit {
        /// The local address to send from.
        source: SocketAddr,
        /// The remote address.
        destination: SocketAddr,
        /// The datagram.
        contents: Vec<u8>,
    },
    /// Report an event.
    Event(PeerEvent),
}

struct ChannelState {
    label: String,
    lossy: bool,
    open: bool,
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
}

/// One PeerConnection's state. Call [`handle_timeout`](Self::handle_timeout) at
/// [`next_timeout`](Self::next_timeout) and drain [`poll_output`](Self::poll_output) after every call.
pub struct PeerCore {
    rtc: Rtc,
    channels: HashMap<ChannelId, ChannelState>,
    /// Sends requested before the channel exists or opens.
    early_data: HashMap<String, VecDeque<Vec<u8>>>,
    pending_offer: Option<SdpPendingOffer>,
    /// The track each remote media section carries, from the latest remote SDP.
    remote_sections: BTreeMap<String, MediaSection>,
    /// Our send-only sections by msid track id.
    local_tracks: HashMap<String, Mid>,
    opus_pt: HashMap<Mid, Pt>,
    outputs: VecDeque<CoreOutput>,
    next_timeout: Instant,
    failed: bool,
}

impl PeerCore {
    /// A connection with no media sections yet, Opus as its only codec.
    pub fn new(config: PeerConfig, now: Instant) -> Self {
        let rtc = RtcConfig::new().set_ice_lite(config.ice_lite).clear_codecs().enable_opus(true, false).build(now);
        Self {
            rtc,
            channels: HashMap::new(),
            early_data: HashMap::new(),
            pending_offer: None,
            remote_sections: BTreeMap::new(),
            local_tracks: HashMap::new(),
            opus_pt: HashMap::new(),
            outputs: VecDeque::new(),
            next_timeout: now,
            failed: false,
        }
    }

    /// Offers a local socket address as a host candidate; returns the candidate to trickle.
    pub fn add_local_candidate(&mut self, address: SocketAddr, now: Instant) -> Option<String> {
        let candidate = Candidate::host(address, Protocol::Udp).ok()?;
        let text = self.rtc.add_local_candidate(candidate).map(Candidate::to_sdp_string);
        self.drain(now);
        text
    }

    /// A candidate the remote side trickled.
    pub fn add_remote_candidate(&mut self, candidate: Candidate, now: Instant) {
        self.rtc.add_remote_candidate(candidate);
        self.drain(now);
    }

    /// Applies a remote offer; returns our answer.
    pub fn accept_offer(&mut self, offer: &str, now: Instant) -> Result<String, PeerError> {
        let parsed =
            SdpOffer::from_sdp_string(offer).map_err(|e| PeerError::BadSdp { what: "offer", why: e.to_string() })?;
        let answer = self.rtc.sdp_api().accept_offer(parsed).map_err(|e| PeerError::Negotiation(e.to_string()))?;
        self.remote_sections = sdp::media_sections(offer).into_iter().map(|s| (s.mid.clone(), s)).collect();
        self.opus_pt.clear();
        self.drain(now);
        Ok(answer.to_sdp_string())
    }

    /// Builds an offer with the requested changes, or `None` when nothing needs negotiating.
    pub fn create_offer(&mut self, request: OfferRequest, now: Instant) -> Result<Option<String>, PeerError> {
        let mut api = self.rtc.sdp_api();
        for spec in request.channels {
            let reliability =
                if spec.lossy { Reliability::MaxRetransmits { retransmits: 0 } } else { Reliability::Reliable };
            let config =
                ChannelConfig { label: spec.label.clone(), ordered: !spec.lossy, reliability, ..Default::default() };
            let id = api.add_channel_with_config(config);
            let pending = self.early_data.remove(&spec.label).unwrap_or_default();
            let pending_bytes = pending.iter().map(Vec::len).sum();
            self.channels
                .insert(id, ChannelState { label: spec.label, lossy: spec.lossy, open: false, pending, pending_bytes });
        }
        for (stream_id, track_id) in request.add_audio {
            let mid =
                api.add_media(MediaKind::Audio, Direction::SendOnly, Some(stream_id), Some(track_id.clone()), None);
            self.local_tracks.insert(track_id, mid);
        }
        for mid in request.deactivate {
            api.set_direction(Mid::from(mid.as_str()), Direction::Inactive);
        }
        if request.ice_restart {
            api.ice_restart(true);
        }
        let offer = api.apply().map(|(offer, pending)| {
            self.pending_offer = Some(pending);
            offer.to_sdp_string()
        });
        self.drain(now);
        Ok(offer)
    }

    /// Applies the answer to our pending offer.
    pub fn accept_answer(&mut self, answer: &str, now: Instant) -> Result<(), PeerError> {
        let pending = self.pending_offer.take().ok_or(PeerError::NoPendingOffer)?;
        let parsed =
            SdpAnswer::from_sdp_string(answer).map_err(|e| PeerError::BadSdp { what: "answer", why: e.to_string() })?;
        self.rtc.sdp_api().accept_answer(pending, parsed).map_err(|e| PeerError::Negotiation(e.to_string()))?;
        self.opus_pt.clear();
        self.drain(now);
        Ok(())
    }

    /// Our send-only sections as `(msid track id, mid)`.
    pub fn local_tracks(&self) -> Vec<(String, String)> {
        self.local_tracks.iter().map(|(track, mid)| (track.clone(), mid.to_string())).collect()
    }

    /// The media sections of the latest remote SDP by mid, with the track each carries.
    pub fn remote_sections(&self) -> &BTreeMap<String, MediaSection> {
        &self.remote_sections
    }

    /// Sends one Opus frame on a send-capable section.
    pub fn write_audio(
        &mut self,
        mid: &str,
        rtp_time: u64,
        wallclock: Instant,
        data: Arc<[u8]>,
        now: Instant,
    ) -> Result<(), PeerError> {
        let mid = Mid::from(mid);
        let pt = match self.opus_pt.get(&mid) {
            Some(pt) => *pt,
            None => {
                let writer = self.rtc.writer(mid).ok_or_else(|| PeerError::UnknownMid(mid.to_string()))?;
                let params = writer.payload_params().find(|p| p.spec().codec == Codec::Opus);
                let pt = params.map(|p| p.pt()).ok_or_else(|| PeerError::NoOpus(mid.to_string()))?;
                self.opus_pt.insert(mid, pt);
                pt
            }
        };
        let writer = self.rtc.writer(mid).ok_or_else(|| PeerError::UnknownMid(mid.to_string()))?;
        let result =
            writer.write(pt, wallclock, MediaTime::new(rtp_time, str0m::media::Frequency::FORTY_EIGHT_KHZ), data);
        self.drain(now);
        // str0m queues the frame until its next timeout; giving it that time now sends the frame
        // at once, saving a timer wake-up per frame (50 a second per track).
        self.handle_timeout(now);
        result.map_err(|e| PeerError::Failed(e.to_string()))
    }

    /// Sends on the channel with this label, queueing while it is not open or its buffer is full.
    /// Lossy channels drop instead of queueing once open, as their data is only useful now.
    pub fn send_data(&mut self, label: &str, data: Vec<u8>, now: Instant) -> Result<(), PeerError> {
        let Some((&id, _)) = self.channels.iter().find(|(_, state)| state.label == label) else {
            let queue = self.early_data.entry(label.to_owned()).or_default();
            if queue.iter().map(Vec::len).sum::<usize>() + data.len() > MAX_PENDING_DATA_BYTES {
                return Err(PeerError::DataBacklog(label.to_owned()));
            }
            queue.push_back(data);
            return Ok(());
        };
        let state = self.channels.get_mut(&id).expect("found just above");
        if state.pending_bytes + data.len() > MAX_PENDING_DATA_BYTES {
            return Err(PeerError::DataBacklog(label.to_owned()));
        }
        state.pending_bytes += data.len();
        state.pending.push_back(data);
        self.flush_channel(id);
        self.drain(now);
        Ok(())
    }

    /// A UDP datagram that arrived on one of our sockets.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let Ok(contents) = contents.try_into() else { return };
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination, contents });
        if self.rtc.accepts(&input) {
            if let Err(e) = self.rtc.handle_input(input) {
                tracing::debug!("dropped a datagram from {source}: {e}");
            }
            self.drain(now);
        }
    }

    /// Lets time pass: ICE checks, retransmissions, keepalives.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.fail(e.to_string());
        }
        self.drain(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, at most 100 ms away.
    pub fn next_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// The next thing to transmit or report, oldest first.
    pub fn poll_output(&mut self) -> Option<CoreOutput> {
        self.outputs.pop_front()
    }

    /// False once the connection failed or closed; the driver then stops.
    pub fn is_alive(&self) -> bool {
        !self.failed && self.rtc.is_alive()
    }

    /// Closes the connection; a `Closed` event follows.
    pub fn close(&mut self, now: Instant) {
        if let Err(e) = self.rtc.close() {
            tracing::debug!("closing the peer connection: {e}");
        }
        self.drain(now);
    }

    fn fail(&mut self, why: String) {
        if !self.failed {
            self.failed = true;
            self.outputs.push_back(CoreOutput::Event(PeerEvent::Failed(why)));
        }
    }

    fn flush_channel(&mut self, id: ChannelId) {
        let Some(state) = self.channels.get_mut(&id) else { return };
        if !state.open {
            return;
        }
        let Some(mut channel) = self.rtc.channel(id) else { return };
        while let Some(message) = state.pending.front() {
            match channel.write(true, message) {
                Ok(true) => {
                    state.pending_bytes -= message.len();
                    state.pending.pop_front();
                }
                Ok(false) if state.lossy => {
                    state.pending_bytes -= message.len();
                    state.pending.pop_front();
                }
                Ok(false) => {
                    channel.set_buffered_amount_low_threshold(256 * 1024);
                    break;
                }
                Err(e) => {
                    tracing::debug!(label = %state.label, "data channel write failed: {e}");
                    state.pending.clear();
                    state.pending_bytes = 0;
                    break;
                }
            }
        }
    }

    /// Drains str0m until it asks for time, as its contract requires after every mutation.
    fn drain(&mut self, now: Instant) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.next_timeout = at.min(now + MAX_SLEEP);
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    let transmit = CoreOutput::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.to_vec(),
                    };
                    self.outputs.push_back(transmit);
                }
                Ok(Output::Event(event)) => self.on_event(event),
                Err(e) => {
                    self.fail(e.to_string());
                    self.next_timeout = now + MAX_SLEEP;
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let event = match event {
            Event::Connected => PeerEvent::Connected,
            Event::IceConnectionStateChange(state) => PeerEvent::IceState(state),
            Event::MediaData(data) => PeerEvent::Media(MediaPacket {
                mid: data.mid.to_string(),
                rtp_time: data.time.rebase(str0m::media::Frequency::FORTY_EIGHT_KHZ).numer(),
                network_time: data.network_time,
                contiguous: data.contiguous,
                data: data.data,
            }),
            Event::ChannelOpen(id, label) => {
                let state = self.channels.entry(id).or_insert_with(|| ChannelState {
                    label: label.clone(),
                    lossy: label.contains("lossy"),
                    open: false,
                    pending: VecDeque::new(),
                    pending_bytes: 0,
                });
                state.open = true;
                if let Some(early) = self.early_data.remove(&label) {
                    state.pending_bytes += early.iter().map(Vec::len).sum::<usize>();
                    state.pending.extend(early);
                }
                self.flush_channel(id);
                PeerEvent::ChannelOpen(label)
            }
            Event::ChannelData(data) => {
                let Some(state) = self.channels.get(&data.id) else { return };
                PeerEvent::ChannelData { label: state.label.clone(), data: data.data }
            }
            Event::ChannelClose(id) => match self.channels.remove(&id) {
                Some(state) => PeerEvent::ChannelClosed(state.label),
                None => return,
            },
            Event::ChannelBufferedAmountLow(id) => {
                self.flush_channel(id);
                return;
            }
            Event::Closed => PeerEvent::Closed,
            _ => return,
        };
        self.outputs.push_back(CoreOutput::Event(event));
    }
}
