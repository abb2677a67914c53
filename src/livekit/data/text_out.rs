//! Outgoing text streams, in the header / chunks / trailer form of data streams v1.
//!
//! v1 is the form every LiveKit client understands; the v2 shortcuts (a payload inline in the
//! header, deflate compression) are only safe towards clients that advertise support for them,
//! so they are never used here. Packets are built reliable with sequence 0 and no sender
//! identity: the SFU stamps the identity, and the caller stamps sequences as it sends.

use std::collections::HashMap;

use livekit_protocol::DataPacket;
use livekit_protocol::data_packet::Value;
use livekit_protocol::data_stream::header::ContentHeader;
use livekit_protocol::data_stream::{Chunk, Header, OperationType, TextHeader, Trailer};

/// Most content bytes in one chunk, as every LiveKit SDK uses (`STREAM_CHUNK_SIZE_BYTES`): it
/// keeps a chunk packet under the ~16 KiB data-channel MTU with room for framing and encryption.
pub const STREAM_CHUNK_SIZE_BYTES: usize = 15_000;

/// The MIME type LiveKit SDKs give text streams.
pub const TEXT_MIME_TYPE: &str = "text/plain";

/// Topic on which clients listen for transcripts of everyone's speech.
pub const TOPIC_TRANSCRIPTION: &str = "lk.transcription";

/// Header or trailer attribute: `"true"` once a transcript segment will not change any more.
pub const ATTR_TRANSCRIPTION_FINAL: &str = "lk.transcription_final";

/// Header attribute naming the transcript segment, so clients can replace interim text in place.
pub const ATTR_SEGMENT_ID: &str = "lk.segment_id";

/// Header or trailer attribute: the sid of the audio track whose speech was transcribed, which
/// clients use to tell whose words these are.
pub const ATTR_TRANSCRIBED_TRACK_ID: &str = "lk.transcribed_track_id";

/// A fresh stream id in the random-UUID form the SDKs use.
pub fn new_stream_id() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

/// A fresh transcript segment id in the `SG_` + 12 hex digits form livekit/agents uses.
pub fn new_segment_id() -> String {
    format!("SG_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// One outgoing text stream: a header, any number of chunk writes, then a trailer.
///
/// Chunk indices run on across [`write`](Self::write) calls, and `trailer` takes the writer by
/// value so that nothing can be written after the stream is closed.
#[derive(Debug)]
pub struct TextStreamWriter {
    stream_id: String,
    topic: String,
    attributes: HashMap<String, String>,
    timestamp_ms: i64,
    destination_identities: Vec<String>,
    total_length: Option<u64>,
    next_chunk_index: u64,
}

impl TextStreamWriter {
    /// A stream on `topic` whose header carries `attributes`. `now_ms` (Unix milliseconds) and
    /// `stream_id` come from the caller to keep this type free of clocks and randomness; see
    /// [`new_stream_id`].
    pub fn new(
        topic: impl Into<String>,
        attributes: HashMap<String, String>,
        now_ms: i64,
        stream_id: impl Into<String>,
    ) -> Self {
        Self {
            stream_id: stream_id.into(),
            topic: topic.into(),
            attributes,
            timestamp_ms: now_ms,
            destination_identities: Vec::new(),
            total_length: None,
            next_chunk_index: 0,
        }
    }

    /// Restricts every packet of the stream to these participants; by default it goes to all.
    pub fn with_destinations(mut self, destination_identities: Vec<String>) -> Self {
        self.destination_identities = destination_identities;
        self
    }

    /// The id receivers will know this stream by.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// The header packet, to send before any chunk.
    ///
    /// `sender_identity_override` attributes the stream to another participant; the SFU honours
    /// it only from agents and only on text stream headers (livekit/livekit
    /// `pkg/rtc/participant.go`), which is how an agent publishes a user's transcript as theirs.
    /// Such a header is marked `generated`, as the SFU would mark it.
    pub fn header_packet(&self, sender_identity_override: Option<&str>) -> DataPacket {
        let header = Header {
            stream_id: self.stream_id.clone(),
            timestamp: self.timestamp_ms,
            topic: self.topic.clone(),
            mime_type: TEXT_MIME_TYPE.to_owned(),
            total_length: self.total_length,
            attributes: self.attributes.clone(),
            content_header: Some(ContentHeader::TextHeader(TextHeader {
                operation_type: OperationType::Create as i32,
                generated: sender_identity_override.is_some(),
                ..Default::default()
            })),
            ..Default::default()
        };
        DataPacket {
            participant_identity: sender_identity_override.unwrap_or_default().to_owned(),
            ..self.packet(Value::StreamHeader(header))
        }
    }

    /// Chunk packets carrying `text`, none over [`STREAM_CHUNK_SIZE_BYTES`] and each split on a
    /// character boundary, because JS receivers decode every chunk on its own. Empty text
    /// produces no packet.
    pub fn write(&mut self, text: &str) -> Vec<DataPacket> {
        split_at_char_boundaries(text, STREAM_CHUNK_SIZE_BYTES)
            .map(|piece| {
                let chunk = Chunk {
                    stream_id: self.stream_id.clone(),
                    chunk_index: self.next_chunk_index,
                    content: piece.as_bytes().to_vec(),
                    ..Default::default()
                };
                self.next_chunk_index += 1;
                self.packet(Value::StreamChunk(chunk))
            })
            .collect()
    }

    /// The trailer that closes the stream normally. Receivers merge `attributes` over the
    /// header's, which is how a transcript is marked final once its text is complete.
    pub fn trailer(self, attributes: HashMap<String, String>) -> DataPacket {
        let trailer = Trailer { stream_id: self.stream_id.clone(), reason: String::new(), attributes };
        self.packet(Value::StreamTrailer(trailer))
    }

    fn packet(&self, value: Value) -> DataPacket {
        DataPacket {
            destination_identities: self.destination_identities.clone(),
            value: Some(value),
            ..Default::default()
        }
    }
}

/// Pieces of `text` of at most `max_bytes` each (a single character longer than that stays
/// whole), never splitting a character.
fn split_at_char_boundaries(text: &str, max_bytes: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = max_bytes.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// All packets of a short, complete text stream: header, chunks, trailer. Unlike an incremental
/// stream the length is known, so the header declares it and receivers can check completeness.
pub fn text_stream_packets(
    topic: impl Into<String>,
    text: &str,
    attributes: HashMap<String, String>,
    now_ms: i64,
    stream_id: impl Into<String>,
) -> Vec<DataPacket> {
    let mut writer = TextStreamWriter::new(topic, attributes, now_ms, stream_id);
    writer.total_length = Some(text.len() as u64);
    let mut packets = vec![writer.header_packet(None)];
    packets.extend(writer.write(text));
    packets.push(writer.trailer(HashMap::new()));
    packets
}

fn transcript_attributes(segment_id: &str, track_id: Option<&str>, is_final: bool) -> HashMap<String, String> {
    let mut attributes = HashMap::from([
        (ATTR_TRANSCRIPTION_FINAL.to_owned(), is_final.to_string()),
        (ATTR_SEGMENT_ID.to_owned(), segment_id.to_owned()),
    ]);
    if let Some(track_id) = track_id {
        attributes.insert(ATTR_TRANSCRIBED_TRACK_ID.to_owned(), track_id.to_owned());
    }
    attributes
}

/// The agent's own speech as one incremental transcript stream per segment, the way livekit/agents
/// publishes it (`_ParticipantStreamTranscriptionOutput` with delta streams): the header says
/// not final, each text delta becomes chunks, and the trailer flips the segment to final.
#[derive(Debug)]
pub struct AgentTranscript {
    writer: TextStreamWriter,
    track_id: Option<String>,
}

impl AgentTranscript {
    /// Opens the segment and returns its header packet. `track_id` is the agent's audio track,
    /// when it has published one.
    pub fn open(
        segment_id: &str,
        track_id: Option<&str>,
        now_ms: i64,
        stream_id: impl Into<String>,
    ) -> (Self, DataPacket) {
        let attributes = transcript_attributes(segment_id, track_id, false);
        let writer = TextStreamWriter::new(TOPIC_TRANSCRIPTION, attributes, now_ms, stream_id);
        let header = writer.header_packet(None);
        (Self { writer, track_id: track_id.map(str::to_owned) }, header)
    }

    /// Chunk packets for the next piece of text (a delta, not the text so far).
    pub fn push(&mut self, delta: &str) -> Vec<DataPacket> {
        self.writer.write(delta)
    }

    /// The trailer marking the segment final, sent also when speech was interrupted, since the
    /// text pushed so far is then all there will be.
    pub fn finish(self) -> DataPacket {
        let mut attributes = HashMap::from([(ATTR_TRANSCRIPTION_FINAL.to_owned(), "true".to_owned())]);
        if let Some(track_id) = self.track_id {
            attributes.insert(ATTR_TRANSCRIBED_TRACK_ID.to_owned(), track_id);
        }
        self.writer.trailer(attributes)
    }
}

/// A transcript of the user's speech, attributed to the user: one short stream holding the
/// whole segment text so far, as livekit/agents sends for each interim and final recognition
/// result (non-delta streams). Streams of one segment share `segment_id`, and the last one has
/// `is_final` set in its header. Only the header can carry the user's identity; the SFU stamps
/// the agent's on the chunks and trailer.
pub fn user_transcript_packets(
    user_identity: &str,
    segment_id: &str,
    track_id: Option<&str>,
    text: &str,
    is_final: bool,
    now_ms: i64,
    stream_id: impl Into<String>,
) -> Vec<DataPacket> {
    let attributes = transcript_attributes(segment_id, track_id, is_final);
    let mut writer = TextStreamWriter::new(TOPIC_TRANSCRIPTION, attributes, now_ms, stream_id);
    let mut packets = vec![writer.header_packet(Some(user_identity))];
    packets.extend(writer.write(text));
    packets.push(writer.trailer(HashMap::new()));
    packets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(packet: &DataPacket) -> &Header {
        match &packet.value {
            Some(Value::StreamHeader(header)) => header,
            other => panic!("expected a header, got {other:?}"),
        }
    }

    fn chunk_of(packet: &DataPacket) -> &Chunk {
        match &packet.value {
            Some(Value::StreamChunk(chunk)) => chunk,
            other => panic!("expected a chunk, got {other:?}"),
        }
    }

    fn trailer_of(packet: &DataPacket) -> &Trailer {
        match &packet.value {
            Some(Value::StreamTrailer(trailer)) => trailer,
            other => panic!("expected a trailer, got {other:?}"),
        }
    }

    fn text_header_of(packet: &DataPacket) -> &TextHeader {
        match &header_of(packet).content_header {
            Some(ContentHeader::TextHeader(text)) => text,
            other => panic!("expected a text header, got {other:?}"),
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_header_is_a_plain_v1_text_header() {
        let writer = TextStreamWriter::new("chat", attrs(&[("a", "1")]), 1_700_000_000_000, "sid-1");
        let packet = writer.header_packet(None);
        assert!(packet.participant_identity.is_empty());
        assert_eq!(packet.sequence, 0);
        let header = header_of(&packet);
        assert_eq!(header.stream_id, "sid-1");
        assert_eq!(header.timestamp, 1_700_000_000_000);
        assert_eq!(header.topic, "chat");
        assert_eq!(header.mime_type, "text/plain");
        assert_eq!(header.total_length, None);
        assert_eq!(header.attributes, attrs(&[("a", "1")]));
        assert_eq!(header.inline_content, None);
        assert_eq!(header.compression, 0);
        let text = text_header_of(&packet);
        assert_eq!(text.operation_type, OperationType::Create as i32);
        assert!(!text.generated);
    }

    #[test]
    fn long_text_is_chunked_on_character_boundaries_with_running_indices() {
        let hindi = "नमस्ते दुनिया, यह एक परीक्षण है। ";
        let text = hindi.repeat(40_000 / hindi.len() + 1);
        let mut writer = TextStreamWriter::new("t", HashMap::new(), 0, "s");
        let first = writer.write(&text);
        let second = writer.write("और");
        assert!(first.len() >= 3);
        let mut rebuilt = Vec::new();
        for (index, packet) in first.iter().chain(&second).enumerate() {
            let chunk = chunk_of(packet);
            assert_eq!(chunk.chunk_index, index as u64);
            assert_eq!(chunk.stream_id, "s");
            assert!(chunk.content.len() <= STREAM_CHUNK_SIZE_BYTES);
            assert!(std::str::from_utf8(&chunk.content).is_ok(), "chunk {index} splits a character");
            rebuilt.extend_from_slice(&chunk.content);
        }
        assert_eq!(rebuilt, format!("{text}और").into_bytes());
    }

    #[test]
    fn empty_writes_send_nothing() {
        let mut writer = TextStreamWriter::new("t", HashMap::new(), 0, "s");
        assert!(writer.write("").is_empty());
        assert_eq!(chunk_of(&writer.write("x")[0]).chunk_index, 0);
    }

    #[test]
    fn splitting_never_cuts_a_character() {
        let text = "aनb😀c";
        let pieces: Vec<&str> = split_at_char_boundaries(text, 4).collect();
        assert_eq!(pieces, vec!["aन", "b", "😀", "c"]);
        let tiny: Vec<&str> = split_at_char_boundaries("न😀", 1).collect();
        assert_eq!(tiny, vec!["न", "😀"], "a character wider than the limit stays whole");
        assert_eq!(split_at_char_boundaries("", 4).count(), 0);
    }

    #[test]
    fn the_trailer_closes_normally_with_its_attributes() {
        let writer = TextStreamWriter::new("t", HashMap::new(), 0, "s").with_destinations(vec!["bob".into()]);
        let packet = writer.trailer(attrs(&[("k", "v")]));
        assert_eq!(packet.destination_identities, vec!["bob".to_owned()]);
        let trailer = trailer_of(&packet);
        assert_eq!(trailer.stream_id, "s");
        assert_eq!(trailer.reason, "");
        assert_eq!(trailer.attributes, attrs(&[("k", "v")]));
    }

    #[test]
    fn destinations_apply_to_every_packet() {
        let mut writer = TextStreamWriter::new("t", HashMap::new(), 0, "s").with_destinations(vec!["bob".into()]);
        assert_eq!(writer.stream_id(), "s");
        assert_eq!(writer.header_packet(None).destination_identities, vec!["bob".to_owned()]);
        assert_eq!(writer.write("x")[0].destination_identities, vec!["bob".to_owned()]);
    }

    #[test]
    fn a_whole_stream_declares_its_length() {
        let packets = text_stream_packets("chat", "héllo", attrs(&[("x", "y")]), 5, "s");
        assert_eq!(packets.len(), 3);
        assert_eq!(header_of(&packets[0]).total_length, Some("héllo".len() as u64));
        assert_eq!(chunk_of(&packets[1]).content, "héllo".as_bytes());
        assert!(trailer_of(&packets[2]).attributes.is_empty());
    }

    #[test]
    fn agent_transcripts_open_not_final_and_finish_final() {
        let (mut transcript, header) = AgentTranscript::open("SG_1", Some("TR_agent"), 9, "s");
        let header = header_of(&header);
        assert_eq!(header.topic, TOPIC_TRANSCRIPTION);
        assert_eq!(
            header.attributes,
            attrs(&[
                (ATTR_TRANSCRIPTION_FINAL, "false"),
                (ATTR_SEGMENT_ID, "SG_1"),
                (ATTR_TRANSCRIBED_TRACK_ID, "TR_agent")
            ])
        );
        let first = transcript.push("Hello ");
        let second = transcript.push("there.");
        assert_eq!(chunk_of(&first[0]).content, b"Hello ");
        assert_eq!(chunk_of(&second[0]).chunk_index, 1);
        let trailer = transcript.finish();
        assert_eq!(
            trailer_of(&trailer).attributes,
            attrs(&[(ATTR_TRANSCRIPTION_FINAL, "true"), (ATTR_TRANSCRIBED_TRACK_ID, "TR_agent")])
        );
    }

    #[test]
    fn agent_transcripts_without_a_track_omit_the_track_attribute() {
        let (transcript, header) = AgentTranscript::open("SG_2", None, 0, "s");
        assert!(!header_of(&header).attributes.contains_key(ATTR_TRANSCRIBED_TRACK_ID));
        assert_eq!(trailer_of(&transcript.finish()).attributes, attrs(&[(ATTR_TRANSCRIPTION_FINAL, "true")]));
    }

    #[test]
    fn user_transcripts_are_header_chunk_trailer_attributed_to_the_user() {
        let packets = user_transcript_packets("alice", "SG_u", Some("TR_alice"), "hello wor", false, 3, "s");
        assert_eq!(packets.len(), 3);
        assert_eq!(packets[0].participant_identity, "alice");
        assert!(text_header_of(&packets[0]).generated);
        assert_eq!(
            header_of(&packets[0]).attributes,
            attrs(&[
                (ATTR_TRANSCRIPTION_FINAL, "false"),
                (ATTR_SEGMENT_ID, "SG_u"),
                (ATTR_TRANSCRIBED_TRACK_ID, "TR_alice")
            ])
        );
        assert_eq!(chunk_of(&packets[1]).content, b"hello wor");
        assert!(packets[1].participant_identity.is_empty(), "the SFU stamps the agent on chunks");
        assert!(trailer_of(&packets[2]).attributes.is_empty());
        assert!(packets[2].participant_identity.is_empty());

        let last = user_transcript_packets("alice", "SG_u", Some("TR_alice"), "hello world", true, 4, "s2");
        assert_eq!(header_of(&last[0]).attributes[ATTR_TRANSCRIPTION_FINAL], "true");
        assert_eq!(header_of(&last[0]).attributes[ATTR_SEGMENT_ID], "SG_u");
    }

    #[test]
    fn ids_have_the_sdk_shapes() {
        let id = new_stream_id();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version(), Some(uuid::Version::Random));
        assert_ne!(new_stream_id(), id);
        let segment = new_segment_id();
        assert_eq!(segment.len(), 15);
        assert!(segment.starts_with("SG_"));
        assert!(segment[3..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
