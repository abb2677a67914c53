//! What a room tells its user.

use std::collections::HashMap;

use super::participants::{Participant, Track};
use super::tracks::RemoteAudioTrack;
use crate::audio::AudioError;
use crate::livekit::data::TextStreamEvent;

/// Everything a room reports, in the order the server said it; read from the receiver
/// [`connect`](super::connect) returns.
#[derive(Debug)]
pub enum RoomEvent {
    /// Someone joined (or was already there when we joined).
    ParticipantConnected(Participant),
    /// Someone left.
    ParticipantDisconnected {
        /// Who left, as last known.
        participant: Participant,
        /// The protobuf `DisconnectReason`.
        reason: i32,
    },
    /// Name or metadata changed.
    ParticipantUpdated(Participant),
    /// Keys whose value changed; removed keys map to an empty string.
    AttributesChanged {
        /// The participant, with its attributes already updated.
        participant: Participant,
        /// Only the keys that changed.
        changed: HashMap<String, String>,
    },
    /// A participant published a track (we may or may not subscribe to it).
    TrackPublished {
        /// The publisher.
        participant: Participant,
        /// The new track.
        track: Track,
    },
    /// A participant stopped publishing a track.
    TrackUnpublished {
        /// The publisher.
        participant: Participant,
        /// The track that went away.
        track: Track,
    },
    /// A remote audio track we now receive; read it with [`RemoteAudioTrack::recv`].
    TrackSubscribed {
        /// The track; its audio arrives only while someone calls `recv`.
        track: RemoteAudioTrack,
    },
    /// A track we received ended; its [`RemoteAudioTrack`] yields no more audio.
    TrackUnsubscribed {
        /// The publisher's identity.
        participant_identity: String,
        /// The track's sid (`TR_...`).
        track_sid: String,
    },
    /// A user data packet (not a text stream, which arrives as [`RoomEvent::Text`]).
    DataReceived {
        /// The sender's identity; empty when the server sent it.
        participant_identity: String,
        /// The topic the sender chose, if any.
        topic: Option<String>,
        /// The bytes as sent.
        payload: Vec<u8>,
        /// Whether it came on the reliable channel (else lossy).
        reliable: bool,
    },
    /// Text streams (transcriptions, chat) as they arrive.
    Text(TextStreamEvent),
    /// The connection broke or the server asked us to move; we are joining again. Remote tracks
    /// end; they are subscribed afresh, and our own tracks republished, once reconnected.
    Reconnecting {
        /// What broke, for logs.
        reason: String,
    },
    /// Joined again after [`RoomEvent::Reconnecting`]; the room state is current again.
    Reconnected,
    /// The room is over for us; no more events follow.
    Disconnected {
        /// Why (server leave, reconnects exhausted, our own disconnect), for logs.
        reason: String,
    },
}

/// Why a request to the room failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// The room was left or its session ended; nothing more can be sent.
    #[error("the room is closed")]
    Closed,
    /// The server did not answer in time; names what we waited for.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The server answered a request (an attribute or name update) with an error reason.
    #[error("the server refused: {0}")]
    Refused(String),
    /// Encoding our audio failed.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// A data packet over LiveKit's size limit.
    #[error("the data is too large to send: {0}")]
    TooLarge(String),
}
