//! Two of our participants meet in the dev server: they see each other, exchange data both ways
//! (including on the subscriber-side data channel), and one hears the other's audio intact.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::livekit::{dev_server, join, wait_for};
use voice_agent::livekit::room::RoomEvent;

const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread")]
async fn participants_see_each_other_and_exchange_data() {
    let server = dev_server().await;
    let (alice, mut alice_events) = join(&server, "data-room", "alice").await;
    let (bob, mut bob_events) = join(&server, "data-room", "bob").await;
    let seen = wait_for(&mut alice_events, LIMIT, |e| match e {
        RoomEvent::ParticipantConnected(p) => Some(p.identity),
        _ => None,
    })
    .await;
    assert_eq!(seen, "bob");

    alice.send_data(b"hello bob".to_vec(), Some("greeting"), Vec::new(), true).await.expect("sent");
    let (from, topic, payload) = wait_for(&mut bob_events, LIMIT, |e| match e {
        RoomEvent::DataReceived { participant_identity, topic, payload, .. } => {
            Some((participant_identity, topic, payload))
        }
        _ => None,
    })
    .await;
    assert_eq!((from.as_str(), topic.as_deref(), payload.as_slice()), ("alice", Some("greeting"), &b"hello bob"[..]));

    bob.send_data(b"hi alice".to_vec(), None, vec!["alice".into()], true).await.expect("sent");
    let payload = wait_for(&mut alice_events, LIMIT, |e| match e {
        RoomEvent::DataReceived { payload, .. } => Some(payload),
        _ => None,
    })
    .await;
    assert_eq!(payload, b"hi alice");

    alice.set_attributes(HashMap::from([("mood".to_owned(), "curious".to_owned())])).await.expect("attributes set");
    let changed = wait_for(&mut bob_events, LIMIT, |e| match e {
        RoomEvent::AttributesChanged { participant, changed } if participant.identity == "alice" => Some(changed),
        _ => None,
    })
    .await;
    assert_eq!(changed.get("mood").map(String::as_str), Some("curious"));

    let long: String = "नमस्ते, यह एक लंबा संदेश है। ".repeat(600);
    bob.send_text("lk.chat", &long, HashMap::from([("lang".to_owned(), "hi".to_owned())])).await.expect("sent");
    let (text, attributes) = wait_for(&mut alice_events, LIMIT, |e| match e {
        RoomEvent::Text(voice_agent::livekit::data::TextStreamEvent::Closed { full_text, attributes, .. }) => {
            Some((full_text, attributes))
        }
        _ => None,
    })
    .await;
    assert!(long.len() > 30_000, "needs several 15 000-byte chunks");
    assert_eq!(text, long, "a long Hindi text stream arrives whole");
    assert_eq!(attributes.get("lang").map(String::as_str), Some("hi"));

    bob.disconnect().await;
    let left = wait_for(&mut alice_events, LIMIT, |e| match e {
        RoomEvent::ParticipantDisconnected { participant, .. } => Some(participant.identity),
        _ => None,
    })
    .await;
    assert_eq!(left, "bob");
    server.stop().await;
}

/// Receives from `track` until `duration` of audio has arrived.
async fn record(track: &mut voice_agent::livekit::room::RemoteAudioTrack, duration: Duration) -> Vec<i16> {
    let wanted = (duration.as_secs_f64() * 48_000.0) as usize;
    let mut samples = Vec::with_capacity(wanted);
    while samples.len() < wanted {
        let frame = tokio::time::timeout(LIMIT, track.recv()).await.expect("audio keeps flowing").expect("track open");
        assert_eq!(frame.sample_rate, 48_000);
        samples.extend(frame.samples);
    }
    samples
}

#[tokio::test(flavor = "multi_thread")]
async fn published_speech_arrives_intact() {
    let server = dev_server().await;
    let (speaker, _speaker_events) = join(&server, "audio-room", "speaker").await;
    let (_listener, mut listener_events) = join(&server, "audio-room", "listener").await;
    let mut local = speaker.publish_audio("microphone").await.expect("published");
    let track_sid = local.ready().await.expect("negotiated");
    let mut remote = wait_for(&mut listener_events, LIMIT, |e| match e {
        RoomEvent::TrackSubscribed { track } => Some(track),
        _ => None,
    })
    .await;
    assert_eq!((remote.participant_identity.as_str(), remote.track_sid.as_str()), ("speaker", track_sid.as_str()));

    let speech = support::audio::speech();
    local.push(&speech).expect("queued");
    local.flush();
    let received = record(&mut remote, speech.duration() + Duration::from_secs(2)).await;
    let source = support::audio::resample(&speech, 48_000);
    // Each half second of speech is found on its own: a machine too busy to read the socket for a
    // moment shifts what follows, which would sink one correlation over the whole recording.
    const HALF_SECOND: usize = 24_000;
    let windows: Vec<(usize, &[i16])> = source
        .chunks(HALF_SECOND)
        .enumerate()
        .filter(|(_, w)| w.len() == HALF_SECOND && support::audio::rms(w) > 300.0)
        .map(|(i, w)| (i * HALF_SECOND, w))
        .collect();
    let (_, start) = support::audio::best_alignment(&source, &received);
    // Each window is looked for a second either side of where the whole recording aligned.
    let found: Vec<f64> = windows
        .iter()
        .map(|(offset, window)| {
            let from = (start + offset).saturating_sub(2 * HALF_SECOND).min(received.len());
            let to = (start + offset + 3 * HALF_SECOND).min(received.len());
            support::audio::best_alignment(window, &received[from..to]).0
        })
        .collect();
    let intact = found.iter().filter(|c| **c >= 0.9).count();
    println!("correlations {found:.3?}");
    assert!(
        windows.len() >= 10 && intact * 10 >= windows.len() * 9,
        "received audio matches the source: {intact} of {} half seconds found, correlations {found:.3?}",
        windows.len()
    );
    server.stop().await;
}

/// Pushes the speech fixture `times` times into `track`, in the background.
fn speak(
    track: std::sync::Arc<voice_agent::livekit::room::LocalAudioTrack>,
    times: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let speech = support::audio::speech();
        for _ in 0..times {
            track.push(&speech).expect("queued");
        }
        track.flush();
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_joiner_hears_an_earlier_publisher() {
    let server = dev_server().await;
    let (speaker, _speaker_events) = join(&server, "late-room", "speaker").await;
    let mut local = speaker.publish_audio("microphone").await.expect("published");
    local.ready().await.expect("negotiated");
    let local = std::sync::Arc::new(local);
    let _speaking = speak(local.clone(), 3);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (_late, mut late_events) = join(&server, "late-room", "late").await;
    let mut remote = wait_for(&mut late_events, LIMIT, |e| match e {
        RoomEvent::TrackSubscribed { track } => Some(track),
        _ => None,
    })
    .await;
    let heard = record(&mut remote, Duration::from_secs(3)).await;
    let speech = support::audio::speech();
    let source: Vec<i16> = support::audio::resample(&speech, 48_000).repeat(3);
    let (correlation, _) = support::audio::best_alignment(&heard[24_000..], &source);
    assert!(correlation >= 0.9, "the late joiner hears the speech being published: correlation {correlation:.3}");
    server.stop().await;
}

/// After each failure the server can cause, the speaker rejoins, republishes, and is heard again.
#[tokio::test(flavor = "multi_thread")]
async fn a_participant_rejoins_and_republishes_after_the_server_asks_or_drops_it() {
    use voice_agent::livekit::room::Scenario;
    let server = dev_server().await;
    let (speaker, mut speaker_events) = join(&server, "rejoin-room", "speaker").await;
    let (_listener, mut listener_events) = join(&server, "rejoin-room", "listener").await;
    let mut local = speaker.publish_audio("microphone").await.expect("published");
    local.ready().await.expect("negotiated");
    let local = std::sync::Arc::new(local);

    let mut current = wait_for(&mut listener_events, LIMIT, |e| match e {
        RoomEvent::TrackSubscribed { track } => Some(track.track_sid),
        _ => None,
    })
    .await;
    for scenario in [Scenario::FullReconnect, Scenario::NodeFailure] {
        speaker.simulate(scenario).await.expect("asked");
        let reason = wait_for(&mut speaker_events, LIMIT, |e| match e {
            RoomEvent::Reconnecting { reason } => Some(reason),
            _ => None,
        })
        .await;
        wait_for(&mut speaker_events, LIMIT, |e| matches!(e, RoomEvent::Reconnected).then_some(())).await;
        println!("{scenario:?}: {reason}");
        let mut again = wait_for(&mut listener_events, LIMIT, |e| match e {
            RoomEvent::TrackSubscribed { track } if track.track_sid != current => Some(track),
            _ => None,
        })
        .await;
        let _speaking = speak(local.clone(), 1);
        let heard = record(&mut again, Duration::from_secs(3)).await;
        assert!(support::audio::rms(&heard) > 300.0, "{scenario:?}: speech is heard after rejoining");
        local.clear();
        current = again.track_sid.clone();
    }

    speaker.simulate(Scenario::ServerLeave).await.expect("asked");
    let reason = wait_for(&mut speaker_events, LIMIT, |e| match e {
        RoomEvent::Disconnected { reason } => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, "SERVER_SHUTDOWN", "a DISCONNECT leave ends the room with its reason");
    server.stop().await;
}
