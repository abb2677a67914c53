//! A participant that sends back what it receives: every audio track it hears is republished on
//! its own track, and every data message is returned to its sender on the same topic. People
//! use it (`agent-worker connect --loopback`) to test a path end to end.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::room::{LocalAudioTrack, RemoteAudioTrack, Room, RoomError, RoomEvent};

/// Runs until the room ends or `stop` completes; returns why it ended.
pub async fn run(
    room: Room,
    mut events: mpsc::UnboundedReceiver<RoomEvent>,
    stop: impl Future<Output = ()>,
) -> Result<String, RoomError> {
    let echo = Arc::new(room.publish_audio("loopback").await?);
    let mut echoes = JoinSet::new();
    tokio::pin!(stop);
    let reason = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(RoomEvent::TrackSubscribed { track }) => {
                    tracing::info!(participant = %track.participant_identity, track = %track.track_sid, "echoing audio");
                    echoes.spawn(echo_audio(track, echo.clone()));
                }
                Some(RoomEvent::DataReceived { participant_identity, topic, payload, reliable }) => {
                    tracing::info!(from = %participant_identity, topic = topic.as_deref().unwrap_or(""), bytes = payload.len(), "echoing data");
                    room.send_data(payload, topic.as_deref(), vec![participant_identity], reliable).await?;
                }
                Some(RoomEvent::Disconnected { reason }) => break reason,
                Some(event) => log(&event),
                None => break "the room task ended".to_owned(),
            },
            () = &mut stop => {
                room.disconnect().await;
                break "stopped".to_owned();
            }
        }
    };
    echoes.shutdown().await;
    Ok(reason)
}

async fn echo_audio(mut track: RemoteAudioTrack, echo: Arc<LocalAudioTrack>) {
    while let Some(frame) = track.recv().await {
        if let Err(e) = echo.push(&frame) {
            tracing::warn!("cannot echo audio: {e}");
            return;
        }
    }
}

/// What a person watching `connect` wants to see.
pub fn log(event: &RoomEvent) {
    match event {
        RoomEvent::ParticipantConnected(p) => {
            tracing::info!(identity = %p.identity, kind = ?p.kind, "participant joined")
        }
        RoomEvent::ParticipantDisconnected { participant, .. } => {
            tracing::info!(identity = %participant.identity, "participant left")
        }
        RoomEvent::AttributesChanged { participant, changed } => {
            tracing::info!(identity = %participant.identity, ?changed, "attributes changed")
        }
        RoomEvent::TrackPublished { participant, track } => {
            tracing::info!(identity = %participant.identity, track = %track.sid, "track published")
        }
        RoomEvent::TrackSubscribed { track } => {
            tracing::info!(identity = %track.participant_identity, track = %track.track_sid, "track subscribed")
        }
        RoomEvent::TrackUnsubscribed { participant_identity, track_sid } => {
            tracing::info!(identity = %participant_identity, track = %track_sid, "track unsubscribed")
        }
        RoomEvent::DataReceived { participant_identity, topic, payload, .. } => {
            tracing::info!(from = %participant_identity, topic = topic.as_deref().unwrap_or(""), text = %crate::telemetry::personal(&String::from_utf8_lossy(payload)), "data received");
        }
        RoomEvent::Text(event) => {
            tracing::info!(event = %crate::telemetry::personal(&format!("{event:?}")), "text stream")
        }
        RoomEvent::Reconnecting { reason } => tracing::warn!("reconnecting: {reason}"),
        RoomEvent::Reconnected => tracing::info!("reconnected"),
        RoomEvent::Disconnected { reason } => tracing::info!("disconnected: {reason}"),
        RoomEvent::ParticipantUpdated(_) | RoomEvent::TrackUnpublished { .. } => tracing::debug!(?event, "room event"),
    }
}
