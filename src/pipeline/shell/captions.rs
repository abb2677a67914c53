//! Captions as LiveKit's clients read them: text streams on `lk.transcription`, one segment per
//! user turn (each update a whole stream with the words so far) and one incremental stream per
//! agent speech (its words as they play).

use std::collections::HashMap;

use livekit_protocol::DataPacket;

use crate::livekit::data::{AgentTranscript, new_segment_id, new_stream_id, user_transcript_packets};

#[derive(Default)]
pub(super) struct Captions {
    /// Segment ids of user turns still being captioned.
    users: HashMap<u64, String>,
    agents: HashMap<u64, AgentTranscript>,
}

impl Captions {
    /// The caller's words so far in `turn`; `last` marks them final.
    pub fn user(&mut self, turn: u64, identity: &str, track: &str, text: &str, last: bool) -> Vec<DataPacket> {
        let segment = if last {
            self.users.remove(&turn).unwrap_or_else(new_segment_id)
        } else {
            self.users.entry(turn).or_insert_with(new_segment_id).clone()
        };
        user_transcript_packets(identity, &segment, Some(track), text, last, now_ms(), new_stream_id())
    }

    /// More heard words of the agent's speech `speech`, opening its stream on the first.
    pub fn agent(&mut self, speech: u64, track: Option<&str>, text: &str) -> Vec<DataPacket> {
        let mut packets = Vec::new();
        let caption = self.agents.entry(speech).or_insert_with(|| {
            let (caption, header) = AgentTranscript::open(&new_segment_id(), track, now_ms(), new_stream_id());
            packets.push(header);
            caption
        });
        packets.extend(caption.push(text));
        packets
    }

    /// The speech is over: its stream closes, final.
    pub fn agent_end(&mut self, speech: u64) -> Vec<DataPacket> {
        self.agents.remove(&speech).map(AgentTranscript::finish).into_iter().collect()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
