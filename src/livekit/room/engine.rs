//! The participant's protocol logic as a synchronous state machine: signalling messages, peer
//! events, user commands and time go in; messages to send, peer commands and room events come
//! out as [`Action`]s. No sockets or tasks here, so every flow is unit-tested message by message.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use livekit_protocol as pb;
use pb::{signal_request, signal_response};
use tokio::sync::{mpsc, oneshot, watch};

use super::events::{RoomError, RoomEvent};
use super::participants::Participants;
use super::tracks::{RemoteAudioTrack, SharedOutgoing, TrackEncoder};
use crate::livekit::data::{self, Deduplicator, Sequencer, TextStreamAssembler};
use crate::livekit::peer::sdp::{self, SectionKind};
use crate::livekit::peer::{CandidateInit, ChannelSpec, DriverEvent, MediaSink, OfferRequest, PeerCommand, PeerEvent};
use crate::livekit::signal::{Keepalive, KeepaliveAction};

/// Decoded audio waiting for a consumer: a second of packets, then the newest are dropped.
const TRACK_QUEUE: usize = 50;
/// LiveKit answers publish and metadata requests at once; beyond this something is wrong.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// ICE that stays disconnected this long will not recover on its own.
const ICE_GRACE: Duration = Duration::from_secs(10);
/// A server that sends us away closes our peer connections right after its leave request, and
/// the closure can be noticed first; the leave decides whether we rejoin, so it gets this long.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Publisher,
    Subscriber,
}

impl Target {
    fn signal(self) -> i32 {
        match self {
            Self::Publisher => pb::SignalTarget::Publisher as i32,
            Self::Subscriber => pb::SignalTarget::Subscriber as i32,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Action {
    Signal(signal_request::Message),
    Peer(Target, PeerCommand),
    Emit(RoomEvent),
    /// The session cannot go on; join again.
    Reconnect(String),
    /// The room is over for us.
    Close(String),
}

/// What the room's user asks for.
#[derive(Debug)]
pub(crate) enum Command {
    PublishAudio {
        name: String,
        reply: oneshot::Sender<Result<PublishedAudio, RoomError>>,
    },
    SendPackets {
        packets: Vec<pb::DataPacket>,
    },
    /// Our name (when given) and attributes; an empty attribute value deletes the key.
    UpdateSelf {
        name: Option<String>,
        attributes: HashMap<String, String>,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    Simulate(pb::simulate_scenario::Scenario),
}

pub(crate) struct PublishedAudio {
    pub outgoing: SharedOutgoing,
    pub sid: watch::Receiver<Option<String>>,
}

impl std::fmt::Debug for PublishedAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedAudio").field("sid", &*self.sid.borrow()).finish_non_exhaustive()
    }
}

/// A track we publish; it survives reconnections: its audio queue is handed to each new
/// publisher peer, and its sid is updated for the track's owner.
pub(crate) struct Publication {
    pub name: String,
    outgoing: SharedOutgoing,
    sid: watch::Sender<Option<String>>,
    /// Assigned by the server in this session.
    session_sid: Option<String>,
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication").field("name", &self.name).field("sid", &self.session_sid).finish_non_exhaustive()
    }
}

/// State that outlives one signalling session.
#[derive(Debug, Default)]
pub(crate) struct Carried {
    pub publications: HashMap<String, Publication>,
    pub participants: Participants,
}

#[derive(Debug, Default)]
struct PeerState {
    /// Our offer or answer went to the server, so our candidates may follow.
    described: bool,
    /// The server's description was handed to the peer, so its candidates may follow.
    remote_applied: bool,
    queued_remote: Vec<CandidateInit>,
    queued_local: Vec<String>,
    mid: Option<String>,
    disconnected_since: Option<Instant>,
    closed_at: Option<Instant>,
}

struct Pending<T> {
    reply: oneshot::Sender<Result<T, RoomError>>,
    deadline: Instant,
}

pub(crate) struct Engine {
    pub local_sid: String,
    pub local_identity: String,
    pub room_name: String,
    participants: Participants,
    keepalive: Keepalive,
    publisher: PeerState,
    subscriber: PeerState,
    negotiating: bool,
    renegotiate: OfferRequest,
    next_offer_id: u32,
    answer_ids: VecDeque<u32>,
    subscribed: HashMap<String, (String, String)>,
    waiting_tracks: Vec<RemoteAudioTrack>,
    publications: HashMap<String, Publication>,
    pending_publishes: HashMap<String, (String, Pending<PublishedAudio>)>,
    pending_requests: HashMap<u32, Pending<()>>,
    next_request_id: u32,
    sequencer: Sequencer,
    dedup: Deduplicator,
    assembler: TextStreamAssembler,
    /// The text-stream assembler's clock origin (it only measures idle time).
    epoch: Instant,
    actions: Vec<Action>,
}

impl Engine {
    /// Starts a session from the server's JoinResponse: opens the publisher's data channels and
    /// republishes `carried.publications`. After a reconnection, `carried.participants` holds who
    /// was known, so only real arrivals, departures and changes become events.
    pub fn new(join: &pb::JoinResponse, carried: Carried, now: Instant) -> Self {
        let local = join.participant.clone().unwrap_or_default();
        let mut participants = carried.participants;
        participants.set_local_sid(local.sid.clone());
        let mut engine = Self {
            local_sid: local.sid.clone(),
            local_identity: local.identity.clone(),
            room_name: join.room.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
            participants,
            keepalive: Keepalive::new(join.ping_interval, join.ping_timeout, now),
            publisher: PeerState::default(),
            subscriber: PeerState::default(),
            negotiating: false,
            renegotiate: OfferRequest::default(),
            next_offer_id: 1,
            answer_ids: VecDeque::new(),
            subscribed: HashMap::new(),
            waiting_tracks: Vec::new(),
            publications: HashMap::new(),
            pending_publishes: HashMap::new(),
            pending_requests: HashMap::new(),
            next_request_id: 1,
            sequencer: Sequencer::new(),
            dedup: Deduplicator::default(),
            assembler: TextStreamAssembler::default(),
            epoch: now,
            actions: Vec::new(),
        };
        let present: Vec<&str> = join.other_participants.iter().map(|p| p.sid.as_str()).collect();
        for participant in engine.participants.retain(&present) {
            engine.emit(RoomEvent::ParticipantDisconnected {
                participant,
                reason: pb::DisconnectReason::UnknownReason as i32,
            });
        }
        for info in &join.other_participants {
            engine.apply_participant(info);
        }
        let channels = vec![
            ChannelSpec { label: "_reliable".into(), lossy: false },
            ChannelSpec { label: "_lossy".into(), lossy: true },
        ];
        engine.negotiate(OfferRequest { channels, ..OfferRequest::default() });
        for (cid, publication) in carried.publications {
            engine.request_track(&cid, &publication.name);
            engine.publications.insert(cid, Publication { session_sid: None, ..publication });
        }
        engine
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// What the next session takes over; our tracks stop sending until republished.
    pub fn into_carried(self) -> Carried {
        for publication in self.publications.values() {
            publication.sid.send_replace(None);
        }
        Carried { publications: self.publications, participants: self.participants }
    }

    pub fn next_deadline(&self) -> Instant {
        let requests = self.pending_requests.values().map(|p| p.deadline);
        let publishes = self.pending_publishes.values().map(|(_, p)| p.deadline);
        let peers = [&self.publisher, &self.subscriber];
        let ice = peers.into_iter().filter_map(|s| s.disconnected_since.map(|t| t + ICE_GRACE));
        let closed = peers.into_iter().filter_map(|s| s.closed_at.map(|t| t + CLOSE_GRACE));
        requests.chain(publishes).chain(ice).chain(closed).fold(self.keepalive.deadline(), Instant::min)
    }

    pub fn handle_tick(&mut self, now: Instant, wallclock_ms: i64) {
        match self.keepalive.poll(now) {
            KeepaliveAction::Wait => {}
            KeepaliveAction::SendPing => {
                let rtt = self.keepalive.rtt().map_or(0, |rtt| i64::try_from(rtt.as_millis()).unwrap_or(i64::MAX));
                self.signal(signal_request::Message::PingReq(pb::Ping { timestamp: wallclock_ms, rtt }));
            }
            KeepaliveAction::Dead => self.actions.push(Action::Reconnect("the signal connection went silent".into())),
        }
        let expired: Vec<u32> =
            self.pending_requests.iter().filter(|(_, p)| now >= p.deadline).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(pending) = self.pending_requests.remove(&id) {
                let _ = pending.reply.send(Err(RoomError::Timeout("the server did not confirm the attribute update")));
            }
        }
        let expired: Vec<String> =
            self.pending_publishes.iter().filter(|(_, (_, p))| now >= p.deadline).map(|(cid, _)| cid.clone()).collect();
        for cid in expired {
            if let Some((_, pending)) = self.pending_publishes.remove(&cid) {
                self.publications.remove(&cid);
                let _ = pending.reply.send(Err(RoomError::Timeout("the server did not accept the track")));
            }
        }
        for event in self.assembler.expire(self.clock_ms(now)) {
            self.emit(RoomEvent::Text(event));
        }
        for (target, state) in [(Target::Publisher, &self.publisher), (Target::Subscriber, &self.subscriber)] {
            if state.closed_at.is_some_and(|at| now >= at + CLOSE_GRACE) {
                self.actions.push(Action::Reconnect(format!("the server closed the {target:?} peer connection")));
                return;
            }
            if state.disconnected_since.is_some_and(|since| now >= since + ICE_GRACE) {
                self.actions.push(Action::Reconnect("the media connection was lost".into()));
                return;
            }
        }
    }

    pub fn handle_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::PublishAudio { name, reply } => {
                let cid = format!("TR_{}", uuid::Builder::from_random_bytes(rand::random()).into_uuid().simple());
                let (sid, _) = watch::channel(None);
                self.request_track(&cid, &name);
                let publication =
                    Publication { name: name.clone(), outgoing: SharedOutgoing::default(), sid, session_sid: None };
                self.publications.insert(cid.clone(), publication);
                self.pending_publishes.insert(cid, (name, Pending { reply, deadline: now + REQUEST_TIMEOUT }));
            }
            Command::SendPackets { packets } => {
                for mut packet in packets {
                    self.sequencer.stamp(&mut packet);
                    let label = match data::Reliability::of(&packet) {
                        data::Reliability::Reliable => "_reliable",
                        data::Reliability::Lossy => "_lossy",
                    };
                    let bytes = data::encode(&packet);
                    self.actions.push(Action::Peer(
                        Target::Publisher,
                        PeerCommand::SendData { label: label.into(), data: bytes },
                    ));
                }
            }
            Command::UpdateSelf { name, attributes, reply } => {
                let request_id = self.next_request_id;
                self.next_request_id += 1;
                self.pending_requests.insert(request_id, Pending { reply, deadline: now + REQUEST_TIMEOUT });
                let update = pb::UpdateParticipantMetadata {
                    name: name.unwrap_or_default(),
                    attributes,
                    request_id,
                    ..Default::default()
                };
                self.signal(signal_request::Message::UpdateMetadata(update));
            }
            Command::Simulate(scenario) => {
                self.signal(signal_request::Message::Simulate(pb::SimulateScenario { scenario: Some(scenario) }));
            }
        }
    }

    pub fn handle_signal(&mut self, message: signal_response::Message, now: Instant) {
        use signal_response::Message as M;
        self.keepalive.heard(now);
        match message {
            M::Offer(offer) => self.on_subscriber_offer(offer),
            M::Answer(answer) => {
                self.actions.push(Action::Peer(Target::Publisher, PeerCommand::AcceptAnswer(answer.sdp)));
                self.publisher.remote_applied = true;
                self.flush_remote_candidates(Target::Publisher);
                self.negotiating = false;
                if !is_empty(&self.renegotiate) {
                    let request = std::mem::take(&mut self.renegotiate);
                    self.negotiate(request);
                }
            }
            M::Trickle(trickle) => self.on_trickle(trickle),
            M::Update(update) => {
                for info in &update.participants {
                    self.apply_participant(info);
                }
            }
            M::TrackPublished(published) => self.on_track_published(published),
            M::Leave(leave) => self.on_leave(&leave),
            M::PongResp(pong) => {
                self.keepalive.pong(pong.last_ping_timestamp, pong.timestamp.max(pong.last_ping_timestamp));
            }
            M::RequestResponse(response) => self.on_request_response(response),
            M::RefreshToken(_) | M::Pong(_) | M::RoomUpdate(_) | M::SpeakersChanged(_) | M::ConnectionQuality(_) => {}
            M::Join(_) | M::Reconnect(_) => tracing::debug!("ignored a join/reconnect response mid-session"),
            other => tracing::trace!("ignored signal message {other:?}"),
        }
    }

    pub fn handle_peer(&mut self, target: Target, event: DriverEvent, now: Instant) {
        match event {
            DriverEvent::Answer(sdp) => {
                let id = self.answer_ids.pop_front().unwrap_or(0);
                self.subscriber.mid = self.subscriber.mid.take().or_else(|| sdp::first_mid(&sdp));
                self.signal(signal_request::Message::Answer(pb::SessionDescription {
                    r#type: "answer".into(),
                    sdp,
                    id,
                    ..Default::default()
                }));
                self.subscriber.described = true;
                self.flush_local_candidates(Target::Subscriber);
            }
            DriverEvent::Offer(sdp) => {
                let id = self.next_offer_id;
                self.next_offer_id += 1;
                self.publisher.mid = self.publisher.mid.take().or_else(|| sdp::first_mid(&sdp));
                self.signal(signal_request::Message::Offer(pb::SessionDescription {
                    r#type: "offer".into(),
                    sdp,
                    id,
                    ..Default::default()
                }));
                self.publisher.described = true;
                self.flush_local_candidates(Target::Publisher);
            }
            DriverEvent::LocalTracks(tracks) => self.on_local_tracks(tracks),
            DriverEvent::FirstMedia(_) => {}
            DriverEvent::Error(error) => {
                tracing::warn!(?target, "peer connection error: {error}");
                if target == Target::Publisher && self.negotiating {
                    self.actions.push(Action::Reconnect(format!("publishing failed: {error}")));
                }
            }
            DriverEvent::Peer(event) => self.on_peer_event(target, event, now),
        }
    }

    fn on_peer_event(&mut self, target: Target, event: PeerEvent, now: Instant) {
        match event {
            PeerEvent::LocalCandidate(candidate) => {
                let state = self.peer_state(target);
                state.queued_local.push(candidate);
                if state.described {
                    self.flush_local_candidates(target);
                }
            }
            PeerEvent::IceState(state) => {
                use str0m::IceConnectionState as S;
                let peer = self.peer_state(target);
                match state {
                    S::Disconnected => peer.disconnected_since = peer.disconnected_since.or(Some(now)),
                    S::Connected | S::Completed => peer.disconnected_since = None,
                    S::New | S::Checking => {}
                }
            }
            PeerEvent::ChannelData { data, .. } => self.on_data(&data, now),
            PeerEvent::Failed(why) => {
                self.actions.push(Action::Reconnect(format!("the {target:?} peer connection failed: {why}")))
            }
            PeerEvent::Closed => {
                let peer = self.peer_state(target);
                peer.closed_at = peer.closed_at.or(Some(now));
            }
            PeerEvent::Connected | PeerEvent::ChannelOpen(_) | PeerEvent::ChannelClosed(_) | PeerEvent::Media(_) => {}
        }
    }

    fn on_subscriber_offer(&mut self, offer: pb::SessionDescription) {
        let mut routes = Vec::new();
        let sections = sdp::media_sections(&offer.sdp);
        let mut current = HashMap::new();
        for section in &sections {
            let Some(msid) = &section.msid else { continue };
            if section.kind != SectionKind::Audio || !section.direction.sends() || section.port_zero {
                continue;
            }
            let participant_sid = msid.livekit_participant_sid().unwrap_or_default().to_owned();
            current.insert(section.mid.clone(), (participant_sid, msid.track_id.clone()));
        }
        let gone: Vec<String> = self
            .subscribed
            .iter()
            .filter(|(mid, track)| current.get(*mid) != Some(track))
            .map(|(mid, _)| mid.clone())
            .collect();
        for mid in gone {
            if let Some((participant_sid, track_sid)) = self.subscribed.remove(&mid) {
                self.actions.push(Action::Peer(Target::Subscriber, PeerCommand::Route { mid, sinks: Vec::new() }));
                let identity = self.participants.get(&participant_sid).map(|p| p.identity.clone()).unwrap_or_default();
                self.waiting_tracks.retain(|t| t.track_sid != track_sid);
                self.emit(RoomEvent::TrackUnsubscribed { participant_identity: identity, track_sid });
            }
        }
        for (mid, (participant_sid, track_sid)) in current {
            if self.subscribed.contains_key(&mid) {
                continue;
            }
            let (sender, receiver) = mpsc::channel(TRACK_QUEUE);
            routes.push((mid.clone(), MediaSink::Channel(sender)));
            let identity = self.participants.get(&participant_sid).map(|p| p.identity.clone());
            match RemoteAudioTrack::new(
                identity.clone().unwrap_or_default(),
                participant_sid.clone(),
                track_sid.clone(),
                receiver,
            ) {
                Ok(track) if identity.is_some() => self.emit(RoomEvent::TrackSubscribed { track }),
                Ok(track) => self.waiting_tracks.push(track),
                Err(e) => tracing::warn!("cannot decode track {track_sid}: {e}"),
            }
            self.subscribed.insert(mid, (participant_sid, track_sid));
        }
        self.answer_ids.push_back(offer.id);
        self.actions.push(Action::Peer(Target::Subscriber, PeerCommand::AcceptOffer { sdp: offer.sdp, routes }));
        self.subscriber.remote_applied = true;
        self.flush_remote_candidates(Target::Subscriber);
    }

    fn on_trickle(&mut self, trickle: pb::TrickleRequest) {
        let init = match CandidateInit::parse(&trickle.candidate_init) {
            Ok(init) => init,
            Err(e) => {
                tracing::debug!("ignored a trickled candidate: {e}");
                return;
            }
        };
        let target =
            if trickle.target == pb::SignalTarget::Subscriber as i32 { Target::Subscriber } else { Target::Publisher };
        if trickle.r#final {
            tracing::debug!(?target, "the server finished gathering candidates");
        }
        self.peer_state(target).queued_remote.push(init);
        self.flush_remote_candidates(target);
    }

    fn on_track_published(&mut self, published: pb::TrackPublishedResponse) {
        let sid = published.track.map(|t| t.sid).unwrap_or_default();
        let Some(publication) = self.publications.get_mut(&published.cid) else { return };
        publication.session_sid = Some(sid);
        let answer = PublishedAudio { outgoing: publication.outgoing.clone(), sid: publication.sid.subscribe() };
        if let Some((_, pending)) = self.pending_publishes.remove(&published.cid) {
            let _ = pending.reply.send(Ok(answer));
        }
        let stream_id = format!("{}|{}", self.local_sid, published.cid);
        self.negotiate(OfferRequest { add_audio: vec![(stream_id, published.cid)], ..OfferRequest::default() });
    }

    /// Our tracks are negotiated: the publisher peer starts sending them.
    fn on_local_tracks(&mut self, tracks: Vec<(String, String)>) {
        for (cid, mid) in tracks {
            let Some(publication) = self.publications.get(&cid) else { continue };
            let Some(sid) = publication.session_sid.clone() else { continue };
            match TrackEncoder::new(publication.outgoing.clone()) {
                Ok(encoder) => {
                    self.actions.push(Action::Peer(
                        Target::Publisher,
                        PeerCommand::SendAudio { mid, source: Box::new(encoder) },
                    ));
                    publication.sid.send_replace(Some(sid));
                }
                Err(e) => tracing::error!(track = %sid, "cannot encode the track: {e}"),
            }
        }
    }

    fn on_leave(&mut self, leave: &pb::LeaveRequest) {
        use pb::leave_request::Action as LeaveAction;
        let reason = pb::DisconnectReason::try_from(leave.reason).map(|r| r.as_str_name()).unwrap_or("UNKNOWN_REASON");
        match LeaveAction::try_from(leave.action) {
            Ok(LeaveAction::Resume | LeaveAction::Reconnect) => {
                self.actions.push(Action::Reconnect(format!("the server asked us to reconnect ({reason})")))
            }
            _ if leave.can_reconnect => {
                self.actions.push(Action::Reconnect(format!("the server asked us to reconnect ({reason})")))
            }
            _ => self.actions.push(Action::Close(reason.to_owned())),
        }
    }

    fn on_request_response(&mut self, response: pb::RequestResponse) {
        let Some(pending) = self.pending_requests.remove(&response.request_id) else { return };
        let result = if response.reason == pb::request_response::Reason::Ok as i32 {
            Ok(())
        } else {
            let reason =
                pb::request_response::Reason::try_from(response.reason).map(|r| r.as_str_name()).unwrap_or("UNKNOWN");
            Err(RoomError::Refused(format!("{reason}: {}", response.message)))
        };
        let _ = pending.reply.send(result);
    }

    fn on_data(&mut self, bytes: &[u8], now: Instant) {
        let packet = match data::decode(bytes) {
            Ok(packet) => packet,
            Err(e) => {
                tracing::debug!("ignored undecodable data: {e}");
                return;
            }
        };
        if !self.dedup.accept(&packet) {
            return;
        }
        if let Some(user) = data::IncomingUser::from_packet(&packet) {
            self.emit(RoomEvent::DataReceived {
                participant_identity: user.sender_identity,
                topic: user.topic,
                payload: user.payload,
                reliable: user.reliable,
            });
            return;
        }
        for event in self.assembler.push(&packet, self.clock_ms(now)) {
            self.emit(RoomEvent::Text(event));
        }
    }

    fn apply_participant(&mut self, info: &pb::ParticipantInfo) {
        for event in self.participants.apply(info) {
            match &event {
                RoomEvent::ParticipantConnected(participant) => {
                    let ready: Vec<_> =
                        self.waiting_tracks.extract_if(.., |t| t.participant_sid == participant.sid).collect();
                    let identity = participant.identity.clone();
                    self.emit(event);
                    for mut track in ready {
                        track.participant_identity = identity.clone();
                        self.emit(RoomEvent::TrackSubscribed { track });
                    }
                    continue;
                }
                RoomEvent::ParticipantDisconnected { participant, .. } => {
                    self.dedup.forget(&participant.sid);
                    for aborted in self.assembler.forget_sender(&participant.sid) {
                        self.emit(RoomEvent::Text(aborted));
                    }
                }
                _ => {}
            }
            self.emit(event);
        }
    }

    fn request_track(&mut self, cid: &str, name: &str) {
        let request = pb::AddTrackRequest {
            cid: cid.to_owned(),
            name: name.to_owned(),
            r#type: pb::TrackType::Audio as i32,
            source: pb::TrackSource::Microphone as i32,
            disable_red: true,
            audio_features: vec![pb::AudioTrackFeature::TfNoDtx as i32],
            ..Default::default()
        };
        self.signal(signal_request::Message::AddTrack(request));
    }

    /// One publisher offer at a time; changes asked for meanwhile go in the next one.
    fn negotiate(&mut self, request: OfferRequest) {
        if self.negotiating {
            let pending = &mut self.renegotiate;
            pending.channels.extend(request.channels);
            pending.add_audio.extend(request.add_audio);
            pending.deactivate.extend(request.deactivate);
            pending.ice_restart |= request.ice_restart;
            return;
        }
        self.negotiating = true;
        self.actions.push(Action::Peer(Target::Publisher, PeerCommand::CreateOffer(request)));
    }

    fn flush_remote_candidates(&mut self, target: Target) {
        let state = self.peer_state(target);
        if !state.remote_applied {
            return;
        }
        let queued = std::mem::take(&mut state.queued_remote);
        for init in queued {
            self.actions.push(Action::Peer(target, PeerCommand::AddRemoteCandidate(init)));
        }
    }

    fn flush_local_candidates(&mut self, target: Target) {
        let state = self.peer_state(target);
        let mid = state.mid.clone().unwrap_or_else(|| "0".into());
        let queued = std::mem::take(&mut state.queued_local);
        for candidate in queued {
            let trickle = pb::TrickleRequest {
                candidate_init: CandidateInit::new(candidate, &mid).to_json(),
                target: target.signal(),
                r#final: false,
            };
            self.signal(signal_request::Message::Trickle(trickle));
        }
    }

    fn clock_ms(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(i64::MAX)
    }

    fn peer_state(&mut self, target: Target) -> &mut PeerState {
        match target {
            Target::Publisher => &mut self.publisher,
            Target::Subscriber => &mut self.subscriber,
        }
    }

    fn signal(&mut self, message: signal_request::Message) {
        self.actions.push(Action::Signal(message));
    }

    fn emit(&mut self, event: RoomEvent) {
        self.actions.push(Action::Emit(event));
    }
}

fn is_empty(request: &OfferRequest) -> bool {
    request.channels.is_empty() && request.add_audio.is_empty() && request.deactivate.is_empty() && !request.ice_restart
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
