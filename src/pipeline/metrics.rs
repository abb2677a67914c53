//! What each turn of a call took, logged as one structured line and kept for the call record.

use std::time::Duration;

use serde::Serialize;

/// Milliseconds of each stage of one turn; `None` where the stage did not happen.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TurnMetrics {
    /// From the caller's last speech to the end of turn being decided.
    pub end_of_utterance_ms: Option<u64>,
    /// From the end of turn to the transcript.
    pub stt_ms: Option<u64>,
    /// From the request to the model's first token.
    pub llm_first_token_ms: Option<u64>,
    /// From the first sentence sent to speech synthesis to its first audio.
    pub tts_first_audio_ms: Option<u64>,
    /// From the caller's last speech to the first packet of our answer leaving.
    pub voice_to_voice_ms: Option<u64>,
    /// The caller cut the answer off.
    pub interrupted: bool,
}

impl TurnMetrics {
    /// The `turn` log line operators read latencies from; `turn` counts from 1.
    pub fn log(&self, turn: usize) {
        tracing::info!(
            turn,
            end_of_utterance_ms = self.end_of_utterance_ms,
            stt_ms = self.stt_ms,
            llm_first_token_ms = self.llm_first_token_ms,
            tts_first_audio_ms = self.tts_first_audio_ms,
            voice_to_voice_ms = self.voice_to_voice_ms,
            interrupted = self.interrupted,
            "turn"
        );
    }
}

/// Whole milliseconds, as the record and the log carry them; `None` beyond u64.
pub fn millis(duration: Duration) -> Option<u64> {
    u64::try_from(duration.as_millis()).ok()
}
