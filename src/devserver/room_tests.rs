//! The room's decisions, driven message by message without signalling: when a publisher hears
//! `track_subscribed`, who may join, and what happens to a member that stops taking events.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::config::Secret;
use crate::devserver::DevServerConfig;
use crate::livekit::peer::{self, PeerConfig};

struct Probe {
    sid: String,
    rx: mpsc::Receiver<ToSession>,
    _peers: Vec<tokio::task::JoinHandle<()>>,
}

impl Probe {
    fn drain(&mut self) -> Vec<ToSession> {
        std::iter::from_fn(|| self.rx.try_recv().ok()).collect()
    }

    fn announced(&mut self) -> Vec<String> {
        self.drain()
            .into_iter()
            .filter_map(|m| match m {
                ToSession::TrackSubscribed { track_sid } => Some(track_sid),
                _ => None,
            })
            .collect()
    }
}

fn room(limits: &Limits, config: pb::RoomConfiguration) -> RoomState {
    let config_for_dispatch =
        DevServerConfig::new("devkey".into(), Secret::new("secret"), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    RoomState::new("r", config, Dispatcher::start(Arc::new(config_for_dispatch)), limits)
}

fn info(identity: &str, kind: pb::participant_info::Kind, hidden: bool) -> pb::ParticipantInfo {
    pb::ParticipantInfo {
        sid: format!("PA_{identity}"),
        identity: identity.into(),
        kind: kind as i32,
        permission: Some(pb::ParticipantPermission { can_subscribe: true, hidden, ..Default::default() }),
        ..Default::default()
    }
}

/// Joins `info` with a session queue of `queue` events; `Err` carries the refusal.
async fn join(room: &mut RoomState, info: pb::ParticipantInfo, old_rust: bool, queue: usize) -> Result<Probe, String> {
    let ips = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let (publisher, _, publisher_task) =
        peer::spawn(PeerConfig { ice_lite: true }, &ips, "p".into()).await.expect("UDP on loopback");
    let (subscriber, _, subscriber_task) =
        peer::spawn(PeerConfig { ice_lite: true }, &ips, "s".into()).await.expect("UDP on loopback");
    let (tx, rx) = mpsc::channel(queue);
    let (reply, answer) = oneshot::channel();
    let sid = info.sid.clone();
    let options = MemberOptions { auto_subscribe: true, track_subscribed_event: !old_rust };
    room.handle(RoomMsg::Join {
        info: Box::new(info),
        options,
        link: SessionLink { tx, publisher, subscriber },
        reply,
    });
    answer.await.expect("the room answers the join")?;
    Ok(Probe { sid, rx, _peers: vec![publisher_task, subscriber_task] })
}

fn publish(room: &mut RoomState, publisher: &Probe, track_sid: &str) {
    let track = pb::TrackInfo { sid: track_sid.into(), ..Default::default() };
    room.handle(RoomMsg::TrackReady { sid: publisher.sid.clone(), track: Box::new(track), mid: "0".into() });
}

/// The subscriber's connection comes up and its section for the track is negotiated.
fn receive(room: &mut RoomState, subscriber: &Probe, track_sid: &str) {
    room.handle(RoomMsg::Active { sid: subscriber.sid.clone() });
    let subscribed = RoomMsg::Subscribed { sid: subscriber.sid.clone(), track_sid: track_sid.into(), mid: "1".into() };
    room.handle(subscribed);
}

const STANDARD: pb::participant_info::Kind = pb::participant_info::Kind::Standard;

#[tokio::test]
async fn the_publisher_hears_once_that_its_track_has_a_subscriber() {
    let mut room = room(&Limits::default(), pb::RoomConfiguration::default());
    let mut caller = join(&mut room, info("caller", STANDARD, false), false, 64).await.expect("joins");
    let mut agent = join(&mut room, info("agent", STANDARD, false), false, 64).await.expect("joins");
    publish(&mut room, &caller, "TR_1");
    assert!(agent.drain().iter().any(|m| matches!(m, ToSession::Subscribe { track, .. } if track.sid == "TR_1")));

    room.handle(RoomMsg::Subscribed { sid: agent.sid.clone(), track_sid: "TR_1".into(), mid: "1".into() });
    assert!(caller.announced().is_empty(), "not before the subscriber's connection is up");
    room.handle(RoomMsg::Active { sid: agent.sid.clone() });
    assert_eq!(caller.announced(), ["TR_1"]);

    let listener = join(&mut room, info("listener", STANDARD, false), false, 64).await.expect("joins");
    receive(&mut room, &listener, "TR_1");
    assert!(caller.announced().is_empty(), "once per track");
}

#[tokio::test]
async fn hidden_subscribers_and_old_rust_sdks_are_not_told() {
    let mut room = room(&Limits::default(), pb::RoomConfiguration::default());
    let mut caller = join(&mut room, info("caller", STANDARD, false), false, 64).await.expect("joins");
    let recorder = join(&mut room, info("recorder", STANDARD, true), false, 64).await.expect("joins");
    publish(&mut room, &caller, "TR_1");
    receive(&mut room, &recorder, "TR_1");
    assert!(caller.announced().is_empty(), "a hidden subscriber does not count, as in LiveKit");

    let mut old = join(&mut room, info("old", STANDARD, false), true, 64).await.expect("joins");
    publish(&mut room, &old, "TR_2");
    let agent = join(&mut room, info("agent", STANDARD, false), false, 64).await.expect("joins");
    receive(&mut room, &agent, "TR_2");
    receive(&mut room, &agent, "TR_1");
    assert!(old.announced().is_empty(), "LiveKit's Rust SDK before protocol 10 cannot decode it");
    assert_eq!(caller.announced(), ["TR_1"]);
}

#[tokio::test]
async fn a_member_that_stops_taking_events_is_removed_and_the_others_are_told() {
    let mut room = room(&Limits::default(), pb::RoomConfiguration::default());
    let mut chatty = join(&mut room, info("chatty", STANDARD, false), false, 4096).await.expect("joins");
    let stalled = join(&mut room, info("stalled", STANDARD, false), false, 8).await.expect("joins");
    for round in 0..32 {
        let update = RoomMsg::Update {
            sid: chatty.sid.clone(),
            name: String::new(),
            metadata: format!("round {round}"),
            attributes: HashMap::new(),
        };
        room.handle(update);
    }
    assert!(!room.members.contains_key(&stalled.sid), "removed once its queue was full");
    let left = chatty.drain().into_iter().any(|m| match m {
        ToSession::Updates(infos) => {
            infos.iter().any(|p| p.identity == "stalled" && p.state == pb::participant_info::State::Disconnected as i32)
        }
        _ => false,
    });
    assert!(left, "the others see it leave");
    drop(stalled);
}

#[tokio::test]
async fn a_full_room_refuses_joins_and_room_config_counts_people_only() {
    let limits = Limits { max_participants_per_room: 2, ..Limits::default() };
    let mut room = room(&limits, pb::RoomConfiguration::default());
    let _a = join(&mut room, info("a", STANDARD, false), false, 64).await.expect("joins");
    let _b = join(&mut room, info("b", STANDARD, false), false, 64).await.expect("joins");
    let refused = join(&mut room, info("c", STANDARD, false), false, 64).await.err();
    assert!(refused.is_some_and(|why| why.contains("allows 2 participants")));
    let again = join(&mut room, info("b", STANDARD, false), false, 64).await;
    assert!(again.is_ok(), "a participant rejoining under its identity replaces itself");

    let config = pb::RoomConfiguration { max_participants: 1, ..Default::default() };
    let mut room = self::room(&Limits::default(), config);
    let _caller = join(&mut room, info("caller", STANDARD, false), false, 64).await.expect("joins");
    let agent = info("agent", pb::participant_info::Kind::Agent, false);
    assert!(join(&mut room, agent, false, 64).await.is_ok(), "agents do not count, as in LiveKit");
    let refused = join(&mut room, info("second", STANDARD, false), false, 64).await.err();
    assert!(refused.is_some_and(|why| why.contains("roomConfig allows 1")));
}

const AGENT: pb::participant_info::Kind = pb::participant_info::Kind::Agent;

/// The leave a member was sent, if any.
fn leave_of(messages: &[ToSession]) -> Option<pb::DisconnectReason> {
    messages.iter().find_map(|m| match m {
        ToSession::Leave(leave) => pb::DisconnectReason::try_from(leave.reason).ok(),
        _ => None,
    })
}

/// The latest info `probe` was sent about `identity`.
fn seen(messages: &[ToSession], identity: &str) -> Option<pb::ParticipantInfo> {
    messages
        .iter()
        .filter_map(|m| match m {
            ToSession::Updates(infos) => infos.iter().rev().find(|p| p.identity == identity).cloned(),
            _ => None,
        })
        .next_back()
}

fn ask<T>(room: &mut RoomState, request: impl FnOnce(oneshot::Sender<T>) -> Admin) -> oneshot::Receiver<T> {
    let (reply, answer) = oneshot::channel();
    room.handle(RoomMsg::Admin(request(reply)));
    answer
}

#[tokio::test]
async fn removing_a_participant_tells_it_why_and_the_others_that_it_left() {
    let mut room = room(&Limits::default(), pb::RoomConfiguration::default());
    let mut caller = join(&mut room, info("caller", STANDARD, false), false, 64).await.expect("joins");
    let mut agent = join(&mut room, info("agent", AGENT, false), false, 64).await.expect("joins");
    caller.drain();
    let removed = ask(&mut room, |reply| Admin::Remove { identity: "caller".into(), reply });
    assert_eq!(removed.await, Ok(true));
    assert_eq!(leave_of(&caller.drain()), Some(pb::DisconnectReason::ParticipantRemoved));
    let left = seen(&agent.drain(), "caller").expect("the agent is told");
    assert_eq!(left.state, pb::participant_info::State::Disconnected as i32);
    assert_eq!(left.disconnect_reason, pb::DisconnectReason::ParticipantRemoved as i32);
    let again = ask(&mut room, |reply| Admin::Remove { identity: "caller".into(), reply });
    assert_eq!(again.await, Ok(false), "no longer there");
}

#[tokio::test]
async fn an_update_from_the_api_reaches_everyone_and_empty_values_keep_or_remove() {
    let mut room = room(&Limits::default(), pb::RoomConfiguration::default());
    let mut caller = join(&mut room, info("caller", STANDARD, false), false, 64).await.expect("joins");
    let mut agent = join(&mut room, info("agent", AGENT, false), false, 64).await.expect("joins");
    let update = |name: &str, metadata: &str, attributes: &[(&str, &str)]| pb::UpdateParticipantRequest {
        room: "r".into(),
        identity: "caller".into(),
        name: name.into(),
        metadata: metadata.into(),
        attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        permission: None,
    };
    let first = update("Priya", "{\"vip\":true}", &[("lead", "hot"), ("stage", "new")]);
    let answered = ask(&mut room, |reply| Admin::Update { update: first, reply }).await.expect("answered");
    assert_eq!(answered.as_ref().map(|p| p.name.as_str()), Some("Priya"));
    let second = update("", "", &[("stage", "")]);
    let answered = ask(&mut room, |reply| Admin::Update { update: second, reply }).await.expect("answered");
    let expected: HashMap<String, String> = [("lead".to_owned(), "hot".to_owned())].into();
    assert_eq!(answered.as_ref().map(|p| (p.name.as_str(), p.metadata.as_str())), Some(("Priya", "{\"vip\":true}")));
    assert_eq!(answered.map(|p| p.attributes), Some(expected.clone()));
    for probe in [&mut caller, &mut agent] {
        let seen = seen(&probe.drain(), "caller").expect("told");
        assert_eq!((seen.name.as_str(), &seen.attributes), ("Priya", &expected), "itself included");
    }
    let nobody = pb::UpdateParticipantRequest { identity: "nobody".into(), ..update("x", "", &[]) };
    assert_eq!(ask(&mut room, |reply| Admin::Update { update: nobody, reply }).await, Ok(None));
}

#[tokio::test]
async fn a_deleted_room_waits_for_its_agents_then_removes_everyone() {
    let mut room = room(&Limits::default(), pb::RoomConfiguration::default());
    let mut caller = join(&mut room, info("caller", STANDARD, false), false, 64).await.expect("joins");
    let agent = join(&mut room, info("agent", AGENT, false), false, 64).await.expect("joins");
    let summary = ask(&mut room, |reply| Admin::Info { reply }).await.expect("answered");
    assert_eq!(summary.num_participants, 2);

    let mut deleted = ask(&mut room, |reply| Admin::Delete { reply });
    let start = Instant::now();
    assert!(!room.deleted(start), "the agent may still leave by itself");
    let refused = join(&mut room, info("late", STANDARD, false), false, 64).await.err();
    assert!(refused.is_some_and(|why| why.contains("deleted")), "no joins into a room being deleted");
    assert!(room.deleted(start + Duration::from_secs(3)), "agents get three seconds");

    room.handle(RoomMsg::Leave { sid: agent.sid.clone(), reason: pb::DisconnectReason::ClientInitiated });
    assert!(room.deleted(start), "the agent left: the room can end");
    assert!(leave_of(&caller.drain()).is_none(), "the caller stays until the agent has gone");
    assert!(deleted.try_recv().is_err(), "not answered before the end");
    room.finish_deletion();
    assert_eq!(leave_of(&caller.drain()), Some(pb::DisconnectReason::RoomDeleted));
    assert_eq!(deleted.await, Ok(()));
}
