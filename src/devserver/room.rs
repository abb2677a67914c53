//! One room of the dev server: a task that owns who is in the room, what they publish and who
//! receives it, and sets up media and data forwarding between participants' peers. Participants'
//! sessions talk to it over bounded channels, so a broken session can only end itself: the room
//! never waits for a session, and one whose queue is full is removed as a client that stopped
//! reading. The server API reaches it the same way (`room_admin.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use livekit_protocol as pb;
use tokio::sync::{mpsc, oneshot};

use super::data_rules::{self, Sender};
use super::dispatch::{DispatchMsg, Dispatcher};
use super::ids;
use super::limits::{Limits, ROOM_QUEUE};
use crate::livekit::data;
use crate::livekit::peer::{MediaSink, PeerCommand, PeerHandle};

#[path = "room_admin.rs"]
mod admin;
pub(super) use admin::Admin;

/// How a room reaches one participant's session.
#[derive(Debug, Clone)]
pub(super) struct SessionLink {
    pub tx: mpsc::Sender<ToSession>,
    pub publisher: PeerHandle,
    pub subscriber: PeerHandle,
}

#[derive(Debug)]
pub(super) enum ToSession {
    Updates(Vec<pb::ParticipantInfo>),
    Subscribe {
        track: Box<pb::TrackInfo>,
        publisher_sid: String,
    },
    Unsubscribe {
        track_sid: String,
    },
    /// A published track got its first subscriber (sent once per track, as LiveKit does).
    TrackSubscribed {
        track_sid: String,
    },
    /// The server removes the participant (duplicate identity, room closed...).
    Leave(pb::LeaveRequest),
}

#[derive(Debug)]
pub(super) enum RoomMsg {
    Join {
        info: Box<pb::ParticipantInfo>,
        options: MemberOptions,
        link: SessionLink,
        /// The room's state, or why the join is refused.
        reply: oneshot::Sender<Result<JoinReply, String>>,
    },
    Leave {
        sid: String,
        reason: pb::DisconnectReason,
    },
    Active {
        sid: String,
    },
    /// Media arrived on a published track, carried by section `mid` of the publisher's peer.
    TrackReady {
        sid: String,
        track: Box<pb::TrackInfo>,
        mid: String,
    },
    TrackRemoved {
        sid: String,
        track_sid: String,
    },
    /// The subscriber negotiated section `mid` for `track_sid`: media can be forwarded to it.
    Subscribed {
        sid: String,
        track_sid: String,
        mid: String,
    },
    Update {
        sid: String,
        name: String,
        metadata: String,
        attributes: HashMap<String, String>,
    },
    Mute {
        sid: String,
        track_sid: String,
        muted: bool,
    },
    Data {
        sid: String,
        bytes: Vec<u8>,
        reliable: bool,
    },
    Subscription {
        sid: String,
        track_sids: Vec<String>,
        subscribe: bool,
    },
    /// A server API request.
    Admin(Admin),
}

/// What a participant's join asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct MemberOptions {
    pub auto_subscribe: bool,
    /// Whether its SDK understands `track_subscribed` (LiveKit's Rust SDK before protocol 10
    /// fails on it).
    pub track_subscribed_event: bool,
}

#[derive(Debug)]
pub(super) struct JoinReply {
    pub room: pb::Room,
    pub others: Vec<pb::ParticipantInfo>,
}

#[derive(Debug, Clone)]
pub(super) struct RoomHandle {
    tx: mpsc::Sender<RoomMsg>,
    /// The room's sid: rooms come and go under one name, and dispatches belong to one of them.
    pub sid: String,
}

impl RoomHandle {
    /// Waits while the room is busy, so a flooding session slows itself down, not the room.
    pub async fn send(&self, message: RoomMsg) -> bool {
        self.tx.send(message).await.is_ok()
    }

    /// For data: dropped when the room is busy rather than queued without bound.
    pub fn try_send(&self, message: RoomMsg) -> bool {
        self.tx.try_send(message).is_ok()
    }
}

/// Rooms by name, created on first join.
#[derive(Debug)]
pub(super) struct Rooms {
    rooms: Mutex<HashMap<String, RoomHandle>>,
    dispatcher: Dispatcher,
    limits: Limits,
}

impl Rooms {
    pub fn new(dispatcher: Dispatcher, limits: Limits) -> Self {
        Self { rooms: Mutex::default(), dispatcher, limits }
    }

    /// The open room called `name`.
    pub fn get(&self, name: &str) -> Option<RoomHandle> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.get(name).filter(|h| !h.tx.is_closed()).cloned()
    }

    /// The open rooms, or those of them named in `names` when it is not empty.
    pub fn open(&self, names: &[String]) -> Vec<RoomHandle> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms
            .iter()
            .filter(|(name, handle)| !handle.tx.is_closed() && (names.is_empty() || names.contains(name)))
            .map(|(_, handle)| handle.clone())
            .collect()
    }

    /// Takes the room called `name` out of the registry, so the next join opens a new one.
    pub fn take(&self, name: &str) -> Option<RoomHandle> {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.remove(name).filter(|h| !h.tx.is_closed())
    }

    /// The room, created with `config` (the creating token's roomConfig) when new; refused when
    /// as many rooms as allowed are open.
    pub fn get_or_create(
        self: &Arc<Self>,
        name: &str,
        config: Option<pb::RoomConfiguration>,
    ) -> Result<RoomHandle, String> {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = rooms.get(name).filter(|h| !h.tx.is_closed()) {
            return Ok(handle.clone());
        }
        rooms.retain(|_, handle| !handle.tx.is_closed());
        if rooms.len() >= self.limits.max_rooms {
            return Err(format!("the dev server has its maximum of {} rooms open", self.limits.max_rooms));
        }
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let room = RoomState::new(name, config.unwrap_or_default(), self.dispatcher.clone(), &self.limits);
        let handle = RoomHandle { tx, sid: room.info.sid.clone() };
        rooms.insert(name.to_owned(), handle.clone());
        tracing::info!(room = name, sid = %room.info.sid, "room created");
        tokio::spawn(run(room, rx, self.clone()));
        Ok(handle)
    }

    /// Removes the room if it is still the registered one and nothing is waiting in its queue
    /// (a join may have arrived while it decided to close).
    fn remove_if_idle(&self, name: &str, rx: &mpsc::Receiver<RoomMsg>) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if !rx.is_empty() {
            return false;
        }
        rooms.remove(name);
        true
    }
}

struct PublishedTrack {
    info: pb::TrackInfo,
    /// The section carrying it on the publisher's peer.
    mid: String,
    /// Subscribers and, once negotiated, the section carrying it on their peer.
    subscribers: HashMap<String, Option<String>>,
    /// The publisher was told it has a subscriber (`track_subscribed`).
    announced: bool,
}

struct Member {
    info: pb::ParticipantInfo,
    link: SessionLink,
    options: MemberOptions,
    last_sequence: u32,
    tracks: HashMap<String, PublishedTrack>,
}

impl Member {
    fn is_agent(&self) -> bool {
        self.info.kind == pb::participant_info::Kind::Agent as i32
    }

    fn can_subscribe(&self) -> bool {
        self.info.permission.as_ref().is_some_and(|p| p.can_subscribe)
    }

    fn hidden(&self) -> bool {
        self.info.permission.as_ref().is_some_and(|p| p.hidden)
    }

    fn is_active(&self) -> bool {
        self.info.state == pb::participant_info::State::Active as i32
    }
}

struct RoomState {
    info: pb::Room,
    departure_timeout: Duration,
    members: HashMap<String, Member>,
    /// Explicit dispatches from the creating token; none means the default (unnamed) agent.
    agents: Vec<pb::RoomAgentDispatch>,
    dispatcher: Dispatcher,
    /// Jobs are created once, when the first person (not an agent) joins.
    dispatched: bool,
    /// Members whose session queue was full: removed once the current message is handled.
    slow: Vec<String>,
    /// The dev server's own bound on members, agents included.
    member_limit: usize,
    /// `DeleteRoom` was asked: the room is ending.
    deletion: Option<admin::Deletion>,
}

impl RoomState {
    fn new(name: &str, config: pb::RoomConfiguration, dispatcher: Dispatcher, limits: &Limits) -> Self {
        let now = chrono::Utc::now();
        let departure = if config.departure_timeout > 0 { config.departure_timeout } else { 20 };
        let info = pb::Room {
            sid: ids::sid("RM_"),
            name: name.to_owned(),
            empty_timeout: if config.empty_timeout > 0 { config.empty_timeout } else { 300 },
            departure_timeout: departure,
            max_participants: config.max_participants,
            creation_time: now.timestamp(),
            creation_time_ms: now.timestamp_millis(),
            metadata: config.metadata.clone(),
            ..Default::default()
        };
        let departure_timeout = Duration::from_secs(u64::from(departure));
        Self {
            info,
            departure_timeout,
            members: HashMap::new(),
            agents: config.agents,
            dispatcher,
            dispatched: false,
            slow: Vec::new(),
            member_limit: usize::try_from(limits.max_participants_per_room).unwrap_or(usize::MAX),
            deletion: None,
        }
    }

    /// People keep a room open; agents (and recorders) do not, as in LiveKit.
    fn has_people(&self) -> bool {
        self.members.values().any(|m| !m.is_agent())
    }

    /// The room ends: whoever is still in it is removed, for `reason`, and its jobs terminated.
    fn close(&mut self, reason: pb::DisconnectReason) {
        for member in self.members.values() {
            let leave = pb::LeaveRequest { reason: reason as i32, ..Default::default() };
            let _ = member.link.tx.try_send(ToSession::Leave(leave));
        }
        self.members.clear();
        self.dispatcher.send(DispatchMsg::RoomClosed { sid: self.info.sid.clone() });
    }

    fn handle(&mut self, message: RoomMsg) {
        self.apply(message);
        while let Some(sid) = self.slow.pop() {
            if let Some(member) = self.members.get(&sid) {
                tracing::warn!(room = %self.info.name, participant = %member.info.identity, "closing: the participant does not keep up with its room's events");
                self.leave(&sid, pb::DisconnectReason::SignalClose);
            }
        }
    }

    fn apply(&mut self, message: RoomMsg) {
        match message {
            RoomMsg::Join { info, options, link, reply } => self.join(*info, options, link, reply),
            RoomMsg::Leave { sid, reason } => self.leave(&sid, reason),
            RoomMsg::Active { sid } => {
                if let Some(member) = self.members.get_mut(&sid) {
                    member.info.state = pb::participant_info::State::Active as i32;
                    self.changed(&sid);
                    let subscribed: Vec<(String, String)> = self
                        .members
                        .values()
                        .flat_map(|m| {
                            m.tracks
                                .iter()
                                .filter(|(_, t)| t.subscribers.get(&sid).is_some_and(Option::is_some))
                                .map(|(track_sid, _)| (m.info.sid.clone(), track_sid.clone()))
                        })
                        .collect();
                    for (publisher_sid, track_sid) in subscribed {
                        self.announce_subscribed(&publisher_sid, &track_sid);
                    }
                }
            }
            RoomMsg::TrackReady { sid, track, mid } => self.track_ready(&sid, *track, mid),
            RoomMsg::TrackRemoved { sid, track_sid } => self.track_removed(&sid, &track_sid),
            RoomMsg::Subscribed { sid, track_sid, mid } => {
                let publisher = self.members.values_mut().find(|m| m.tracks.contains_key(&track_sid));
                if let Some(publisher) = publisher {
                    let track = publisher.tracks.get_mut(&track_sid).expect("found by key just above");
                    track.subscribers.insert(sid, Some(mid));
                    let publisher_sid = publisher.info.sid.clone();
                    self.update_routes(&publisher_sid, &track_sid);
                    self.announce_subscribed(&publisher_sid, &track_sid);
                }
            }
            RoomMsg::Update { sid, name, metadata, attributes } => self.update(&sid, name, metadata, attributes),
            RoomMsg::Mute { sid, track_sid, muted } => {
                let Some(member) = self.members.get_mut(&sid) else { return };
                for track in member.info.tracks.iter_mut().filter(|t| t.sid == track_sid) {
                    track.muted = muted;
                }
                self.changed(&sid);
            }
            RoomMsg::Data { sid, bytes, reliable } => self.data(&sid, &bytes, reliable),
            RoomMsg::Subscription { sid, track_sids, subscribe } => {
                for track_sid in track_sids {
                    if subscribe {
                        self.subscribe(&sid, &track_sid);
                    } else {
                        self.unsubscribe(&sid, &track_sid);
                    }
                }
            }
            RoomMsg::Admin(request) => self.admin(request, Instant::now()),
        }
    }

    fn join(
        &mut self,
        info: pb::ParticipantInfo,
        options: MemberOptions,
        link: SessionLink,
        reply: oneshot::Sender<Result<JoinReply, String>>,
    ) {
        let duplicate = self.members.values().find(|m| m.info.identity == info.identity).map(|m| m.info.sid.clone());
        let refusal = match self.deletion {
            Some(_) => Some("the room has been deleted".to_owned()),
            None => self.full(&info, duplicate.as_deref()),
        };
        if let Some(why) = refusal {
            tracing::warn!(room = %self.info.name, participant = %info.identity, "join refused: {why}");
            let _ = reply.send(Err(why));
            return;
        }
        if let Some(old) = duplicate {
            if let Some(member) = self.members.get(&old) {
                let leave =
                    pb::LeaveRequest { reason: pb::DisconnectReason::DuplicateIdentity as i32, ..Default::default() };
                let _ = member.link.tx.try_send(ToSession::Leave(leave));
            }
            self.leave(&old, pb::DisconnectReason::DuplicateIdentity);
        }
        let others: Vec<_> = self.members.values().filter(|m| !m.hidden()).map(|m| m.info.clone()).collect();
        let sid = info.sid.clone();
        let mut room = self.info.clone();
        room.num_participants = u32::try_from(self.members.len() + 1).unwrap_or(u32::MAX);
        if reply.send(Ok(JoinReply { room, others })).is_err() {
            return;
        }
        tracing::info!(room = %self.info.name, participant = %info.identity, %sid, "participant joined");
        let auto_subscribe = options.auto_subscribe;
        let member = Member { info, link, options, last_sequence: 0, tracks: HashMap::new() };
        if !self.dispatched && !member.is_agent() {
            self.dispatched = true;
            let agents = std::mem::take(&mut self.agents);
            self.dispatcher.send(DispatchMsg::RoomCreated { room: Box::new(self.info.clone()), agents });
        }
        self.members.insert(sid.clone(), member);
        self.changed(&sid);
        let existing: Vec<(String, String)> = self
            .members
            .values()
            .filter(|m| m.info.sid != sid)
            .flat_map(|m| m.tracks.keys().map(|t| (m.info.sid.clone(), t.clone())))
            .collect();
        if auto_subscribe {
            for (_, track_sid) in existing {
                self.subscribe(&sid, &track_sid);
            }
        }
    }

    /// Why the room cannot take `joining` (who replaces `duplicate`, if set): LiveKit's
    /// `roomConfig.maxParticipants` counts people, not agents; our own bound counts everyone.
    fn full(&self, joining: &pb::ParticipantInfo, duplicate: Option<&str>) -> Option<String> {
        let staying = || self.members.values().filter(|m| Some(m.info.sid.as_str()) != duplicate);
        let agent = joining.kind == pb::participant_info::Kind::Agent as i32;
        let people = staying().filter(|m| !m.is_agent()).count();
        let configured = self.info.max_participants as usize;
        if !agent && configured > 0 && people >= configured {
            return Some(format!("the room is full: its roomConfig allows {configured} participants"));
        }
        (staying().count() >= self.member_limit)
            .then(|| format!("the room is full: the dev server allows {} participants in a room", self.member_limit))
    }

    fn leave(&mut self, sid: &str, reason: pb::DisconnectReason) {
        let Some(mut member) = self.members.remove(sid) else { return };
        tracing::info!(room = %self.info.name, participant = %member.info.identity, reason = reason.as_str_name(), "participant left");
        for track_sid in member.tracks.keys() {
            self.remove_track_everywhere(track_sid);
        }
        for publisher in self.members.values_mut() {
            for track in publisher.tracks.values_mut() {
                track.subscribers.remove(sid);
            }
        }
        let publishers: Vec<(String, String)> =
            self.members.values().flat_map(|m| m.tracks.keys().map(|t| (m.info.sid.clone(), t.clone()))).collect();
        for (publisher, track) in publishers {
            self.update_routes(&publisher, &track);
        }
        member.info.state = pb::participant_info::State::Disconnected as i32;
        member.info.disconnect_reason = reason as i32;
        member.info.version += 1;
        if !member.hidden() {
            self.broadcast(&[member.info], None);
        }
    }

    /// Applies a metadata update as LiveKit does: empty name and metadata are left alone, and an
    /// attribute set to "" is removed.
    fn update(&mut self, sid: &str, name: String, metadata: String, attributes: HashMap<String, String>) {
        let Some(member) = self.members.get_mut(sid) else { return };
        if !name.is_empty() {
            member.info.name = name;
        }
        if !metadata.is_empty() {
            member.info.metadata = metadata;
        }
        for (key, value) in attributes {
            if value.is_empty() {
                member.info.attributes.remove(&key);
            } else {
                member.info.attributes.insert(key, value);
            }
        }
        self.changed(sid);
    }

    fn track_ready(&mut self, sid: &str, track: pb::TrackInfo, mid: String) {
        let Some(member) = self.members.get_mut(sid) else { return };
        let track_sid = track.sid.clone();
        member.info.tracks.retain(|t| t.sid != track_sid);
        member.info.tracks.push(track.clone());
        member.info.is_publisher = true;
        member.tracks.insert(
            track_sid.clone(),
            PublishedTrack { info: track, mid, subscribers: HashMap::new(), announced: false },
        );
        self.changed(sid);
        let subscribers: Vec<String> = self
            .members
            .values()
            .filter(|m| m.info.sid != sid && m.options.auto_subscribe && m.can_subscribe())
            .map(|m| m.info.sid.clone())
            .collect();
        for subscriber in subscribers {
            self.subscribe(&subscriber, &track_sid);
        }
    }

    fn track_removed(&mut self, sid: &str, track_sid: &str) {
        let Some(member) = self.members.get_mut(sid) else { return };
        member.info.tracks.retain(|t| t.sid != track_sid);
        if member.tracks.remove(track_sid).is_some() {
            self.remove_track_everywhere(track_sid);
            self.changed(sid);
        }
    }

    /// Tells every subscriber of a track that it is gone.
    fn remove_track_everywhere(&mut self, track_sid: &str) {
        for member in self.members.values() {
            if member.link.tx.try_send(ToSession::Unsubscribe { track_sid: track_sid.to_owned() }).is_err() {
                self.slow.push(member.info.sid.clone());
            }
        }
    }

    /// Tells the publisher, once, that its track has a subscriber whose connection is up and
    /// whose section is negotiated: media can flow. Hidden subscribers do not count, as in
    /// LiveKit; agents (LiveKit Agents) wait for this before they speak.
    fn announce_subscribed(&mut self, publisher_sid: &str, track_sid: &str) {
        let Some(publisher) = self.members.get(publisher_sid) else { return };
        let Some(track) = publisher.tracks.get(track_sid) else { return };
        let receiving = track
            .subscribers
            .iter()
            .any(|(sid, mid)| mid.is_some() && self.members.get(sid).is_some_and(|m| m.is_active() && !m.hidden()));
        if track.announced || !receiving {
            return;
        }
        let tell = publisher.options.track_subscribed_event;
        let tx = publisher.link.tx.clone();
        if let Some(track) = self.members.get_mut(publisher_sid).and_then(|p| p.tracks.get_mut(track_sid)) {
            track.announced = true;
        }
        if tell && tx.try_send(ToSession::TrackSubscribed { track_sid: track_sid.to_owned() }).is_err() {
            self.slow.push(publisher_sid.to_owned());
        }
    }

    fn subscribe(&mut self, subscriber_sid: &str, track_sid: &str) {
        let Some(subscriber) = self.members.get(subscriber_sid).filter(|m| m.can_subscribe()) else { return };
        let link = subscriber.link.tx.clone();
        let Some(publisher) =
            self.members.values_mut().find(|m| m.tracks.contains_key(track_sid) && m.info.sid != subscriber_sid)
        else {
            return;
        };
        let track = publisher.tracks.get_mut(track_sid).expect("found by key just above");
        if track.subscribers.contains_key(subscriber_sid) {
            return;
        }
        track.subscribers.insert(subscriber_sid.to_owned(), None);
        let subscribe =
            ToSession::Subscribe { track: Box::new(track.info.clone()), publisher_sid: publisher.info.sid.clone() };
        if link.try_send(subscribe).is_err() {
            self.slow.push(subscriber_sid.to_owned());
        }
    }

    fn unsubscribe(&mut self, subscriber_sid: &str, track_sid: &str) {
        let Some(publisher) = self.members.values_mut().find(|m| m.tracks.contains_key(track_sid)) else { return };
        let publisher_sid = publisher.info.sid.clone();
        let track = publisher.tracks.get_mut(track_sid).expect("found by key just above");
        if track.subscribers.remove(subscriber_sid).is_none() {
            return;
        }
        if let Some(subscriber) = self.members.get(subscriber_sid)
            && subscriber.link.tx.try_send(ToSession::Unsubscribe { track_sid: track_sid.to_owned() }).is_err()
        {
            self.slow.push(subscriber_sid.to_owned());
        }
        self.update_routes(&publisher_sid, track_sid);
    }

    /// Points the publisher's section at every subscriber section negotiated so far.
    fn update_routes(&self, publisher_sid: &str, track_sid: &str) {
        let Some(publisher) = self.members.get(publisher_sid) else { return };
        let Some(track) = publisher.tracks.get(track_sid) else { return };
        let sinks: Vec<MediaSink> = track
            .subscribers
            .iter()
            .filter_map(|(sid, mid)| {
                Some(MediaSink::Peer { peer: self.members.get(sid)?.link.subscriber.clone(), mid: mid.clone()? })
            })
            .collect();
        publisher.link.publisher.try_send(PeerCommand::Route { mid: track.mid.clone(), sinks });
    }

    fn data(&mut self, sid: &str, bytes: &[u8], reliable: bool) {
        let Some(member) = self.members.get_mut(sid) else { return };
        let packet = match data::decode(bytes) {
            Ok(packet) => packet,
            Err(e) => {
                tracing::debug!(participant = %member.info.identity, "dropped undecodable data: {e}");
                return;
            }
        };
        let can_publish_data = member.info.permission.as_ref().is_some_and(|p| p.can_publish_data);
        let sender =
            Sender { sid, identity: &member.info.identity.clone(), is_agent: member.is_agent(), can_publish_data };
        let packet = match data_rules::admit(&sender, packet, reliable, &mut member.last_sequence) {
            Ok(packet) => packet,
            Err(drop) => {
                tracing::debug!(participant = %member.info.identity, "dropped data: {drop:?}");
                return;
            }
        };
        let destinations: HashSet<&str> = packet.destination_identities.iter().map(String::as_str).collect();
        let bytes = data::encode(&packet);
        let label = if reliable { "_reliable" } else { "_lossy" };
        // Straight to each receiver's peer, whose queues are bounded: a receiver that is behind
        // loses data, as it would lose media, and one that stops reading is closed by its peer.
        for member in self.members.values().filter(|m| m.info.sid != sid) {
            if destinations.is_empty() || destinations.contains(member.info.identity.as_str()) {
                let send = PeerCommand::SendData { label: label.into(), data: bytes.clone() };
                if !member.link.subscriber.try_send(send) {
                    tracing::debug!(participant = %member.info.identity, "dropped data: its connection is behind");
                }
            }
        }
    }

    /// A participant's info changed: bump its version and tell everyone, itself included.
    fn changed(&mut self, sid: &str) {
        let Some(member) = self.members.get_mut(sid) else { return };
        member.info.version += 1;
        let info = member.info.clone();
        let hidden = member.hidden();
        self.broadcast(&[info], hidden.then_some(sid));
    }

    /// Sends updates to every member, or only to `only` (a hidden participant sees itself).
    fn broadcast(&mut self, infos: &[pb::ParticipantInfo], only: Option<&str>) {
        for member in self.members.values().filter(|m| only.is_none_or(|sid| m.info.sid == sid)) {
            if member.link.tx.try_send(ToSession::Updates(infos.to_vec())).is_err() {
                self.slow.push(member.info.sid.clone());
            }
        }
    }
}

async fn run(mut room: RoomState, mut rx: mpsc::Receiver<RoomMsg>, rooms: Arc<Rooms>) {
    let empty_timeout = Duration::from_secs(u64::from(room.info.empty_timeout));
    loop {
        if let Some(deadline) = room.deletion.as_ref().map(admin::Deletion::deadline) {
            if room.deleted(Instant::now()) {
                room.finish_deletion();
                break;
            }
            tokio::select! {
                message = rx.recv() => match message {
                    Some(message) => room.handle(message),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline.into()) => {}
            }
            continue;
        }
        let wait = match (room.has_people(), room.dispatched) {
            (true, _) => Duration::MAX,
            (false, true) => room.departure_timeout,
            (false, false) => empty_timeout,
        };
        tokio::select! {
            message = rx.recv() => match message {
                Some(message) => room.handle(message),
                None => break,
            },
            () = tokio::time::sleep(wait), if wait != Duration::MAX => {
                if rooms.remove_if_idle(&room.info.name, &rx) {
                    room.close(pb::DisconnectReason::RoomClosed);
                    break;
                }
            }
        }
    }
    tracing::info!(room = %room.info.name, "room closed");
}

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
