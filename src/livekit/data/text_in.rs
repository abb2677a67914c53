//! Incoming text streams: header, chunk and trailer packets from any number of senders turned
//! into opened / text / closed events.
//!
//! Everything here arrives from other participants, so nothing is trusted: each stream, each
//! sender and the whole assembler have memory limits, streams that go quiet are expired, and
//! packets that fit no open stream are counted and dropped rather than buffered.
//!
//! Chunks must arrive in `chunk_index` order, which the ordered reliable channel guarantees; a
//! lower index is a replay and is dropped, and a higher one means data was lost, so the stream is
//! aborted rather than delivered with a hole in it (rust-sdks `livekit-data-stream` treats a gap
//! the same way). Chunk `version` edits are not supported and arrive as such replays.

use std::collections::HashMap;

use livekit_protocol::DataPacket;
use livekit_protocol::data_packet::Value;
use livekit_protocol::data_stream::header::ContentHeader;
use livekit_protocol::data_stream::{Chunk, CompressionType, Header, Trailer};

/// Longest stream id accepted. SDKs use 36-character UUIDs; the cap keeps a peer from making us
/// store kilobyte-long keys for every stream it opens.
pub const MAX_STREAM_ID_BYTES: usize = 256;

/// Memory and time limits of a [`TextStreamAssembler`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssemblerLimits {
    /// Open streams one sender may have at once; more are ignored.
    pub max_streams_per_sender: usize,
    /// Open streams across all senders; more are ignored.
    pub max_open_streams: usize,
    /// Text one stream may accumulate before it is aborted.
    pub max_stream_bytes: usize,
    /// Text all open streams together may hold; the stream that would exceed it is aborted.
    pub max_buffered_bytes: usize,
    /// How long a stream may go without a packet before [`TextStreamAssembler::expire`] drops it.
    pub idle_timeout_ms: i64,
}

impl Default for AssemblerLimits {
    /// Generous for chat and transcripts (a transcript segment is rarely more than a few
    /// kilobytes), small enough that a hostile room cannot exhaust memory.
    fn default() -> Self {
        Self {
            max_streams_per_sender: 64,
            max_open_streams: 256,
            max_stream_bytes: 1024 * 1024,
            max_buffered_bytes: 32 * 1024 * 1024,
            idle_timeout_ms: 60_000,
        }
    }
}

/// What reassembly produced from a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextStreamEvent {
    /// A text stream started.
    Opened {
        /// Id that the stream's later events carry.
        stream_id: String,
        /// Topic it was sent on, e.g. `lk.transcription`.
        topic: String,
        /// Who the stream is attributed to: the sender, or the user an agent transcribed.
        sender_identity: String,
        /// Session sid of the participant that actually sent it.
        sender_sid: String,
        /// Attributes from the header.
        attributes: HashMap<String, String>,
    },
    /// More text of an open stream: the characters completed by one chunk.
    Chunk {
        /// The stream it belongs to.
        stream_id: String,
        /// Text decoded from the chunk; a character split across chunks is delivered whole with
        /// the chunk that completes it, and invalid UTF-8 becomes U+FFFD.
        text: String,
    },
    /// A stream ended with a trailer.
    Closed {
        /// The stream that ended.
        stream_id: String,
        /// Header attributes with the trailer's merged over them.
        attributes: HashMap<String, String>,
        /// The sender's reason; empty for a normal end, otherwise e.g. "interrupted".
        reason: String,
        /// All text of the stream, the concatenation of its `Chunk` events.
        full_text: String,
    },
    /// An opened stream was given up; nothing more will be reported for it.
    Aborted {
        /// The stream given up.
        stream_id: String,
        /// Why.
        reason: AbortReason,
    },
    /// A stream header was not taken up; its chunks and trailer are dropped unbuffered.
    Ignored {
        /// The stream's id, as sent.
        stream_id: String,
        /// Topic it was sent on.
        topic: String,
        /// Who the stream is attributed to.
        sender_identity: String,
        /// Why.
        reason: IgnoreReason,
    },
}

/// Why an opened stream was given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// The stream's text passed [`AssemblerLimits::max_stream_bytes`].
    TooLarge {
        /// The limit passed.
        limit: usize,
    },
    /// All open streams together passed [`AssemblerLimits::max_buffered_bytes`].
    BufferFull {
        /// The limit passed.
        limit: usize,
    },
    /// A chunk index was skipped, so text was lost.
    MissingChunk {
        /// The index that was due.
        expected: u64,
        /// The index that came.
        received: u64,
    },
    /// The stream's bytes did not add up to the length its header declared.
    LengthMismatch {
        /// Length from the header.
        declared: u64,
        /// Bytes received when the mismatch showed.
        received: u64,
    },
    /// No packet arrived for [`AssemblerLimits::idle_timeout_ms`].
    IdleTimeout,
    /// The sender left the room mid-stream.
    SenderLeft,
}

/// Why a stream header was not taken up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IgnoreReason {
    /// A byte or file stream, which this assembler does not handle.
    NotText {
        /// The header's MIME type.
        mime_type: String,
    },
    /// Deflate-compressed content, which senders only use towards clients that advertise
    /// support for it.
    Compressed,
    /// The sender, or the room, already has as many open streams as allowed.
    TooManyStreams,
    /// The stream id is empty or longer than [`MAX_STREAM_ID_BYTES`].
    BadStreamId,
}

/// Packets dropped without an event, for diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Chunks and trailers of no open or ignored stream, or from a different sender than the
    /// stream's header.
    pub orphan_packets: u64,
    /// Headers repeating the id of a stream already open or ignored.
    pub duplicate_headers: u64,
    /// Chunks whose index was already received.
    pub duplicate_chunks: u64,
    /// Chunks and trailers of ignored or aborted streams.
    pub ignored_packets: u64,
}

#[derive(Debug)]
struct OpenStream {
    sender_sid: String,
    sender_key: String,
    attributes: HashMap<String, String>,
    declared_length: Option<u64>,
    next_chunk_index: u64,
    received_bytes: u64,
    /// Bytes of a character the next chunk is expected to complete.
    pending: Vec<u8>,
    text: String,
    last_activity_ms: i64,
}

/// Remembered so that the rest of an ignored or aborted stream is dropped quietly rather than
/// counted as orphans.
#[derive(Debug)]
struct IgnoredStream {
    sender_sid: String,
    last_activity_ms: i64,
}

/// Reassembles incoming text streams. Feed it every stream packet with [`push`](Self::push),
/// call [`expire`](Self::expire) now and then, and [`forget_sender`](Self::forget_sender) when a
/// participant leaves.
///
/// A stream belongs to the session sid that sent its header, and chunks or trailers from any
/// other sid are dropped. The identity is not compared because an agent may attribute a stream
/// to a user in its header while the SFU stamps the agent's identity on the chunks.
#[derive(Debug, Default)]
pub struct TextStreamAssembler {
    limits: AssemblerLimits,
    open: HashMap<String, OpenStream>,
    ignored: HashMap<String, IgnoredStream>,
    buffered_bytes: usize,
    stats: AssemblerStats,
}

impl TextStreamAssembler {
    /// An assembler enforcing `limits`.
    pub fn new(limits: AssemblerLimits) -> Self {
        Self { limits, ..Default::default() }
    }

    /// Handles one packet received at `now_ms`. Packets that are not stream packets produce
    /// nothing, so every received packet can be passed through here.
    pub fn push(&mut self, packet: &DataPacket, now_ms: i64) -> Vec<TextStreamEvent> {
        match &packet.value {
            Some(Value::StreamHeader(header)) => self.on_header(packet, header, now_ms),
            Some(Value::StreamChunk(chunk)) => self.on_chunk(&packet.participant_sid, chunk, now_ms),
            Some(Value::StreamTrailer(trailer)) => self.on_trailer(&packet.participant_sid, trailer),
            _ => Vec::new(),
        }
    }

    /// Drops streams that have had no packet for longer than the idle timeout, reporting each
    /// open one as aborted: a sender that vanished mid-stream would otherwise pin its buffer.
    pub fn expire(&mut self, now_ms: i64) -> Vec<TextStreamEvent> {
        let timeout = self.limits.idle_timeout_ms;
        let idle = |last_activity_ms: i64| now_ms.saturating_sub(last_activity_ms) > timeout;
        self.ignored.retain(|_, stream| !idle(stream.last_activity_ms));
        let mut expired: Vec<String> =
            self.open.iter().filter(|(_, stream)| idle(stream.last_activity_ms)).map(|(id, _)| id.clone()).collect();
        expired.sort();
        expired.into_iter().filter_map(|id| self.abort(&id, AbortReason::IdleTimeout, None)).collect()
    }

    /// Aborts every open stream sent by the participant with session sid `sender_sid`, since a
    /// participant that left will never finish them.
    pub fn forget_sender(&mut self, sender_sid: &str) -> Vec<TextStreamEvent> {
        self.ignored.retain(|_, stream| stream.sender_sid != sender_sid);
        let mut gone: Vec<String> =
            self.open.iter().filter(|(_, stream)| stream.sender_sid == sender_sid).map(|(id, _)| id.clone()).collect();
        gone.sort();
        gone.into_iter().filter_map(|id| self.abort(&id, AbortReason::SenderLeft, None)).collect()
    }

    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        self.open.len()
    }

    /// Counts of packets dropped without an event.
    pub fn stats(&self) -> &AssemblerStats {
        &self.stats
    }

    fn on_header(&mut self, packet: &DataPacket, header: &Header, now_ms: i64) -> Vec<TextStreamEvent> {
        let stream_id = &header.stream_id;
        if self.open.contains_key(stream_id) || self.ignored.contains_key(stream_id) {
            self.stats.duplicate_headers += 1;
            return Vec::new();
        }
        let ignored = |reason| TextStreamEvent::Ignored {
            stream_id: stream_id.clone(),
            topic: header.topic.clone(),
            sender_identity: packet.participant_identity.clone(),
            reason,
        };
        if stream_id.is_empty() || stream_id.len() > MAX_STREAM_ID_BYTES {
            return vec![ignored(IgnoreReason::BadStreamId)];
        }
        // The content header decides, as in the SDKs; the MIME type only for a header without one.
        let is_text = match &header.content_header {
            Some(ContentHeader::TextHeader(_)) => true,
            Some(ContentHeader::ByteHeader(_)) => false,
            None => header.mime_type.starts_with("text/"),
        };
        let reason = if !is_text {
            Some(IgnoreReason::NotText { mime_type: header.mime_type.clone() })
        } else if header.compression != CompressionType::None as i32 {
            Some(IgnoreReason::Compressed)
        } else if header.inline_content.is_none() && self.at_capacity(&sender_key(packet)) {
            Some(IgnoreReason::TooManyStreams)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.remember_ignored(stream_id, &packet.participant_sid, now_ms);
            return vec![ignored(reason)];
        }

        let opened = TextStreamEvent::Opened {
            stream_id: stream_id.clone(),
            topic: header.topic.clone(),
            sender_identity: packet.participant_identity.clone(),
            sender_sid: packet.participant_sid.clone(),
            attributes: header.attributes.clone(),
        };
        if let Some(content) = &header.inline_content {
            return self.inline_stream(opened, header, content);
        }
        self.open.insert(
            stream_id.clone(),
            OpenStream {
                sender_sid: packet.participant_sid.clone(),
                sender_key: sender_key(packet),
                attributes: header.attributes.clone(),
                declared_length: header.total_length,
                next_chunk_index: 0,
                received_bytes: 0,
                pending: Vec::new(),
                text: String::new(),
                last_activity_ms: now_ms,
            },
        );
        vec![opened]
    }

    /// A data streams v2 single-packet stream, whose whole text rides in the header. We never
    /// send these, but a sender may if our join advertised a client protocol that allows them.
    fn inline_stream(&self, opened: TextStreamEvent, header: &Header, content: &[u8]) -> Vec<TextStreamEvent> {
        let stream_id = header.stream_id.clone();
        let limit = self.limits.max_stream_bytes;
        let full_text = String::from_utf8_lossy(content).into_owned();
        if full_text.len() > limit {
            return vec![opened, TextStreamEvent::Aborted { stream_id, reason: AbortReason::TooLarge { limit } }];
        }
        let mut events = vec![opened];
        if !full_text.is_empty() {
            events.push(TextStreamEvent::Chunk { stream_id: stream_id.clone(), text: full_text.clone() });
        }
        events.push(TextStreamEvent::Closed {
            stream_id,
            attributes: header.attributes.clone(),
            reason: String::new(),
            full_text,
        });
        events
    }

    fn at_capacity(&self, sender_key: &str) -> bool {
        self.open.len() >= self.limits.max_open_streams
            || self.open.values().filter(|stream| stream.sender_key == sender_key).count()
                >= self.limits.max_streams_per_sender
    }

    fn on_chunk(&mut self, sender_sid: &str, chunk: &Chunk, now_ms: i64) -> Vec<TextStreamEvent> {
        let limits = &self.limits;
        let buffered_bytes = self.buffered_bytes;
        let Some(stream) = self.open.get_mut(&chunk.stream_id) else {
            self.stray_packet(&chunk.stream_id, sender_sid, Some(now_ms));
            return Vec::new();
        };
        if stream.sender_sid != sender_sid {
            self.stats.orphan_packets += 1;
            return Vec::new();
        }
        if chunk.chunk_index < stream.next_chunk_index {
            self.stats.duplicate_chunks += 1;
            return Vec::new();
        }
        let mut text = String::new();
        let received = stream.received_bytes.saturating_add(chunk.content.len() as u64);
        let failure = if chunk.chunk_index > stream.next_chunk_index {
            Some(AbortReason::MissingChunk { expected: stream.next_chunk_index, received: chunk.chunk_index })
        } else if let Some(declared) = stream.declared_length
            && received > declared
        {
            Some(AbortReason::LengthMismatch { declared, received })
        } else {
            // Limits apply to the decoded text because replacement characters can triple the
            // size of invalid input.
            stream.pending.extend_from_slice(&chunk.content);
            drain_utf8(&mut stream.pending, &mut text);
            if stream.text.len() + stream.pending.len() + text.len() > limits.max_stream_bytes {
                Some(AbortReason::TooLarge { limit: limits.max_stream_bytes })
            } else if buffered_bytes + text.len() > limits.max_buffered_bytes {
                Some(AbortReason::BufferFull { limit: limits.max_buffered_bytes })
            } else {
                None
            }
        };
        if let Some(reason) = failure {
            return self.abort(&chunk.stream_id, reason, Some(now_ms)).into_iter().collect();
        }

        stream.next_chunk_index += 1;
        stream.received_bytes = received;
        stream.last_activity_ms = now_ms;
        stream.text.push_str(&text);
        self.buffered_bytes += text.len();
        if text.is_empty() {
            return Vec::new();
        }
        vec![TextStreamEvent::Chunk { stream_id: chunk.stream_id.clone(), text }]
    }

    fn on_trailer(&mut self, sender_sid: &str, trailer: &Trailer) -> Vec<TextStreamEvent> {
        let stream_id = &trailer.stream_id;
        let mut stream = match self.open.remove(stream_id) {
            None => {
                self.stray_packet(stream_id, sender_sid, None);
                return Vec::new();
            }
            Some(stream) if stream.sender_sid != sender_sid => {
                self.open.insert(stream_id.clone(), stream);
                self.stats.orphan_packets += 1;
                return Vec::new();
            }
            Some(stream) => stream,
        };
        self.buffered_bytes = self.buffered_bytes.saturating_sub(stream.text.len());
        if let Some(declared) = stream.declared_length
            && declared != stream.received_bytes
        {
            let reason = AbortReason::LengthMismatch { declared, received: stream.received_bytes };
            return vec![TextStreamEvent::Aborted { stream_id: stream_id.clone(), reason }];
        }

        let mut events = Vec::new();
        if !stream.pending.is_empty() {
            let tail = String::from_utf8_lossy(&stream.pending).into_owned();
            stream.text.push_str(&tail);
            events.push(TextStreamEvent::Chunk { stream_id: stream_id.clone(), text: tail });
        }
        stream.attributes.extend(trailer.attributes.iter().map(|(key, value)| (key.clone(), value.clone())));
        events.push(TextStreamEvent::Closed {
            stream_id: stream_id.clone(),
            attributes: stream.attributes,
            reason: trailer.reason.clone(),
            full_text: stream.text,
        });
        events
    }

    /// Counts a chunk (`now_ms` set) or trailer (`None`) that belongs to no open stream, keeping
    /// an ignored stream's entry alive while it is still sending and dropping it at its trailer.
    fn stray_packet(&mut self, stream_id: &str, sender_sid: &str, now_ms: Option<i64>) {
        match self.ignored.get_mut(stream_id) {
            Some(stream) if stream.sender_sid == sender_sid => {
                self.stats.ignored_packets += 1;
                match now_ms {
                    Some(now_ms) => stream.last_activity_ms = now_ms,
                    None => {
                        self.ignored.remove(stream_id);
                    }
                }
            }
            _ => self.stats.orphan_packets += 1,
        }
    }

    /// Closes an open stream as aborted. With `remember_at`, the rest of its packets are
    /// expected and will be dropped as ignored rather than counted as orphans.
    fn abort(&mut self, stream_id: &str, reason: AbortReason, remember_at: Option<i64>) -> Option<TextStreamEvent> {
        let stream = self.open.remove(stream_id)?;
        self.buffered_bytes = self.buffered_bytes.saturating_sub(stream.text.len());
        if let Some(now_ms) = remember_at {
            self.remember_ignored(stream_id, &stream.sender_sid, now_ms);
        }
        Some(TextStreamEvent::Aborted { stream_id: stream_id.to_owned(), reason })
    }

    /// The ignored set is capped like the open one; past the cap a stream's later packets are
    /// merely counted as orphans.
    fn remember_ignored(&mut self, stream_id: &str, sender_sid: &str, now_ms: i64) {
        if self.ignored.len() < self.limits.max_open_streams {
            self.ignored.insert(
                stream_id.to_owned(),
                IgnoredStream { sender_sid: sender_sid.to_owned(), last_activity_ms: now_ms },
            );
        }
    }
}

/// Who a stream counts against for the per-sender cap: the session sid the SFU stamped, or the
/// identity where there is no sid.
fn sender_key(packet: &DataPacket) -> String {
    if packet.participant_sid.is_empty() { &packet.participant_identity } else { &packet.participant_sid }.clone()
}

/// Moves the decodable text of `pending` into `out`, leaving in `pending` only the start of a
/// character that the next chunk may complete. Invalid sequences become U+FFFD, as JS
/// receivers' `TextDecoder` would make them, instead of failing the stream.
fn drain_utf8(pending: &mut Vec<u8>, out: &mut String) {
    let mut consumed = 0;
    for piece in pending.utf8_chunks() {
        out.push_str(piece.valid());
        consumed += piece.valid().len();
        let invalid = piece.invalid();
        if invalid.is_empty() {
            continue;
        }
        let at_end = consumed + invalid.len() == pending.len();
        let incomplete = std::str::from_utf8(invalid).is_err_and(|error| error.error_len().is_none());
        if at_end && incomplete {
            break;
        }
        out.push(char::REPLACEMENT_CHARACTER);
        consumed += invalid.len();
    }
    pending.drain(..consumed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::livekit::data::codec::{decode, encode};
    use crate::livekit::data::text_out::{
        ATTR_SEGMENT_ID, ATTR_TRANSCRIPTION_FINAL, STREAM_CHUNK_SIZE_BYTES, TextStreamWriter, text_stream_packets,
        user_transcript_packets,
    };
    use livekit_protocol::data_stream::{ByteHeader, TextHeader};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const AGENT_SID: &str = "PA_agent";

    /// Packets as the SFU forwards them: sender sid and identity stamped, identity left alone on
    /// a header that names someone else.
    fn forwarded(mut packet: DataPacket, sid: &str, identity: &str) -> DataPacket {
        packet.participant_sid = sid.to_owned();
        if packet.participant_identity.is_empty() {
            packet.participant_identity = identity.to_owned();
        }
        packet
    }

    fn header(stream_id: &str, content_header: Option<ContentHeader>) -> DataPacket {
        let header = Header {
            stream_id: stream_id.into(),
            topic: "chat".into(),
            mime_type: "text/plain".into(),
            content_header,
            ..Default::default()
        };
        forwarded(DataPacket { value: Some(Value::StreamHeader(header)), ..Default::default() }, "PA_bob", "bob")
    }

    fn text_header(stream_id: &str) -> DataPacket {
        header(stream_id, Some(ContentHeader::TextHeader(TextHeader::default())))
    }

    fn chunk(stream_id: &str, chunk_index: u64, content: &[u8]) -> DataPacket {
        let chunk = Chunk { stream_id: stream_id.into(), chunk_index, content: content.to_vec(), ..Default::default() };
        forwarded(DataPacket { value: Some(Value::StreamChunk(chunk)), ..Default::default() }, "PA_bob", "bob")
    }

    fn trailer(stream_id: &str, attributes: &[(&str, &str)]) -> DataPacket {
        let trailer = Trailer {
            stream_id: stream_id.into(),
            attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        };
        forwarded(DataPacket { value: Some(Value::StreamTrailer(trailer)), ..Default::default() }, "PA_bob", "bob")
    }

    fn push_all(assembler: &mut TextStreamAssembler, packets: &[DataPacket]) -> Vec<TextStreamEvent> {
        packets.iter().flat_map(|packet| assembler.push(packet, 0)).collect()
    }

    fn closed_text(events: &[TextStreamEvent]) -> Option<&str> {
        events.iter().find_map(|event| match event {
            TextStreamEvent::Closed { full_text, .. } => Some(full_text.as_str()),
            _ => None,
        })
    }

    fn chunk_texts(events: &[TextStreamEvent]) -> String {
        events
            .iter()
            .filter_map(|event| match event {
                TextStreamEvent::Chunk { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn forty_kilobytes_of_hindi_survive_the_round_trip() {
        let sentence = "नमस्ते! आज मौसम बहुत अच्छा है, चलिए बाहर घूमने चलते हैं। ";
        let text = sentence.repeat(40_000 / sentence.len() + 1);
        assert!(text.len() >= 40_000);

        let mut writer = TextStreamWriter::new("chat", HashMap::new(), 1, "stream-hi");
        let mut packets = vec![writer.header_packet(None)];
        packets.extend(writer.write(&text));
        packets.push(writer.trailer(HashMap::new()));

        let chunk_sizes: Vec<usize> = packets
            .iter()
            .filter_map(|packet| match &packet.value {
                Some(Value::StreamChunk(chunk)) => Some(chunk.content.len()),
                _ => None,
            })
            .collect();
        assert!(chunk_sizes.len() >= 3, "{chunk_sizes:?}");
        assert!(chunk_sizes.iter().all(|&size| size <= STREAM_CHUNK_SIZE_BYTES));

        let mut assembler = TextStreamAssembler::default();
        let mut events = Vec::new();
        for packet in &packets {
            let received = forwarded(decode(&encode(packet)).unwrap(), AGENT_SID, "agent");
            events.extend(assembler.push(&received, 0));
        }
        assert!(matches!(&events[0], TextStreamEvent::Opened { stream_id, sender_identity, .. }
            if stream_id == "stream-hi" && sender_identity == "agent"));
        assert_eq!(closed_text(&events), Some(text.as_str()));
        assert_eq!(chunk_texts(&events), text);
        assert_eq!(assembler.open_streams(), 0);
        assert_eq!(assembler.stats(), &AssemblerStats::default());
    }

    #[test]
    fn a_character_split_across_chunks_is_delivered_whole() {
        let text = "कि😀";
        let bytes = text.as_bytes();
        let mut assembler = TextStreamAssembler::default();
        let events = push_all(
            &mut assembler,
            &[
                text_header("s"),
                chunk("s", 0, &bytes[..2]),
                chunk("s", 1, &bytes[2..4]),
                chunk("s", 2, &bytes[4..8]),
                chunk("s", 3, &bytes[8..]),
                trailer("s", &[]),
            ],
        );
        let chunks: Vec<&str> = events
            .iter()
            .filter_map(|event| match event {
                TextStreamEvent::Chunk { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(chunks, vec!["क", "ि", "😀"]);
        assert_eq!(closed_text(&events), Some(text));
    }

    #[test]
    fn random_chunking_of_multibyte_text_decodes_exactly() {
        let text = "हिन्दी 中文 😀 ascii é ".repeat(50);
        let bytes = text.as_bytes();
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..200 {
            let mut assembler = TextStreamAssembler::default();
            let id = format!("s{round}");
            let mut events = assembler.push(&text_header(&id), 0);
            let (mut at, mut index) = (0, 0);
            while at < bytes.len() {
                let end = (at + rng.random_range(1..9)).min(bytes.len());
                events.extend(assembler.push(&chunk(&id, index, &bytes[at..end]), 0));
                (at, index) = (end, index + 1);
            }
            events.extend(assembler.push(&trailer(&id, &[]), 0));
            assert_eq!(chunk_texts(&events), text);
            assert_eq!(closed_text(&events), Some(text.as_str()));
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let mut assembler = TextStreamAssembler::default();
        let events = push_all(
            &mut assembler,
            &[text_header("s"), chunk("s", 0, b"a\xffb"), chunk("s", 1, b"c\xe0\xa4"), trailer("s", &[])],
        );
        assert_eq!(closed_text(&events), Some("a\u{fffd}bc\u{fffd}"));
        assert_eq!(chunk_texts(&events), "a\u{fffd}bc\u{fffd}");
    }

    #[test]
    fn trailer_attributes_merge_over_the_header() {
        let mut packet = text_header("s");
        if let Some(Value::StreamHeader(header)) = packet.value.as_mut() {
            header.attributes = HashMap::from([
                ("lk.transcription_final".into(), "false".into()),
                ("lk.segment_id".into(), "SG_1".into()),
            ]);
        }
        let mut assembler = TextStreamAssembler::default();
        let events = push_all(
            &mut assembler,
            &[packet, chunk("s", 0, b"hi"), trailer("s", &[("lk.transcription_final", "true")])],
        );
        let Some(TextStreamEvent::Closed { attributes, reason, .. }) = events.last() else {
            panic!("not closed: {events:?}")
        };
        assert_eq!(attributes["lk.transcription_final"], "true");
        assert_eq!(attributes["lk.segment_id"], "SG_1");
        assert_eq!(reason, "");
    }

    #[test]
    fn an_abnormal_end_is_closed_with_its_reason() {
        let mut assembler = TextStreamAssembler::default();
        let mut end = trailer("s", &[]);
        if let Some(Value::StreamTrailer(trailer)) = end.value.as_mut() {
            trailer.reason = "interrupted".into();
        }
        let events = push_all(&mut assembler, &[text_header("s"), chunk("s", 0, b"par"), end]);
        assert!(matches!(events.last(), Some(TextStreamEvent::Closed { reason, full_text, .. })
            if reason == "interrupted" && full_text == "par"));
    }

    #[test]
    fn user_transcripts_are_attributed_to_the_user() {
        let mut assembler = TextStreamAssembler::default();
        let mut events = Vec::new();
        for packet in user_transcript_packets("alice", "SG_9", Some("TR_a"), "hello", true, 0, "u1") {
            events.extend(assembler.push(&forwarded(packet, AGENT_SID, "agent"), 0));
        }
        let TextStreamEvent::Opened { sender_identity, sender_sid, attributes, topic, .. } = &events[0] else {
            panic!("not opened: {events:?}")
        };
        assert_eq!(sender_identity, "alice");
        assert_eq!(sender_sid, AGENT_SID);
        assert_eq!(topic, "lk.transcription");
        assert_eq!(attributes[ATTR_SEGMENT_ID], "SG_9");
        assert_eq!(attributes[ATTR_TRANSCRIPTION_FINAL], "true");
        assert_eq!(closed_text(&events), Some("hello"));
    }

    #[test]
    fn a_whole_stream_with_a_declared_length_closes() {
        let mut assembler = TextStreamAssembler::default();
        let mut events = Vec::new();
        for packet in text_stream_packets("chat", "ok", HashMap::new(), 0, "w") {
            events.extend(assembler.push(&forwarded(packet, "PA_bob", "bob"), 0));
        }
        assert_eq!(closed_text(&events), Some("ok"));
    }

    #[test]
    fn declared_lengths_are_enforced() {
        let mut short = text_header("short");
        let mut long = text_header("long");
        for packet in [&mut short, &mut long] {
            if let Some(Value::StreamHeader(header)) = packet.value.as_mut() {
                header.total_length = Some(4);
            }
        }
        let mut assembler = TextStreamAssembler::default();
        let events = push_all(&mut assembler, &[short, chunk("short", 0, b"abc"), trailer("short", &[])]);
        assert_eq!(
            events.last(),
            Some(&TextStreamEvent::Aborted {
                stream_id: "short".into(),
                reason: AbortReason::LengthMismatch { declared: 4, received: 3 }
            })
        );
        let events = push_all(&mut assembler, &[long, chunk("long", 0, b"abcde")]);
        assert_eq!(
            events.last(),
            Some(&TextStreamEvent::Aborted {
                stream_id: "long".into(),
                reason: AbortReason::LengthMismatch { declared: 4, received: 5 }
            })
        );
        assert_eq!(assembler.open_streams(), 0);
    }

    #[test]
    fn chunks_and_trailers_of_unknown_streams_are_counted_and_dropped() {
        let mut assembler = TextStreamAssembler::default();
        assert!(assembler.push(&chunk("nope", 0, b"x"), 0).is_empty());
        assert!(assembler.push(&trailer("nope", &[]), 0).is_empty());
        assert_eq!(assembler.stats().orphan_packets, 2);
        assert_eq!(assembler.open_streams(), 0);
    }

    #[test]
    fn packets_from_another_sender_cannot_touch_a_stream() {
        let mut assembler = TextStreamAssembler::default();
        push_all(&mut assembler, &[text_header("s")]);
        let intruder_chunk = DataPacket { participant_sid: "PA_eve".into(), ..chunk("s", 0, b"x") };
        let intruder_trailer = DataPacket { participant_sid: "PA_eve".into(), ..trailer("s", &[]) };
        assert!(assembler.push(&intruder_chunk, 0).is_empty());
        assert!(assembler.push(&intruder_trailer, 0).is_empty());
        assert_eq!(assembler.stats().orphan_packets, 2);
        let events = push_all(&mut assembler, &[chunk("s", 0, b"real"), trailer("s", &[])]);
        assert_eq!(closed_text(&events), Some("real"));
    }

    #[test]
    fn duplicate_headers_and_chunks_are_dropped() {
        let mut assembler = TextStreamAssembler::default();
        let events = push_all(
            &mut assembler,
            &[text_header("s"), text_header("s"), chunk("s", 0, b"a"), chunk("s", 0, b"a"), chunk("s", 1, b"b")],
        );
        assert_eq!(events.iter().filter(|event| matches!(event, TextStreamEvent::Opened { .. })).count(), 1);
        assert_eq!(chunk_texts(&events), "ab");
        assert_eq!(assembler.stats().duplicate_headers, 1);
        assert_eq!(assembler.stats().duplicate_chunks, 1);
    }

    #[test]
    fn a_gap_in_chunk_indices_aborts_the_stream_and_silences_the_rest() {
        let mut assembler = TextStreamAssembler::default();
        let events = push_all(&mut assembler, &[text_header("s"), chunk("s", 0, b"a"), chunk("s", 2, b"c")]);
        assert_eq!(
            events.last(),
            Some(&TextStreamEvent::Aborted {
                stream_id: "s".into(),
                reason: AbortReason::MissingChunk { expected: 1, received: 2 }
            })
        );
        assert!(push_all(&mut assembler, &[chunk("s", 3, b"d"), trailer("s", &[])]).is_empty());
        assert_eq!(assembler.stats().ignored_packets, 2);
        assert_eq!(assembler.stats().orphan_packets, 0);
        assert!(assembler.ignored.is_empty(), "the trailer ends the ignored stream too");
    }

    #[test]
    fn byte_streams_are_ignored_without_buffering() {
        let mut assembler = TextStreamAssembler::default();
        let mut file = header("f", Some(ContentHeader::ByteHeader(ByteHeader { name: "a.png".into() })));
        if let Some(Value::StreamHeader(header)) = file.value.as_mut() {
            header.mime_type = "image/png".into();
        }
        let events = push_all(&mut assembler, &[file, chunk("f", 0, &[0; 1000]), trailer("f", &[])]);
        assert_eq!(
            events,
            vec![TextStreamEvent::Ignored {
                stream_id: "f".into(),
                topic: "chat".into(),
                sender_identity: "bob".into(),
                reason: IgnoreReason::NotText { mime_type: "image/png".into() },
            }]
        );
        assert_eq!(assembler.stats().ignored_packets, 2);
        assert_eq!(assembler.buffered_bytes, 0);
    }

    #[test]
    fn a_header_without_content_header_is_judged_by_mime_type() {
        let mut assembler = TextStreamAssembler::default();
        let events = push_all(&mut assembler, &[header("t", None)]);
        assert!(matches!(&events[0], TextStreamEvent::Opened { .. }));
        let mut binary = header("b", None);
        if let Some(Value::StreamHeader(header)) = binary.value.as_mut() {
            header.mime_type = "application/octet-stream".into();
        }
        let events = push_all(&mut assembler, &[binary]);
        assert!(matches!(&events[0], TextStreamEvent::Ignored { reason: IgnoreReason::NotText { .. }, .. }));
    }

    #[test]
    fn compressed_streams_are_ignored() {
        let mut packet = text_header("z");
        if let Some(Value::StreamHeader(header)) = packet.value.as_mut() {
            header.compression = CompressionType::DeflateRaw as i32;
        }
        let events = TextStreamAssembler::default().push(&packet, 0);
        assert!(matches!(&events[0], TextStreamEvent::Ignored { reason: IgnoreReason::Compressed, .. }));
    }

    #[test]
    fn inline_streams_open_and_close_at_once() {
        let mut packet = text_header("i");
        if let Some(Value::StreamHeader(header)) = packet.value.as_mut() {
            header.inline_content = Some("inline text".as_bytes().to_vec());
        }
        let mut assembler = TextStreamAssembler::default();
        let events = assembler.push(&packet, 0);
        assert_eq!(events.len(), 3);
        assert!(matches!(&events[0], TextStreamEvent::Opened { .. }));
        assert_eq!(chunk_texts(&events), "inline text");
        assert_eq!(closed_text(&events), Some("inline text"));
        assert_eq!(assembler.open_streams(), 0);
    }

    #[test]
    fn bad_stream_ids_are_ignored() {
        let mut assembler = TextStreamAssembler::default();
        for id in [String::new(), "x".repeat(MAX_STREAM_ID_BYTES + 1)] {
            let events = assembler.push(&text_header(&id), 0);
            assert!(matches!(&events[0], TextStreamEvent::Ignored { reason: IgnoreReason::BadStreamId, .. }));
        }
        assert_eq!(assembler.open_streams(), 0);
    }

    #[test]
    fn each_sender_may_open_only_so_many_streams() {
        let mut assembler = TextStreamAssembler::default();
        for n in 0..64 {
            let events = assembler.push(&text_header(&format!("s{n}")), 0);
            assert!(matches!(&events[0], TextStreamEvent::Opened { .. }));
        }
        let events = assembler.push(&text_header("s64"), 0);
        assert!(matches!(&events[0], TextStreamEvent::Ignored { reason: IgnoreReason::TooManyStreams, .. }));
        let other = forwarded(
            DataPacket { participant_identity: String::new(), participant_sid: String::new(), ..text_header("o") },
            "PA_carol",
            "carol",
        );
        assert!(matches!(&assembler.push(&other, 0)[0], TextStreamEvent::Opened { .. }));
        assert_eq!(assembler.open_streams(), 65);
    }

    #[test]
    fn the_room_may_open_only_so_many_streams() {
        let limits = AssemblerLimits { max_open_streams: 3, ..Default::default() };
        let mut assembler = TextStreamAssembler::new(limits);
        for n in 0..5 {
            let packet = DataPacket { participant_sid: format!("PA_{n}"), ..text_header(&format!("s{n}")) };
            assembler.push(&packet, 0);
        }
        assert_eq!(assembler.open_streams(), 3);
    }

    #[test]
    fn a_stream_past_its_size_limit_is_aborted() {
        let mut assembler = TextStreamAssembler::default();
        let block = vec![b'a'; STREAM_CHUNK_SIZE_BYTES];
        let mut events = assembler.push(&text_header("big"), 0);
        let mut index = 0;
        while assembler.open_streams() == 1 {
            events.extend(assembler.push(&chunk("big", index, &block), 0));
            index += 1;
        }
        assert_eq!(index, (1024 * 1024 / STREAM_CHUNK_SIZE_BYTES + 1) as u64);
        assert_eq!(
            events.last(),
            Some(&TextStreamEvent::Aborted {
                stream_id: "big".into(),
                reason: AbortReason::TooLarge { limit: 1024 * 1024 }
            })
        );
        assert_eq!(assembler.buffered_bytes, 0);
        assert!(assembler.push(&chunk("big", index, &block), 0).is_empty());
        assert_eq!(assembler.stats().ignored_packets, 1);
    }

    #[test]
    fn replacement_characters_count_against_the_size_limit() {
        let limits = AssemblerLimits { max_stream_bytes: 100, ..Default::default() };
        let mut assembler = TextStreamAssembler::new(limits);
        assembler.push(&text_header("s"), 0);
        let events = assembler.push(&chunk("s", 0, &[0xff; 40]), 0);
        assert!(matches!(&events[0], TextStreamEvent::Aborted { reason: AbortReason::TooLarge { limit: 100 }, .. }));
    }

    #[test]
    fn all_streams_together_are_capped() {
        let limits = AssemblerLimits { max_buffered_bytes: 25, ..Default::default() };
        let mut assembler = TextStreamAssembler::new(limits);
        push_all(&mut assembler, &[text_header("a"), text_header("b"), chunk("a", 0, &[b'x'; 20])]);
        let events = assembler.push(&chunk("b", 0, &[b'y'; 10]), 0);
        assert_eq!(
            events,
            vec![TextStreamEvent::Aborted { stream_id: "b".into(), reason: AbortReason::BufferFull { limit: 25 } }]
        );
        let events = push_all(&mut assembler, &[trailer("a", &[])]);
        assert_eq!(closed_text(&events).map(str::len), Some(20));
        assert_eq!(assembler.buffered_bytes, 0);
    }

    #[test]
    fn idle_streams_expire() {
        let mut assembler = TextStreamAssembler::default();
        assembler.push(&text_header("quiet"), 0);
        assembler.push(&text_header("busy"), 0);
        assembler.push(&chunk("busy", 0, b"x"), 50_000);
        assembler.push(&header("bytes", Some(ContentHeader::ByteHeader(ByteHeader::default()))), 0);
        assert!(assembler.expire(60_000).is_empty(), "exactly the timeout is not yet idle");
        assert_eq!(
            assembler.expire(60_001),
            vec![TextStreamEvent::Aborted { stream_id: "quiet".into(), reason: AbortReason::IdleTimeout }]
        );
        assert!(assembler.ignored.is_empty());
        assert_eq!(assembler.open_streams(), 1);
        assert_eq!(assembler.expire(110_001).len(), 1);
        assert_eq!(assembler.open_streams(), 0);
        assert_eq!(assembler.buffered_bytes, 0);
    }

    #[test]
    fn a_departed_sender_loses_its_streams() {
        let mut assembler = TextStreamAssembler::default();
        assembler.push(&text_header("b1"), 0);
        assembler.push(&DataPacket { participant_sid: "PA_c".into(), ..text_header("c1") }, 0);
        assert_eq!(
            assembler.forget_sender("PA_bob"),
            vec![TextStreamEvent::Aborted { stream_id: "b1".into(), reason: AbortReason::SenderLeft }]
        );
        assert_eq!(assembler.open_streams(), 1);
    }

    #[test]
    fn other_packets_pass_through_without_events() {
        let mut assembler = TextStreamAssembler::default();
        assert!(assembler.push(&DataPacket::default(), 0).is_empty());
        assert_eq!(assembler.stats(), &AssemblerStats::default());
    }

    #[test]
    fn random_bytes_fed_through_decode_and_the_assembler_never_panic() {
        let mut rng = StdRng::seed_from_u64(99);
        let mut assembler = TextStreamAssembler::default();
        let seeds: Vec<Vec<u8>> = [text_header("s"), chunk("s", 0, "नमस्ते".as_bytes()), trailer("s", &[("k", "v")])]
            .iter()
            .map(encode)
            .collect();
        for round in 0..30_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                let len = rng.random_range(0..256);
                (0..len).map(|_| rng.random()).collect()
            } else {
                let mut bytes = seeds[rng.random_range(0..seeds.len())].clone();
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
                bytes
            };
            if let Ok(packet) = decode(&bytes) {
                assembler.push(&packet, round);
            }
            if round % 1000 == 0 {
                assembler.expire(round);
            }
        }
        assert!(assembler.open_streams() <= AssemblerLimits::default().max_open_streams);
    }
}
