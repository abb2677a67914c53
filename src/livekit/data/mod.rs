//! LiveKit data packets: user packets, reliable sequencing and text streams.
//!
//! Everything here is pure: it turns bytes into `DataPacket`s and packets into events and back,
//! and leaves sending, receiving and clocks to the room. The room's part, per direction:
//!
//! - Sending: build packets ([`user_packet`], [`TextStreamWriter`], [`AgentTranscript`],
//!   [`user_transcript_packets`]), [`Sequencer::stamp`] each one as it goes onto the channel
//!   its [`Reliability`] names, then [`encode`] (or [`encode_for_send`] for payloads of
//!   unchecked size).
//! - Receiving: [`decode`], drop replays with [`Deduplicator::accept`], then hand the packet to
//!   [`IncomingUser::from_packet`] and [`TextStreamAssembler::push`].
//!
//! Protocol details follow the LiveKit SFU (livekit/livekit `pkg/rtc/participant.go`) and the
//! client SDKs (client-sdk-js `RTCEngine.ts` and `data-stream/`, rust-sdks `livekit-data-stream`,
//! livekit/agents `room_io/_output.py`); each item names the source it follows.

mod codec;
mod sequence;
mod text_in;
mod text_out;
mod user;

pub use codec::{DataError, MAX_INCOMING_PACKET_BYTES, MAX_OUTGOING_PACKET_BYTES, decode, encode, encode_for_send};
pub use sequence::{DEFAULT_MAX_TRACKED_SENDERS, Deduplicator, Sequencer};
pub use text_in::{
    AbortReason, AssemblerLimits, AssemblerStats, IgnoreReason, MAX_STREAM_ID_BYTES, TextStreamAssembler,
    TextStreamEvent,
};
pub use text_out::{
    ATTR_SEGMENT_ID, ATTR_TRANSCRIBED_TRACK_ID, ATTR_TRANSCRIPTION_FINAL, AgentTranscript, STREAM_CHUNK_SIZE_BYTES,
    TEXT_MIME_TYPE, TOPIC_TRANSCRIPTION, TextStreamWriter, new_segment_id, new_stream_id, text_stream_packets,
    user_transcript_packets,
};
pub use user::{IncomingUser, Reliability, user_packet};
