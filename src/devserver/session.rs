//! One participant's connection to the dev server: its signal WebSocket and its two peers
//! (publisher: the client offers; subscriber: we offer), bridged to the room's task.
//!
//! Nothing here waits on the client: replies go through a [`SignalWriter`] whose queue is
//! bounded, and every collection the client can grow (candidates, tracks, sections, pending
//! changes) has a bound from [`super::limits`]; a client past one is refused or closed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use livekit_api::access_token::Claims;
use livekit_protocol as pb;
use pb::{signal_request, signal_response};
use tokio::sync::{mpsc, oneshot};

use super::limits::{
    self, CandidateCount, MAX_CANDIDATE_BYTES, MAX_MEDIA_SECTIONS, MAX_TRACKS_PER_PARTICIPANT, MAX_UNANSWERED_CHANGES,
    MAX_UNANSWERED_OFFERS, SESSION_QUEUE,
};
use super::room::{JoinReply, MemberOptions, RoomHandle, RoomMsg, SessionLink, ToSession};
use super::writer::SignalWriter;
use super::{DevServerConfig, answer, ids};
use crate::livekit::peer::{
    self, CandidateInit, ChannelSpec, DriverEvent, OfferRequest, PeerCommand, PeerConfig, PeerEvent, PeerHandle, sdp,
};
use crate::livekit::signal::{self, FrameError, PROTOCOL_VERSION};

/// LiveKit removes a participant whose primary peer does not connect within this.
const ACTIVE_DEADLINE: Duration = Duration::from_secs(60);
const PING_INTERVAL: i32 = 5;
const PING_TIMEOUT: i32 = 15;

/// What the join URL asked for.
#[derive(Debug, Clone)]
pub(super) struct JoinOptions {
    pub auto_subscribe: bool,
    /// A resume (`reconnect=1`): we keep no state to resume, so the client is told to rejoin.
    pub resume: bool,
    /// The client's SDK understands `track_subscribed`.
    pub track_subscribed_event: bool,
}

struct Peer {
    handle: PeerHandle,
    events: mpsc::UnboundedReceiver<DriverEvent>,
    task: tokio::task::JoinHandle<()>,
    /// Our description went out, so our candidates may follow.
    described: bool,
    /// The client's description was applied, so its candidates may be.
    remote_applied: bool,
    local_candidates: Vec<String>,
    remote_candidates: Vec<CandidateInit>,
    /// What the client trickled for this peer, bounded per ICE generation.
    trickled: CandidateCount,
    candidate_count: usize,
    sent_candidates: usize,
    mid: Option<String>,
}

struct Session {
    ws: SplitStream<WebSocket>,
    writer: SignalWriter,
    /// Why the session must end, once the client stopped taking our messages or answers.
    closing: Option<String>,
    room: RoomHandle,
    info: pb::ParticipantInfo,
    publisher: Peer,
    subscriber: Peer,
    to_session: mpsc::Receiver<ToSession>,
    /// Tracks accepted but waiting for their first RTP, by cid.
    pending_tracks: HashMap<String, pb::TrackInfo>,
    /// The client's publisher sections: mid → msid track id (the cid).
    publisher_sections: HashMap<String, String>,
    /// Published tracks: mid on our publisher peer → track sid.
    published: HashMap<String, String>,
    subscriber_negotiating: bool,
    subscriber_changes: OfferRequest,
    /// Subscribed track sid → our section for it.
    subscribed: HashMap<String, String>,
    next_offer_id: u32,
    /// The client's offers waiting for our answer: their id and text.
    offers: VecDeque<(u32, String)>,
    dtx: bool,
    active: bool,
    joined_at: Instant,
}

enum End {
    Left(pb::DisconnectReason),
    Removed(pb::DisconnectReason),
}

pub(super) async fn run(
    ws: WebSocket,
    config: Arc<DevServerConfig>,
    rooms: Arc<super::room::Rooms>,
    claims: Claims,
    options: JoinOptions,
) {
    let (sink, ws) = ws.split();
    let writer = SignalWriter::spawn(sink, config.limits.send_timeout, format!("participant {}", claims.sub));
    if options.resume {
        let leave = pb::LeaveRequest {
            reason: pb::DisconnectReason::StateMismatch as i32,
            action: pb::leave_request::Action::Reconnect as i32,
            ..Default::default()
        };
        let _ = writer.send(signal::encode_response(signal_response::Message::Leave(leave)));
        writer.close().await;
        return;
    }
    let identity = claims.sub.clone();
    match Session::join(ws, writer, config, &rooms, claims, options).await {
        Ok(session) => session.run().await,
        Err((writer, why)) => {
            tracing::warn!(participant = %identity, "join failed: {why}");
            // As LiveKit answers a join it cannot take: a leave, then the connection closes.
            let leave = pb::LeaveRequest {
                reason: pb::DisconnectReason::JoinFailure as i32,
                action: pb::leave_request::Action::Disconnect as i32,
                ..Default::default()
            };
            let _ = writer.send(signal::encode_response(signal_response::Message::Leave(leave)));
            writer.close().await;
        }
    }
}

impl Session {
    async fn join(
        ws: SplitStream<WebSocket>,
        writer: SignalWriter,
        config: Arc<DevServerConfig>,
        rooms: &Arc<super::room::Rooms>,
        claims: Claims,
        options: JoinOptions,
    ) -> Result<Self, (SignalWriter, String)> {
        let info = participant_info(&claims);
        let peers = async {
            let publisher = start_peer(&config, format!("{}/publisher", info.identity)).await?;
            let subscriber = start_peer(&config, format!("{}/subscriber", info.identity)).await?;
            Ok::<_, String>((publisher, subscriber))
        };
        let (publisher, subscriber) = match peers.await {
            Ok(peers) => peers,
            Err(why) => return Err((writer, why)),
        };
        let (to_session_tx, to_session) = mpsc::channel(SESSION_QUEUE);
        let link = SessionLink {
            tx: to_session_tx,
            publisher: publisher.handle.clone(),
            subscriber: subscriber.handle.clone(),
        };
        let room = match rooms.get_or_create(&claims.video.room, claims.room_config.clone()) {
            Ok(room) => room,
            Err(why) => return Err((writer, why)),
        };
        let (reply, answer) = oneshot::channel();
        let member = MemberOptions {
            auto_subscribe: options.auto_subscribe,
            track_subscribed_event: options.track_subscribed_event,
        };
        let closed = || "the room closed during the join".to_owned();
        if !room.send(RoomMsg::Join { info: Box::new(info.clone()), options: member, link, reply }).await {
            return Err((writer, closed()));
        }
        let JoinReply { room: room_info, others } = match answer.await.map_err(|_| closed()).and_then(|r| r) {
            Ok(reply) => reply,
            Err(why) => return Err((writer, why)),
        };
        let join = pb::JoinResponse {
            room: Some(room_info),
            participant: Some(info.clone()),
            other_participants: others,
            server_version: env!("CARGO_PKG_VERSION").into(),
            subscriber_primary: true,
            ping_timeout: PING_TIMEOUT,
            ping_interval: PING_INTERVAL,
            server_info: Some(pb::ServerInfo {
                edition: pb::server_info::Edition::Standard as i32,
                version: env!("CARGO_PKG_VERSION").into(),
                protocol: i32::try_from(PROTOCOL_VERSION).unwrap_or(16),
                region: "dev".into(),
                node_id: "dev-server".into(),
                ..Default::default()
            }),
            fast_publish: true,
            ..Default::default()
        };
        let refreshed = super::refresh_token(&config, &claims);
        let mut session = Self {
            ws,
            writer,
            closing: None,
            room,
            info,
            publisher,
            subscriber,
            to_session,
            pending_tracks: HashMap::new(),
            publisher_sections: HashMap::new(),
            published: HashMap::new(),
            subscriber_negotiating: false,
            subscriber_changes: OfferRequest::default(),
            subscribed: HashMap::new(),
            next_offer_id: rand::random_range(1..=256),
            offers: VecDeque::new(),
            dtx: false,
            active: false,
            joined_at: Instant::now(),
        };
        session.send(signal_response::Message::Join(join));
        session.send(signal_response::Message::RefreshToken(refreshed));
        let channels = vec![
            ChannelSpec { label: "_reliable".into(), lossy: false },
            ChannelSpec { label: "_lossy".into(), lossy: true },
        ];
        session.negotiate_subscriber(OfferRequest { channels, ..OfferRequest::default() }).await;
        Ok(session)
    }

    async fn run(mut self) {
        let end = self.serve().await;
        let (reason, removed) = match end {
            End::Left(reason) => (reason, false),
            End::Removed(reason) => (reason, true),
        };
        if !removed {
            self.room.send(RoomMsg::Leave { sid: self.info.sid.clone(), reason }).await;
        }
        let Self { writer, publisher, subscriber, .. } = self;
        writer.close().await;
        drop(publisher.handle);
        drop(subscriber.handle);
        let _ = publisher.task.await;
        let _ = subscriber.task.await;
    }

    async fn serve(&mut self) -> End {
        loop {
            if let Some(why) = self.closing.take() {
                tracing::warn!(participant = %self.info.identity, "closing: {why}");
                return End::Left(pb::DisconnectReason::SignalClose);
            }
            let active_by = tokio::time::Instant::from_std(self.joined_at + ACTIVE_DEADLINE);
            tokio::select! {
                frame = self.ws.next() => match frame {
                    Some(Ok(Message::Binary(bytes))) => match signal::decode_request(&bytes) {
                        Ok(request) => {
                            if let Some(end) = self.on_request(request).await {
                                return end;
                            }
                        }
                        Err(FrameError::Empty) => {}
                        Err(e) => {
                            tracing::warn!(participant = %self.info.identity, "closing: malformed signalling frame ({e})");
                            return End::Left(pb::DisconnectReason::StateMismatch);
                        }
                    },
                    Some(Ok(Message::Text(_))) => {
                        tracing::warn!(participant = %self.info.identity, "closing: text signalling frames are not supported, send binary protobuf");
                        return End::Left(pb::DisconnectReason::StateMismatch);
                    }
                    Some(Ok(Message::Close(_))) | None => return End::Left(pb::DisconnectReason::ClientInitiated),
                    Some(Err(e)) => {
                        tracing::info!(participant = %self.info.identity, "signal connection failed: {e}");
                        return End::Left(pb::DisconnectReason::SignalClose);
                    }
                    Some(Ok(_)) => {}
                },
                message = self.to_session.recv() => match message {
                    Some(message) => {
                        if let Some(end) = self.on_room(message).await {
                            return end;
                        }
                    }
                    // The room removed us (we did not keep up with its events) or closed.
                    None => return End::Removed(pb::DisconnectReason::SignalClose),
                },
                () = self.writer.failed() => return End::Left(pb::DisconnectReason::SignalClose),
                Some(event) = self.publisher.events.recv() => {
                    if let Some(end) = self.on_publisher(event).await {
                        return end;
                    }
                }
                Some(event) = self.subscriber.events.recv() => {
                    if let Some(end) = self.on_subscriber(event).await {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(active_by), if !self.active => {
                    tracing::warn!(participant = %self.info.identity, "closing: the peer connection never connected");
                    return End::Left(pb::DisconnectReason::ConnectionTimeout);
                }
            }
        }
    }

    async fn on_request(&mut self, request: signal_request::Message) -> Option<End> {
        use signal_request::Message as R;
        match request {
            R::Offer(offer) => {
                let sections = sdp::media_sections(&offer.sdp).len();
                if sections > MAX_MEDIA_SECTIONS {
                    tracing::warn!(participant = %self.info.identity, "closing: the offer has {sections} media sections, over the limit of {MAX_MEDIA_SECTIONS}");
                    return Some(End::Left(pb::DisconnectReason::StateMismatch));
                }
                if self.offers.len() >= MAX_UNANSWERED_OFFERS {
                    tracing::warn!(participant = %self.info.identity, "closing: more than {MAX_UNANSWERED_OFFERS} offers without waiting for answers");
                    return Some(End::Left(pb::DisconnectReason::StateMismatch));
                }
                self.on_publisher_offer(&offer.sdp).await;
                self.publisher.trickled.described(&offer.sdp);
                self.offers.push_back((offer.id, offer.sdp.clone()));
                self.publisher.handle.send(PeerCommand::AcceptOffer { sdp: offer.sdp, routes: Vec::new() }).await;
                self.publisher.remote_applied = true;
                self.flush_remote_candidates(true).await;
            }
            R::Answer(answer) => {
                if !self.subscriber_negotiating {
                    tracing::warn!(participant = %self.info.identity, "closing: an answer to no offer of ours");
                    return Some(End::Left(pb::DisconnectReason::StateMismatch));
                }
                self.subscriber.trickled.described(&answer.sdp);
                self.subscriber.handle.send(PeerCommand::AcceptAnswer(answer.sdp)).await;
                self.subscriber.remote_applied = true;
                self.flush_remote_candidates(false).await;
            }
            R::Trickle(trickle) if trickle.candidate_init.len() > MAX_CANDIDATE_BYTES => {
                tracing::debug!(participant = %self.info.identity, "ignored a candidate of {} bytes", trickle.candidate_init.len());
            }
            R::Trickle(trickle) => match CandidateInit::parse(&trickle.candidate_init) {
                Ok(init) => {
                    let publisher = trickle.target != pb::SignalTarget::Subscriber as i32;
                    if !self.peer(publisher).trickled.admit() {
                        tracing::warn!(participant = %self.info.identity, "closing: more than {} ICE candidates for one peer", limits::MAX_REMOTE_CANDIDATES);
                        return Some(End::Left(pb::DisconnectReason::StateMismatch));
                    }
                    self.peer(publisher).remote_candidates.push(init);
                    self.flush_remote_candidates(publisher).await;
                }
                Err(e) => tracing::debug!(participant = %self.info.identity, "ignored a candidate: {e}"),
            },
            R::AddTrack(request) => self.on_add_track(request).await,
            R::Mute(mute) => {
                let mute = RoomMsg::Mute { sid: self.info.sid.clone(), track_sid: mute.sid, muted: mute.muted };
                self.room.send(mute).await;
            }
            R::Subscription(subscription) => {
                let mut track_sids = subscription.track_sids;
                track_sids.extend(subscription.participant_tracks.into_iter().flat_map(|p| p.track_sids));
                let subscription =
                    RoomMsg::Subscription { sid: self.info.sid.clone(), track_sids, subscribe: subscription.subscribe };
                self.room.send(subscription).await;
            }
            R::Leave(_) => return Some(End::Left(pb::DisconnectReason::ClientInitiated)),
            R::UpdateMetadata(update) => self.on_update_metadata(update).await,
            R::PingReq(ping) => {
                let pong =
                    pb::Pong { last_ping_timestamp: ping.timestamp, timestamp: chrono::Utc::now().timestamp_millis() };
                self.send(signal_response::Message::PongResp(pong));
            }
            R::Ping(_) => self.send(signal_response::Message::Pong(chrono::Utc::now().timestamp_millis())),
            R::Simulate(simulate) => return self.on_simulate(simulate).await,
            other => tracing::trace!(participant = %self.info.identity, "ignored signal request {other:?}"),
        }
        None
    }

    /// Remembers which section carries which cid, and notices tracks the client stopped.
    async fn on_publisher_offer(&mut self, offer: &str) {
        self.publisher_sections.clear();
        for section in sdp::media_sections(offer) {
            if section.kind != sdp::SectionKind::Audio {
                continue;
            }
            if let Some(msid) = &section.msid {
                self.publisher_sections.insert(section.mid.clone(), msid.track_id.clone());
            }
            if (!section.direction.sends() || section.port_zero)
                && let Some(track_sid) = self.published.remove(&section.mid)
            {
                self.room.send(RoomMsg::TrackRemoved { sid: self.info.sid.clone(), track_sid }).await;
            }
        }
    }

    async fn on_add_track(&mut self, request: pb::AddTrackRequest) {
        let permission = self.info.permission.clone().unwrap_or_default();
        let source_allowed =
            permission.can_publish_sources.is_empty() || permission.can_publish_sources.contains(&request.source);
        if !permission.can_publish || !source_allowed || request.r#type != pb::TrackType::Audio as i32 {
            let reason = if request.r#type == pb::TrackType::Audio as i32 {
                pb::request_response::Reason::NotAllowed
            } else {
                pb::request_response::Reason::UnsupportedType
            };
            self.refuse_track(request, reason, "this dev server accepts audio tracks the token allows".into());
            return;
        }
        // A repeated request for a pending track is ignored, as LiveKit ignores it.
        if self.pending_tracks.contains_key(&request.cid) {
            return;
        }
        if self.pending_tracks.len() + self.published.len() >= MAX_TRACKS_PER_PARTICIPANT {
            let why = format!("a participant may publish at most {MAX_TRACKS_PER_PARTICIPANT} tracks");
            self.refuse_track(request, pb::request_response::Reason::LimitExceeded, why);
            return;
        }
        #[allow(deprecated, reason = "older clients still opt out of DTX with this field")]
        let no_dtx_flag = request.disable_dtx;
        self.dtx |= !no_dtx_flag && !request.audio_features.contains(&(pb::AudioTrackFeature::TfNoDtx as i32));
        let track = track_info(&request, ids::sid("TR_AM"));
        self.pending_tracks.insert(request.cid.clone(), track.clone());
        self.send(signal_response::Message::TrackPublished(pb::TrackPublishedResponse {
            cid: request.cid,
            track: Some(track),
        }));
    }

    fn refuse_track(&mut self, request: pb::AddTrackRequest, reason: pb::request_response::Reason, why: String) {
        let response = pb::RequestResponse {
            reason: reason as i32,
            message: why,
            request: Some(pb::request_response::Request::AddTrack(request)),
            ..Default::default()
        };
        self.send(signal_response::Message::RequestResponse(response));
    }

    async fn on_update_metadata(&mut self, update: pb::UpdateParticipantMetadata) {
        let allowed = self.info.permission.as_ref().is_some_and(|p| p.can_update_metadata);
        let (reason, message) = if !allowed {
            let why = "the token does not allow updating metadata (canUpdateOwnMetadata)";
            (pb::request_response::Reason::NotAllowed, why.to_owned())
        } else if let Some(why) = limits::metadata_refusal(&update) {
            (pb::request_response::Reason::LimitExceeded, why)
        } else {
            let change = RoomMsg::Update {
                sid: self.info.sid.clone(),
                name: update.name.clone(),
                metadata: update.metadata.clone(),
                attributes: update.attributes.clone(),
            };
            self.room.send(change).await;
            (pb::request_response::Reason::Ok, String::new())
        };
        let response = pb::RequestResponse {
            request_id: update.request_id,
            reason: reason as i32,
            message,
            request: Some(pb::request_response::Request::UpdateMetadata(update)),
        };
        self.send(signal_response::Message::RequestResponse(response));
    }

    async fn on_simulate(&mut self, simulate: pb::SimulateScenario) -> Option<End> {
        use pb::simulate_scenario::Scenario;
        let leave = |reason: pb::DisconnectReason, action: pb::leave_request::Action| pb::LeaveRequest {
            reason: reason as i32,
            action: action as i32,
            ..Default::default()
        };
        match simulate.scenario? {
            Scenario::ServerLeave(_) => {
                self.send(signal_response::Message::Leave(leave(
                    pb::DisconnectReason::ServerShutdown,
                    pb::leave_request::Action::Disconnect,
                )));
                Some(End::Left(pb::DisconnectReason::ServerShutdown))
            }
            Scenario::LeaveRequestFullReconnect(_) => {
                self.send(signal_response::Message::Leave(leave(
                    pb::DisconnectReason::StateMismatch,
                    pb::leave_request::Action::Reconnect,
                )));
                Some(End::Left(pb::DisconnectReason::StateMismatch))
            }
            // As LiveKit does: drop the participant without a leave; the client notices and rejoins.
            Scenario::NodeFailure(_) | Scenario::Migration(_) => Some(End::Left(pb::DisconnectReason::Migration)),
            other => {
                tracing::debug!(participant = %self.info.identity, "ignored simulated scenario {other:?}");
                None
            }
        }
    }

    async fn on_room(&mut self, message: ToSession) -> Option<End> {
        match message {
            ToSession::Updates(participants) => {
                self.send(signal_response::Message::Update(pb::ParticipantUpdate { participants }))
            }
            ToSession::Subscribe { track, publisher_sid } => {
                let stream_id = format!("{publisher_sid}|{}", track.sid);
                self.negotiate_subscriber(OfferRequest {
                    add_audio: vec![(stream_id, track.sid)],
                    ..OfferRequest::default()
                })
                .await;
            }
            ToSession::Unsubscribe { track_sid } => {
                if let Some(mid) = self.subscribed.remove(&track_sid) {
                    self.negotiate_subscriber(OfferRequest { deactivate: vec![mid], ..OfferRequest::default() }).await;
                }
            }
            ToSession::TrackSubscribed { track_sid } => {
                self.send(signal_response::Message::TrackSubscribed(pb::TrackSubscribed { track_sid }));
            }
            ToSession::Leave(leave) => {
                let reason =
                    pb::DisconnectReason::try_from(leave.reason).unwrap_or(pb::DisconnectReason::UnknownReason);
                self.send(signal_response::Message::Leave(leave));
                return Some(End::Removed(reason));
            }
        }
        None
    }

    async fn on_publisher(&mut self, event: DriverEvent) -> Option<End> {
        match event {
            DriverEvent::Answer(answer) => {
                let (id, offer) = self.offers.pop_front().unwrap_or_default();
                let answer = answer::shape_publisher_answer(&offer, &answer);
                let answer = if self.dtx { with_dtx(&answer) } else { answer };
                self.publisher.mid = self.publisher.mid.take().or_else(|| sdp::first_mid(&answer));
                self.send(signal_response::Message::Answer(pb::SessionDescription {
                    r#type: "answer".into(),
                    sdp: answer,
                    id,
                    ..Default::default()
                }));
                self.publisher.described = true;
                self.flush_local_candidates(true).await;
            }
            DriverEvent::FirstMedia(mid) => self.on_first_media(mid).await,
            DriverEvent::Peer(PeerEvent::ChannelData { label, data }) => {
                let data = RoomMsg::Data { sid: self.info.sid.clone(), bytes: data, reliable: label != "_lossy" };
                if !self.room.try_send(data) {
                    tracing::debug!(participant = %self.info.identity, "dropped data: the room is behind");
                }
            }
            DriverEvent::Peer(PeerEvent::LocalCandidate(candidate)) => {
                self.publisher.local_candidates.push(candidate);
                self.flush_local_candidates(true).await;
            }
            DriverEvent::Error(error) => {
                tracing::warn!(participant = %self.info.identity, "closing: publisher negotiation failed ({error})");
                return Some(End::Left(pb::DisconnectReason::StateMismatch));
            }
            DriverEvent::Peer(PeerEvent::Failed(why)) => {
                tracing::warn!(participant = %self.info.identity, "closing: publisher peer failed ({why})");
                return Some(End::Left(pb::DisconnectReason::MediaFailure));
            }
            _ => {}
        }
        None
    }

    async fn on_subscriber(&mut self, event: DriverEvent) -> Option<End> {
        match event {
            DriverEvent::Offer(offer) => {
                self.subscriber.mid = self.subscriber.mid.take().or_else(|| sdp::first_mid(&offer));
                let id = self.next_offer_id;
                self.next_offer_id += 1;
                self.send(signal_response::Message::Offer(pb::SessionDescription {
                    r#type: "offer".into(),
                    sdp: offer,
                    id,
                    ..Default::default()
                }));
                self.subscriber.described = true;
                self.flush_local_candidates(false).await;
            }
            DriverEvent::LocalTracks(tracks) => {
                for (track_sid, mid) in tracks {
                    if self.subscribed.get(&track_sid) != Some(&mid) {
                        self.subscribed.insert(track_sid.clone(), mid.clone());
                        self.room.send(RoomMsg::Subscribed { sid: self.info.sid.clone(), track_sid, mid }).await;
                    }
                }
                self.subscriber_negotiating = false;
                let pending = std::mem::take(&mut self.subscriber_changes);
                self.negotiate_subscriber(pending).await;
            }
            DriverEvent::Peer(PeerEvent::Connected) if !self.active => {
                self.active = true;
                self.room.send(RoomMsg::Active { sid: self.info.sid.clone() }).await;
            }
            DriverEvent::Peer(PeerEvent::LocalCandidate(candidate)) => {
                self.subscriber.local_candidates.push(candidate);
                self.flush_local_candidates(false).await;
            }
            DriverEvent::Error(error) => {
                tracing::warn!(participant = %self.info.identity, "closing: subscriber negotiation failed ({error})");
                return Some(End::Left(pb::DisconnectReason::StateMismatch));
            }
            DriverEvent::Peer(PeerEvent::Failed(why)) => {
                tracing::warn!(participant = %self.info.identity, "closing: subscriber peer failed ({why})");
                return Some(End::Left(pb::DisconnectReason::MediaFailure));
            }
            _ => {}
        }
        None
    }

    /// RTP arrived on a section: the track it carries becomes visible to others, as in LiveKit.
    async fn on_first_media(&mut self, mid: String) {
        let cid = self.publisher_sections.get(&mid).filter(|cid| self.pending_tracks.contains_key(*cid)).cloned();
        let cid = cid.or_else(|| self.pending_tracks.keys().next().cloned());
        let Some(mut track) = cid.and_then(|cid| self.pending_tracks.remove(&cid)) else { return };
        track.mid = mid.clone();
        self.published.insert(mid.clone(), track.sid.clone());
        self.room.send(RoomMsg::TrackReady { sid: self.info.sid.clone(), track: Box::new(track), mid }).await;
    }

    /// One subscriber offer at a time; changes meanwhile go into the next one.
    async fn negotiate_subscriber(&mut self, request: OfferRequest) {
        let empty = request.channels.is_empty() && request.add_audio.is_empty() && request.deactivate.is_empty();
        if self.subscriber_negotiating {
            let pending = &mut self.subscriber_changes;
            pending.channels.extend(request.channels);
            pending.add_audio.extend(request.add_audio);
            pending.deactivate.extend(request.deactivate);
            if pending.add_audio.len() + pending.deactivate.len() > MAX_UNANSWERED_CHANGES {
                self.closing.get_or_insert_with(|| "the client does not answer our subscriber offers".into());
            }
            return;
        }
        if empty {
            return;
        }
        self.subscriber_negotiating = true;
        self.subscriber.handle.send(PeerCommand::CreateOffer(request)).await;
    }

    async fn flush_remote_candidates(&mut self, publisher: bool) {
        let peer = self.peer(publisher);
        if !peer.remote_applied {
            return;
        }
        let queued = std::mem::take(&mut peer.remote_candidates);
        let handle = peer.handle.clone();
        for init in queued {
            handle.send(PeerCommand::AddRemoteCandidate(init)).await;
        }
    }

    /// Trickles our candidates once our description is out; the last is marked final.
    async fn flush_local_candidates(&mut self, publisher: bool) {
        let peer = self.peer(publisher);
        if !peer.described {
            return;
        }
        let mid = peer.mid.clone().unwrap_or_else(|| "0".into());
        let target = if publisher { pb::SignalTarget::Publisher } else { pb::SignalTarget::Subscriber } as i32;
        let queued = std::mem::take(&mut peer.local_candidates);
        let mut trickles = Vec::new();
        for candidate in queued {
            peer.sent_candidates += 1;
            let last = peer.sent_candidates == peer.candidate_count;
            trickles.push(pb::TrickleRequest {
                candidate_init: CandidateInit::new(candidate, &mid).to_json(),
                target,
                r#final: last,
            });
        }
        for trickle in trickles {
            self.send(signal_response::Message::Trickle(trickle));
        }
    }

    fn peer(&mut self, publisher: bool) -> &mut Peer {
        if publisher { &mut self.publisher } else { &mut self.subscriber }
    }

    /// Queues a message for the client; a client that does not take it ends the session.
    fn send(&mut self, message: signal_response::Message) {
        if self.closing.is_none()
            && let Err(stalled) = self.writer.send(signal::encode_response(message))
        {
            self.closing = Some(stalled.to_string());
        }
    }
}

async fn start_peer(config: &DevServerConfig, name: String) -> Result<Peer, String> {
    let (handle, events, task) = peer::spawn(PeerConfig { ice_lite: true }, &config.rtc_ips, name)
        .await
        .map_err(|e| format!("cannot open UDP sockets: {e}"))?;
    Ok(Peer {
        handle,
        events,
        task,
        described: false,
        remote_applied: false,
        local_candidates: Vec::new(),
        remote_candidates: Vec::new(),
        trickled: CandidateCount::default(),
        candidate_count: config.rtc_ips.len(),
        sent_candidates: 0,
        mid: None,
    })
}

/// The participant as the token describes it.
fn participant_info(claims: &Claims) -> pb::ParticipantInfo {
    let kind = match claims.kind.as_str() {
        "agent" => pb::participant_info::Kind::Agent,
        "sip" => pb::participant_info::Kind::Sip,
        "egress" => pb::participant_info::Kind::Egress,
        "ingress" => pb::participant_info::Kind::Ingress,
        _ if claims.video.agent => pb::participant_info::Kind::Agent,
        _ => pb::participant_info::Kind::Standard,
    };
    let sources = claims
        .video
        .can_publish_sources
        .iter()
        .filter_map(|source| match source.as_str() {
            "camera" => Some(pb::TrackSource::Camera as i32),
            "microphone" => Some(pb::TrackSource::Microphone as i32),
            "screen_share" => Some(pb::TrackSource::ScreenShare as i32),
            "screen_share_audio" => Some(pb::TrackSource::ScreenShareAudio as i32),
            _ => None,
        })
        .collect();
    let now = chrono::Utc::now();
    pb::ParticipantInfo {
        sid: ids::sid("PA_"),
        identity: claims.sub.clone(),
        name: claims.name.clone(),
        state: pb::participant_info::State::Joined as i32,
        metadata: claims.metadata.clone(),
        attributes: claims.attributes.clone(),
        joined_at: now.timestamp(),
        joined_at_ms: now.timestamp_millis(),
        kind: kind as i32,
        permission: Some(pb::ParticipantPermission {
            can_subscribe: claims.video.can_subscribe(),
            can_publish: claims.video.can_publish(),
            can_publish_data: claims.video.can_publish_data(),
            can_publish_sources: sources,
            hidden: claims.video.hidden,
            can_update_metadata: claims.video.can_update_own_metadata(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn track_info(request: &pb::AddTrackRequest, sid: String) -> pb::TrackInfo {
    pb::TrackInfo {
        sid,
        r#type: request.r#type,
        name: request.name.clone(),
        muted: request.muted,
        source: request.source,
        mime_type: "audio/opus".into(),
        disable_red: true,
        stream: request.stream.clone(),
        audio_features: request.audio_features.clone(),
        ..Default::default()
    }
}

/// LiveKit adds `usedtx=1` to Opus in publisher answers unless the track opted out, so browsers
/// stop sending during silence; we do the same so clients are tested against it.
fn with_dtx(answer: &str) -> String {
    let opus_pt = answer.lines().find_map(|line| {
        let rest = line.strip_prefix("a=rtpmap:")?;
        let (pt, codec) = rest.split_once(' ')?;
        codec.to_ascii_lowercase().starts_with("opus/").then(|| pt.to_owned())
    });
    let Some(pt) = opus_pt else { return answer.to_owned() };
    let prefix = format!("a=fmtp:{pt} ");
    answer
        .split("\r\n")
        .map(|line| {
            if line.starts_with(&prefix) && !line.contains("usedtx") {
                format!("{line};usedtx=1")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtx_is_added_to_the_opus_fmtp_only() {
        let answer =
            "v=0\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=fmtp:96 apt=95\r\n";
        let munged = with_dtx(answer);
        assert!(munged.contains("a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n"));
        assert!(munged.contains("a=fmtp:96 apt=95\r\n"));
        assert_eq!(with_dtx(&munged), munged, "added once");
    }
}
