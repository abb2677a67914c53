//! The participant's protocol flows, message by message, without sockets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use livekit_protocol as pb;
use pb::{signal_request, signal_response};
use tokio::sync::oneshot;

use super::*;
use crate::livekit::data;

fn join_response(others: Vec<pb::ParticipantInfo>) -> pb::JoinResponse {
    pb::JoinResponse {
        room: Some(pb::Room { name: "room".into(), ..Default::default() }),
        participant: Some(pb::ParticipantInfo { sid: "PA_me".into(), identity: "me".into(), ..Default::default() }),
        other_participants: others,
        ping_interval: 5,
        ping_timeout: 15,
        ..Default::default()
    }
}

fn person(sid: &str, identity: &str) -> pb::ParticipantInfo {
    pb::ParticipantInfo {
        sid: sid.into(),
        identity: identity.into(),
        version: 1,
        state: pb::participant_info::State::Active as i32,
        ..Default::default()
    }
}

fn engine(others: Vec<pb::ParticipantInfo>) -> (Engine, Instant) {
    let now = Instant::now();
    (Engine::new(&join_response(others), Carried::default(), now), now)
}

fn offer(id: u32, sections: &[(&str, &str, Option<&str>)]) -> signal_response::Message {
    let mut sdp = String::from(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n",
    );
    for (mid, direction, msid) in sections {
        sdp.push_str(&format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{mid}\r\na={direction}\r\n"));
        if let Some(msid) = msid {
            sdp.push_str(&format!("a=msid:{msid}\r\n"));
        }
    }
    signal_response::Message::Offer(pb::SessionDescription { r#type: "offer".into(), sdp, id, ..Default::default() })
}

#[test]
fn joining_opens_data_channels_and_announces_who_is_here() {
    let (mut engine, _) = engine(vec![person("PA_a", "alice")]);
    let actions = engine.take_actions();
    assert!(
        actions.iter().any(|a| matches!(a, Action::Emit(RoomEvent::ParticipantConnected(p)) if p.identity == "alice"))
    );
    let offer = actions.iter().find_map(|a| match a {
        Action::Peer(Target::Publisher, PeerCommand::CreateOffer(request)) => Some(request),
        _ => None,
    });
    let labels: Vec<_> = offer.expect("publisher offer").channels.iter().map(|c| (c.label.as_str(), c.lossy)).collect();
    assert_eq!(labels, [("_reliable", false), ("_lossy", true)]);
}

#[test]
fn server_offers_are_answered_with_their_id_and_tracks_follow_reused_transceivers() {
    let (mut engine, now) = engine(vec![person("PA_a", "alice"), person("PA_b", "bob")]);
    engine.take_actions();
    engine.handle_signal(offer(41, &[("1", "sendonly", Some("PA_a|TR_1 TR_1"))]), now);
    let actions = engine.take_actions();
    let routes = actions.iter().find_map(|a| match a {
        Action::Peer(Target::Subscriber, PeerCommand::AcceptOffer { routes, .. }) => Some(routes.len()),
        _ => None,
    });
    assert_eq!(routes, Some(1), "media of the new section is routed");
    assert!(actions.iter().any(|a| matches!(a, Action::Emit(RoomEvent::TrackSubscribed { track }) if track.participant_identity == "alice" && track.track_sid == "TR_1")));

    engine.handle_peer(Target::Subscriber, DriverEvent::Answer("v=0\r\nm=application 9 x\r\na=mid:0\r\n".into()), now);
    let answered = engine.take_actions().into_iter().find_map(|a| match a {
        Action::Signal(signal_request::Message::Answer(answer)) => Some(answer.id),
        _ => None,
    });
    assert_eq!(answered, Some(41), "the answer carries the offer's id");

    engine.handle_signal(offer(42, &[("1", "sendonly", Some("PA_b|TR_2 TR_2"))]), now);
    let actions = engine.take_actions();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Emit(RoomEvent::TrackUnsubscribed { track_sid, .. }) if track_sid == "TR_1"))
    );
    assert!(actions.iter().any(
        |a| matches!(a, Action::Emit(RoomEvent::TrackSubscribed { track }) if track.participant_identity == "bob")
    ));

    engine.handle_signal(offer(43, &[("1", "inactive", None)]), now);
    let actions = engine.take_actions();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Emit(RoomEvent::TrackUnsubscribed { track_sid, .. }) if track_sid == "TR_2"))
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Emit(RoomEvent::TrackSubscribed { .. }))));
}

#[test]
fn a_track_of_someone_not_yet_known_waits_for_their_update() {
    let (mut engine, now) = engine(Vec::new());
    engine.take_actions();
    engine.handle_signal(offer(1, &[("1", "sendonly", Some("PA_late|TR_9 TR_9"))]), now);
    assert!(!engine.take_actions().iter().any(|a| matches!(a, Action::Emit(RoomEvent::TrackSubscribed { .. }))));
    engine.handle_signal(
        signal_response::Message::Update(pb::ParticipantUpdate { participants: vec![person("PA_late", "carol")] }),
        now,
    );
    let actions = engine.take_actions();
    let connected = actions.iter().position(|a| matches!(a, Action::Emit(RoomEvent::ParticipantConnected(_))));
    let subscribed = actions.iter().position(
        |a| matches!(a, Action::Emit(RoomEvent::TrackSubscribed { track }) if track.participant_identity == "carol"),
    );
    assert!(connected.is_some() && subscribed > connected, "connected first, then the track");
}

#[test]
fn candidates_wait_for_descriptions_in_both_directions() {
    let (mut engine, now) = engine(Vec::new());
    engine.take_actions();
    let trickle = |target: pb::SignalTarget| {
        signal_response::Message::Trickle(pb::TrickleRequest {
            candidate_init: r#"{"candidate":"candidate:1 1 udp 1 10.0.0.9 7882 typ host","sdpMid":"0"}"#.into(),
            target: target as i32,
            r#final: true,
        })
    };
    engine.handle_signal(trickle(pb::SignalTarget::Subscriber), now);
    assert!(
        !engine.take_actions().iter().any(|a| matches!(a, Action::Peer(_, PeerCommand::AddRemoteCandidate(_)))),
        "no offer yet"
    );
    engine.handle_signal(offer(1, &[]), now);
    let actions = engine.take_actions();
    let accept =
        actions.iter().position(|a| matches!(a, Action::Peer(Target::Subscriber, PeerCommand::AcceptOffer { .. })));
    let candidate =
        actions.iter().position(|a| matches!(a, Action::Peer(Target::Subscriber, PeerCommand::AddRemoteCandidate(_))));
    assert!(accept.is_some() && candidate > accept, "the queued candidate follows the offer");

    engine.handle_peer(
        Target::Publisher,
        DriverEvent::Peer(PeerEvent::LocalCandidate("candidate:1 1 udp 1 10.0.0.1 5000 typ host".into())),
        now,
    );
    assert!(
        !engine.take_actions().iter().any(|a| matches!(a, Action::Signal(signal_request::Message::Trickle(_)))),
        "our offer not sent yet"
    );
    engine.handle_peer(Target::Publisher, DriverEvent::Offer("v=0\r\nm=application 9 x\r\na=mid:7\r\n".into()), now);
    let trickle = engine.take_actions().into_iter().find_map(|a| match a {
        Action::Signal(signal_request::Message::Trickle(t)) => Some(t),
        _ => None,
    });
    let trickle = trickle.expect("candidate sent after the offer");
    assert_eq!(trickle.target, pb::SignalTarget::Publisher as i32);
    assert!(trickle.candidate_init.contains(r#""sdpMid":"7""#));
}

#[test]
fn publishing_waits_for_the_server_then_negotiates_after_the_pending_offer() {
    let (mut engine, now) = engine(Vec::new());
    engine.take_actions();
    let (reply, mut answer) = oneshot::channel();
    engine.handle_command(Command::PublishAudio { name: "microphone".into(), reply }, now);
    let request = engine.take_actions().into_iter().find_map(|a| match a {
        Action::Signal(signal_request::Message::AddTrack(request)) => Some(request),
        _ => None,
    });
    let request = request.expect("AddTrackRequest sent");
    assert!(
        request.disable_red
            && request.r#type == pb::TrackType::Audio as i32
            && request.source == pb::TrackSource::Microphone as i32
    );

    let track = pb::TrackInfo { sid: "TR_AMx".into(), ..Default::default() };
    engine.handle_signal(
        signal_response::Message::TrackPublished(pb::TrackPublishedResponse {
            cid: request.cid.clone(),
            track: Some(track),
        }),
        now,
    );
    let mut published = answer.try_recv().expect("answered").expect("accepted");
    assert!(
        !engine.take_actions().iter().any(|a| matches!(a, Action::Peer(_, PeerCommand::CreateOffer(_)))),
        "the data-channel offer is still pending"
    );

    engine.handle_signal(
        signal_response::Message::Answer(pb::SessionDescription { sdp: "v=0".into(), ..Default::default() }),
        now,
    );
    let offer = engine.take_actions().into_iter().find_map(|a| match a {
        Action::Peer(Target::Publisher, PeerCommand::CreateOffer(request)) => Some(request),
        _ => None,
    });
    let added = offer.expect("renegotiated").add_audio;
    assert_eq!(added, [(format!("PA_me|{}", request.cid), request.cid.clone())], "msid track id = cid");

    assert_eq!(published.sid.borrow().clone(), None, "not sending before negotiation");
    engine.handle_peer(Target::Publisher, DriverEvent::LocalTracks(vec![(request.cid, "3".into())]), now);
    let sending = engine.take_actions().into_iter().find_map(|a| match a {
        Action::Peer(Target::Publisher, PeerCommand::SendAudio { mid, .. }) => Some(mid),
        _ => None,
    });
    assert_eq!(sending.as_deref(), Some("3"), "the publisher peer sends the track on its section");
    assert_eq!(published.sid.borrow_and_update().clone().as_deref(), Some("TR_AMx"));
}

#[test]
fn an_unanswered_publish_times_out() {
    let (mut engine, now) = engine(Vec::new());
    let (reply, mut answer) = oneshot::channel();
    engine.handle_command(Command::PublishAudio { name: "mic".into(), reply }, now);
    engine.handle_tick(now + Duration::from_secs(11), 0);
    assert!(matches!(answer.try_recv(), Ok(Err(RoomError::Timeout(_)))));
}

#[test]
fn leave_requests_close_or_reconnect() {
    let leave = |action: pb::leave_request::Action, reason: pb::DisconnectReason| {
        signal_response::Message::Leave(pb::LeaveRequest {
            action: action as i32,
            reason: reason as i32,
            ..Default::default()
        })
    };
    let cases = [
        (pb::leave_request::Action::Disconnect, pb::DisconnectReason::RoomDeleted, "close"),
        (pb::leave_request::Action::Resume, pb::DisconnectReason::Migration, "reconnect"),
        (pb::leave_request::Action::Reconnect, pb::DisconnectReason::StateMismatch, "reconnect"),
    ];
    for (action, reason, expected) in cases {
        let (mut engine, now) = engine(Vec::new());
        engine.take_actions();
        engine.handle_signal(leave(action, reason), now);
        let actions = engine.take_actions();
        match expected {
            "close" => assert!(matches!(&actions[..], [Action::Close(r)] if r == reason.as_str_name()), "{actions:?}"),
            _ => assert!(matches!(&actions[..], [Action::Reconnect(_)]), "{actions:?}"),
        }
    }
}

/// The server's leave and its closing of our peers race; the leave must win, or a participant the
/// server sent away would rejoin.
#[test]
fn a_closed_peer_waits_briefly_for_the_servers_leave_before_rejoining() {
    let (mut engine, now) = engine(Vec::new());
    engine.take_actions();
    engine.handle_peer(Target::Publisher, DriverEvent::Peer(PeerEvent::Closed), now);
    assert!(engine.take_actions().is_empty(), "no rejoin before the leave could arrive");
    assert_eq!(engine.next_deadline(), now + CLOSE_GRACE);
    let leave = pb::LeaveRequest {
        action: pb::leave_request::Action::Disconnect as i32,
        reason: pb::DisconnectReason::ServerShutdown as i32,
        ..Default::default()
    };
    engine.handle_signal(signal_response::Message::Leave(leave), now + Duration::from_millis(100));
    assert!(matches!(&engine.take_actions()[..], [Action::Close(r)] if r == "SERVER_SHUTDOWN"));

    let (mut engine, now) = self::engine(Vec::new());
    engine.take_actions();
    engine.handle_peer(Target::Subscriber, DriverEvent::Peer(PeerEvent::Closed), now);
    engine.handle_tick(now + CLOSE_GRACE, 0);
    assert!(
        matches!(&engine.take_actions()[..], [Action::Reconnect(r)] if r.contains("Subscriber")),
        "without a leave, a closed peer means rejoin"
    );
}

#[test]
fn pings_on_schedule_and_a_silent_server_means_rejoin() {
    let (mut engine, now) = engine(Vec::new());
    engine.take_actions();
    engine.handle_tick(now + Duration::from_secs(5), 1_000);
    let ping = engine.take_actions().into_iter().find_map(|a| match a {
        Action::Signal(signal_request::Message::PingReq(ping)) => Some(ping.timestamp),
        _ => None,
    });
    assert_eq!(ping, Some(1_000));
    engine.handle_signal(
        signal_response::Message::PongResp(pb::Pong { last_ping_timestamp: 1_000, timestamp: 1_030 }),
        now + Duration::from_secs(6),
    );
    engine.handle_tick(now + Duration::from_secs(20), 0);
    assert!(!engine.take_actions().iter().any(|a| matches!(a, Action::Reconnect(_))), "heard at 6 s");
    engine.handle_tick(now + Duration::from_secs(21), 0);
    assert!(engine.take_actions().iter().any(|a| matches!(a, Action::Reconnect(_))));
}

#[test]
fn data_is_delivered_once_and_text_streams_reassembled() {
    let (mut engine, now) = engine(Vec::new());
    engine.take_actions();
    let mut packet = data::user_packet(b"ping".to_vec(), Some("t".into()), Vec::new(), data::Reliability::Reliable);
    packet.participant_identity = "alice".into();
    packet.participant_sid = "PA_a".into();
    packet.sequence = 5;
    let bytes = data::encode(&packet);
    for _ in 0..2 {
        engine.handle_peer(
            Target::Subscriber,
            DriverEvent::Peer(PeerEvent::ChannelData { label: "_reliable".into(), data: bytes.clone() }),
            now,
        );
    }
    let received =
        engine.take_actions().into_iter().filter(|a| matches!(a, Action::Emit(RoomEvent::DataReceived { .. }))).count();
    assert_eq!(received, 1, "a replayed sequence is dropped");

    for packet in data::text_stream_packets("lk.chat", "namaste", HashMap::new(), 0, "stream-1") {
        let mut packet = packet;
        packet.participant_sid = "PA_a".into();
        engine.handle_peer(
            Target::Subscriber,
            DriverEvent::Peer(PeerEvent::ChannelData { label: "_reliable".into(), data: data::encode(&packet) }),
            now,
        );
    }
    let closed = engine.take_actions().into_iter().find_map(|a| match a {
        Action::Emit(RoomEvent::Text(data::TextStreamEvent::Closed { full_text, .. })) => Some(full_text),
        _ => None,
    });
    assert_eq!(closed.as_deref(), Some("namaste"));
    engine.handle_peer(
        Target::Subscriber,
        DriverEvent::Peer(PeerEvent::ChannelData { label: "_reliable".into(), data: vec![0xff; 9] }),
        now,
    );
    assert!(engine.take_actions().is_empty(), "garbage is ignored");
}

#[test]
fn attribute_updates_resolve_on_the_servers_answer_or_time_out() {
    let (mut engine, now) = engine(Vec::new());
    engine.take_actions();
    let (reply, mut answer) = oneshot::channel();
    engine.handle_command(
        Command::UpdateSelf {
            name: None,
            attributes: HashMap::from([("lk.agent.state".into(), "listening".into())]),
            reply,
        },
        now,
    );
    let request_id = engine.take_actions().into_iter().find_map(|a| match a {
        Action::Signal(signal_request::Message::UpdateMetadata(update)) => Some(update.request_id),
        _ => None,
    });
    let ok = pb::RequestResponse {
        request_id: request_id.expect("sent"),
        reason: pb::request_response::Reason::Ok as i32,
        ..Default::default()
    };
    engine.handle_signal(signal_response::Message::RequestResponse(ok), now);
    assert!(matches!(answer.try_recv(), Ok(Ok(()))));

    let (reply, mut answer) = oneshot::channel();
    engine.handle_command(Command::UpdateSelf { name: Some("Aria".into()), attributes: HashMap::new(), reply }, now);
    engine.handle_tick(now + Duration::from_secs(11), 0);
    assert!(matches!(answer.try_recv(), Ok(Err(RoomError::Timeout(_)))));
}
