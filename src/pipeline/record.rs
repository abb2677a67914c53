//! What a call leaves behind for n8n: who called, when, everything said (with the agent's
//! interrupted answers marked), the lead learned, how fast each turn was, and why it ended.
//!
//! The shape is a contract with the users' n8n workflows (`n8n/README.md` maps its fields), so
//! fields are only ever added, and `record_version` says which shape this is.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::metrics::TurnMetrics;
use crate::providers::usage::UsageSummary;
use crate::worker::EndReason;

/// 2 added `usage`.
pub const RECORD_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CallRecord {
    pub record_version: u32,
    /// The LiveKit job id: unique per call, and the record's idempotency key.
    pub call_id: String,
    pub room: String,
    pub agent_id: String,
    pub language: String,
    pub voice: String,
    pub started_at: String,
    pub ended_at: String,
    pub duration_seconds: f64,
    pub caller: Option<Caller>,
    pub end_reason: EndReason,
    pub transcript: Vec<Line>,
    /// The lead fields captured, by name.
    pub lead: BTreeMap<String, String>,
    /// Required lead fields the agent did not get.
    pub lead_missing: Vec<String>,
    pub latency: LatencySummary,
    pub turns: Vec<TurnMetrics>,
    /// What each provider and model was used for, and the estimated cost.
    pub usage: UsageSummary,
    /// What the profile's `[analysis]` asked to learn about the call; absent when it asks for
    /// nothing, or when the analysis failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<serde_json::Value>,
    /// Why a call the profile wanted analysed has no `analysis`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_error: Option<String>,
}

/// Who called, as the room knows them (personal data: kept out of logs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Caller {
    /// The participant identity from the caller's token.
    pub identity: String,
    /// The display name they gave; may be empty.
    pub name: String,
}

/// Who said a line; serialized as `caller` / `agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    /// The person who called.
    Caller,
    /// Our agent.
    Agent,
}

/// One turn of the conversation as it was heard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// Who said it.
    pub speaker: Speaker,
    /// The words, trimmed.
    pub text: String,
    /// When the words began (RFC 3339, milliseconds).
    pub at: String,
    /// An agent answer the caller cut off: `text` is only the part that was played.
    pub interrupted: bool,
    /// The caller typed these words (LiveKit chat) instead of saying them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub typed: bool,
}

impl Line {
    /// A spoken line that began at `at_ms` (Unix milliseconds).
    pub fn new(speaker: Speaker, text: &str, at_ms: i64, interrupted: bool) -> Self {
        Self { speaker, text: text.trim().to_owned(), at: timestamp(at_ms), interrupted, typed: false }
    }

    /// Words the caller typed.
    pub fn typed(text: &str, at_ms: i64) -> Self {
        Self { typed: true, ..Self::new(Speaker::Caller, text, at_ms, false) }
    }
}

/// The turn figures of the call in a few numbers, for dashboards that do not want every turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct LatencySummary {
    pub answered_turns: usize,
    pub interrupted_turns: usize,
    pub voice_to_voice_ms: Percentiles,
    pub stt_ms: Percentiles,
    pub llm_first_token_ms: Percentiles,
    pub tts_first_audio_ms: Percentiles,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Percentiles {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub max: Option<u64>,
}

impl LatencySummary {
    pub fn of(turns: &[TurnMetrics]) -> Self {
        Self {
            answered_turns: turns.len(),
            interrupted_turns: turns.iter().filter(|t| t.interrupted).count(),
            voice_to_voice_ms: Percentiles::of(turns.iter().filter_map(|t| t.voice_to_voice_ms)),
            stt_ms: Percentiles::of(turns.iter().filter_map(|t| t.stt_ms)),
            llm_first_token_ms: Percentiles::of(turns.iter().filter_map(|t| t.llm_first_token_ms)),
            tts_first_audio_ms: Percentiles::of(turns.iter().filter_map(|t| t.tts_first_audio_ms)),
        }
    }
}

impl Percentiles {
    /// Nearest-rank percentiles: each is a value some turn really had.
    fn of(values: impl Iterator<Item = u64>) -> Self {
        let mut values: Vec<u64> = values.collect();
        values.sort_unstable();
        let rank = |p: usize| values.get((values.len() * p).div_ceil(100).max(1) - 1).copied();
        Self { p50: rank(50), p95: rank(95), max: values.last().copied() }
    }
}

pub(crate) fn timestamp(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(v2v: u64, interrupted: bool) -> TurnMetrics {
        TurnMetrics { voice_to_voice_ms: Some(v2v), stt_ms: Some(v2v / 2), interrupted, ..TurnMetrics::default() }
    }

    #[test]
    fn the_summary_gives_percentiles_a_turn_really_had() {
        let turns: Vec<TurnMetrics> = (1..=20).map(|i| turn(i * 100, i == 3)).collect();
        let summary = LatencySummary::of(&turns);
        assert_eq!(summary.answered_turns, 20);
        assert_eq!(summary.interrupted_turns, 1);
        assert_eq!(summary.voice_to_voice_ms, Percentiles { p50: Some(1000), p95: Some(1900), max: Some(2000) });
        assert_eq!(summary.llm_first_token_ms, Percentiles::default(), "no figures, no numbers");
        let one = LatencySummary::of(&[turn(700, false)]);
        assert_eq!(one.voice_to_voice_ms, Percentiles { p50: Some(700), p95: Some(700), max: Some(700) });
    }

    #[test]
    fn lines_carry_readable_times_and_trimmed_words() {
        let line = Line::new(Speaker::Agent, " Hello there. ", 1_767_225_600_123, true);
        let json = serde_json::to_value(&line).expect("a line serialises");
        assert_eq!(
            json,
            serde_json::json!({"speaker": "agent", "text": "Hello there.", "at": "2026-01-01T00:00:00.123Z", "interrupted": true})
        );
    }
}
