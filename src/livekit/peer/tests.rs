//! Two peer cores talking through memory on virtual time: a full-ICE client against an ICE-lite
//! server, the way LiveKit's server and our participant meet. No sockets, no sleeping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::candidate::CandidateInit;
use super::core::{ChannelSpec, CoreOutput, OfferRequest, PeerConfig, PeerCore, PeerEvent};
use super::sdp::{self, SdpDirection};

struct Side {
    core: PeerCore,
    address: SocketAddr,
    events: Vec<PeerEvent>,
}

impl Side {
    fn new(ice_lite: bool, address: &str, now: Instant) -> Self {
        let address = address.parse().expect("valid address");
        let mut core = PeerCore::new(PeerConfig { ice_lite }, now);
        core.add_local_candidate(address, now).expect("host candidate");
        Self { core, address, events: Vec::new() }
    }

    fn candidate(&self) -> str0m::Candidate {
        let text = format!("candidate:1 1 udp 2130706431 {} {} typ host", self.address.ip(), self.address.port());
        CandidateInit::new(text, "0").to_str0m().expect("valid").expect("not empty")
    }
}

/// Moves datagrams both ways and advances time until `done` holds or a virtual minute passes.
fn run_until(a: &mut Side, b: &mut Side, now: &mut Instant, done: impl Fn(&Side, &Side) -> bool) {
    let deadline = *now + Duration::from_secs(60);
    while !done(a, b) {
        assert!(*now < deadline, "did not converge; a: {:?}, b: {:?}", a.events, b.events);
        let moved = deliver(a, b, *now) | deliver(b, a, *now);
        if !moved {
            *now = a.core.next_timeout().min(b.core.next_timeout()).max(*now + Duration::from_millis(1));
            a.core.handle_timeout(*now);
            b.core.handle_timeout(*now);
        }
    }
}

/// Hands `from`'s transmissions to `to`; true when anything moved.
fn deliver(from: &mut Side, to: &mut Side, now: Instant) -> bool {
    let mut moved = false;
    while let Some(output) = from.core.poll_output() {
        match output {
            CoreOutput::Transmit { source, destination, contents } => {
                assert_eq!(destination, to.address, "sent to the peer's candidate");
                to.core.handle_datagram(now, source, destination, &contents);
                moved = true;
            }
            CoreOutput::Event(event) => from.events.push(event),
        }
    }
    moved
}

fn has(side: &Side, wanted: impl Fn(&PeerEvent) -> bool) -> bool {
    side.events.iter().any(wanted)
}

#[test]
fn a_client_answers_an_ice_lite_server_offer_and_data_flows_both_ways() {
    let mut now = Instant::now();
    let mut server = Side::new(true, "10.0.0.2:7882", now);
    let mut client = Side::new(false, "10.0.0.1:50000", now);

    let request = OfferRequest {
        channels: vec![
            ChannelSpec { label: "_reliable".into(), lossy: false },
            ChannelSpec { label: "_lossy".into(), lossy: true },
        ],
        add_audio: vec![("PA_pub|TR_AMtrack".into(), "TR_AMtrack".into())],
        ..OfferRequest::default()
    };
    let offer = server.core.create_offer(request, now).expect("offer").expect("needs negotiation");
    assert!(offer.contains("a=ice-lite"), "the server offers as ICE-lite");
    let answer = client.core.accept_offer(&offer, now).expect("answer");
    server.core.accept_answer(&answer, now).expect("applied");
    let audio = client.core.remote_sections().values().find(|s| s.msid.is_some()).expect("audio section").clone();
    assert_eq!(audio.msid.as_ref().and_then(|m| m.livekit_participant_sid()), Some("PA_pub"));
    assert_eq!(audio.direction, SdpDirection::SendOnly);

    client.core.add_remote_candidate(server.candidate(), now);
    run_until(&mut client, &mut server, &mut now, |c, s| {
        has(c, |e| matches!(e, PeerEvent::ChannelOpen(l) if l == "_reliable"))
            && has(s, |e| matches!(e, PeerEvent::ChannelOpen(l) if l == "_reliable"))
    });
    assert!(has(&client, |e| matches!(e, PeerEvent::Connected)), "the client connected as the controlling agent");

    server.core.send_data("_reliable", b"from server".to_vec(), now).expect("queued");
    client.core.send_data("_reliable", b"from client".to_vec(), now).expect("queued");
    run_until(&mut client, &mut server, &mut now, |c, s| {
        let got =
            |side: &Side, text: &[u8]| has(side, |e| matches!(e, PeerEvent::ChannelData { data, .. } if data == text));
        got(c, b"from server") && got(s, b"from client")
    });

    let server_mid = server.core.local_tracks()[0].1.clone();
    for frame in 0..5u64 {
        let data: Arc<[u8]> = Arc::from(vec![0xF8, 0xFF, 0xFE, frame as u8]);
        server.core.write_audio(&server_mid, frame * 960, now, data, now).expect("written");
        now += Duration::from_millis(20);
    }
    run_until(&mut client, &mut server, &mut now, |c, _| {
        c.events.iter().filter(|e| matches!(e, PeerEvent::Media(_))).count() >= 5
    });
    let received: Vec<_> =
        client.events.iter().filter_map(|e| if let PeerEvent::Media(m) = e { Some(m) } else { None }).collect();
    assert!(received.iter().all(|m| m.mid == audio.mid), "media arrives on the section of the offered track");
    assert_eq!(received[4].rtp_time - received[0].rtp_time, 4 * 960, "RTP time preserved");
    assert_eq!(received[4].data.as_ref(), &[0xF8, 0xFF, 0xFE, 4]);
}

#[test]
fn a_publisher_offer_names_its_track_and_announces_its_ssrc() {
    let now = Instant::now();
    let mut client = Side::new(false, "10.0.0.1:50000", now);
    let request = OfferRequest {
        channels: vec![ChannelSpec { label: "_reliable".into(), lossy: false }],
        add_audio: vec![("stream-1".into(), "TR_cid_42".into())],
        ..OfferRequest::default()
    };
    let offer = client.core.create_offer(request, now).expect("offer").expect("negotiation");
    let sections = sdp::media_sections(&offer);
    let audio = sections.iter().find(|s| s.kind == sdp::SectionKind::Audio).expect("audio section");
    assert_eq!(audio.msid.as_ref().map(|m| m.track_id.as_str()), Some("TR_cid_42"), "msid track id = cid");
    assert_eq!(audio.direction, SdpDirection::SendOnly);
    assert!(!audio.ssrcs.is_empty(), "the SSRC we send is announced:\n{offer}");
    assert!(offer.contains("opus/48000/2"));
    assert!(!offer.to_ascii_lowercase().contains("red/48000"), "RED is not offered");
    assert!(offer.contains("a=setup:actpass"));
}

#[test]
fn malformed_sdp_is_an_error_not_a_panic() {
    let now = Instant::now();
    let mut client = Side::new(false, "10.0.0.1:50000", now);
    for garbage in ["", "v=0", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "not sdp at all \u{0}"] {
        assert!(client.core.accept_offer(garbage, now).is_err(), "{garbage:?}");
    }
    assert!(client.core.accept_answer("v=0", now).is_err(), "no pending offer");
    client.core.handle_datagram(now, "10.9.9.9:1".parse().expect("addr"), client.address, &[0x16, 0xfe, 0xfd, 0, 0]);
    client.core.handle_datagram(now, "10.9.9.9:1".parse().expect("addr"), client.address, &[]);
    assert!(client.core.is_alive());
}

/// LiveKit reuses transceivers: a later offer may put another track (new msid and SSRC) on a
/// section, turn it inactive, or restart ICE. The client must accept each and read the section's
/// new track.
#[test]
fn later_offers_may_reuse_or_idle_a_section_and_restart_ice() {
    let mut now = Instant::now();
    let mut server = Side::new(true, "10.0.0.2:7882", now);
    let mut client = Side::new(false, "10.0.0.1:50000", now);
    let request = OfferRequest {
        channels: vec![ChannelSpec { label: "_reliable".into(), lossy: false }],
        add_audio: vec![("PA_one|TR_one".into(), "TR_one".into())],
        ..OfferRequest::default()
    };
    let offer = server.core.create_offer(request, now).expect("offer").expect("negotiation");
    let answer = client.core.accept_offer(&offer, now).expect("answer");
    server.core.accept_answer(&answer, now).expect("applied");
    client.core.add_remote_candidate(server.candidate(), now);
    run_until(&mut client, &mut server, &mut now, |c, _| has(c, |e| matches!(e, PeerEvent::Connected)));
    let mid = client.core.remote_sections().values().find(|s| s.msid.is_some()).expect("audio").mid.clone();

    let version = |sdp: &str, n: u32| sdp.replacen(" 1 IN IP4", &format!(" {n} IN IP4"), 1);
    let old_ssrc = sdp::media_sections(&offer).iter().find(|s| s.mid == mid).expect("section").ssrcs[0].to_string();
    let reused = version(&offer, 2)
        .replace("PA_one|TR_one", "PA_two|TR_two")
        .replace("TR_one", "TR_two")
        .replace(&old_ssrc, "424242");
    client.core.accept_offer(&reused, now).expect("a reused section is accepted");
    let section = &client.core.remote_sections()[&mid];
    assert_eq!(section.msid.as_ref().map(|m| m.track_id.as_str()), Some("TR_two"));
    assert_eq!(section.ssrcs, [424242]);

    let idle = version(&reused, 3).replace("a=sendonly", "a=inactive");
    client.core.accept_offer(&idle, now).expect("an inactive section is accepted");
    assert_eq!(client.core.remote_sections()[&mid].direction, SdpDirection::Inactive);

    let ufrag = idle.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).expect("ufrag").to_owned();
    let restarted = version(&idle, 4).replace(&ufrag, "newfrag1");
    client.core.accept_offer(&restarted, now).expect("an ICE restart is accepted");
    assert!(client.core.is_alive());
}
