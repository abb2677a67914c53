//! What a room tells its user.

use std::collections::HashMap;

use super::participants::{Participant, Track};
use super::tracks::RemoteAudioTrack;
use crate::audio::AudioError;
use crate::livekit::data::TextStreamEvent;

#[derive(Debug)]
pub enum RoomEvent {
    ParticipantConnected(Participant),
    /// `reason` is the protobuf `DisconnectReason`.
    ParticipantDisconnected {
        participant: Participant,
        reason: i32,
    },
    /// Name or metadata changed.
    ParticipantUpdated(Participant),
    /// Keys whose value changed; removed keys map to an empty string.
    AttributesChanged {
        participant: Participant,
        changed: HashMap<String, String>,
    },
    TrackPublished {
        participant: Participant,
        track: Track,
    },
    TrackUnpublished {
        participant: Participant,
        track: Track,
    },
    /// A remote audio track we now receive; read it with [`RemoteAudioTrack::recv`].
    TrackSubscribed {
        track: RemoteAudioTrack,
    },
    TrackUnsubscribed {
        participant_identity: String,
        track_sid: String,
    },
    DataReceived {
        participant_identity: String,
        topic: Option<String>,
        payload: Vec<u8>,
        reliable: bool,
    },
    /// Text streams (transcriptions, chat) as they arrive.
    Text(TextStreamEvent),
    /// The connection broke or the server asked us to move; we are joining again. Remote tracks
    /// end; they are subscribed afresh, and our own tracks republished, once reconnected.
    Reconnecting {
        reason: String,
    },
    Reconnected,
    /// The room is over for us; no more events follow.
    Disconnected {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("the room is closed")]
    Closed,
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("the server refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("the data is too large to send: {0}")]
    TooLarge(String),
}
