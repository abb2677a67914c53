//! A reply while it plays: which of its words the caller has heard, the live transcript of them
//! in the room, and the figures of the turn it answers.

use std::time::{Duration, Instant};

use livekit_protocol::DataPacket;
use tokio::task::JoinHandle;

use super::metrics::{TurnMetrics, millis};
use super::playout::Playout;
use super::reply::{Progress, Stage};
use crate::livekit::data::{AgentTranscript, new_segment_id, new_stream_id};
use crate::livekit::room::LocalAudioTrack;
use crate::providers::llm::ChatMessage;

/// Why the agent speaks; only answers have turn figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Greeting,
    Answer,
    Apology,
}

/// When the stages of the answered turn happened.
#[derive(Debug, Clone, Copy)]
pub struct TurnClock {
    /// The caller's last speech frame arrived.
    pub last_speech: Instant,
    /// The end of the turn was decided.
    pub ended: Instant,
    pub stt: Duration,
    /// The model was asked.
    pub asked: Instant,
}

/// How a reply ended, for the history and the call record.
#[derive(Debug)]
pub struct Ended {
    pub purpose: Purpose,
    /// What the caller heard; the whole answer when nobody interrupted.
    pub said: String,
    pub failed: Option<Stage>,
    pub metrics: Option<TurnMetrics>,
    /// The final transcript packets (the words not yet shown and the trailer).
    pub packets: Vec<DataPacket>,
    /// The functions the model called and their results, for the history.
    pub tools: Vec<ChatMessage>,
    /// The model asked to end the call.
    pub end_call: bool,
    pub interrupted: bool,
    /// When its first words were queued (Unix ms); None if nothing was.
    pub spoke_at_ms: Option<i64>,
}

pub struct Speaking {
    pub id: u64,
    pub purpose: Purpose,
    task: JoinHandle<()>,
    playout: Playout,
    caption: Option<AgentTranscript>,
    segment_id: String,
    /// The whole text once everything is queued.
    written: Option<String>,
    failed: Option<Stage>,
    clock: Option<TurnClock>,
    metrics: TurnMetrics,
    tools: Vec<ChatMessage>,
    end_call: bool,
    spoke_at_ms: Option<i64>,
}

impl Speaking {
    pub fn new(id: u64, purpose: Purpose, task: JoinHandle<()>, clock: Option<TurnClock>) -> Self {
        let metrics = clock
            .map(|clock| TurnMetrics {
                end_of_utterance_ms: millis(clock.ended.saturating_duration_since(clock.last_speech)),
                stt_ms: millis(clock.stt),
                ..TurnMetrics::default()
            })
            .unwrap_or_default();
        Self {
            id,
            purpose,
            task,
            playout: Playout::default(),
            caption: None,
            segment_id: new_segment_id(),
            written: None,
            failed: None,
            clock,
            metrics,
            tools: Vec::new(),
            end_call: false,
            spoke_at_ms: None,
        }
    }

    /// Takes a report of the reply task; returns transcript packets to send.
    pub fn on_progress(&mut self, progress: Progress, track: &LocalAudioTrack, now_ms: i64) -> Vec<DataPacket> {
        match progress {
            Progress::FirstToken(at) => {
                if let Some(clock) = self.clock {
                    self.metrics.llm_first_token_ms = millis(at.saturating_duration_since(clock.asked));
                }
            }
            Progress::FirstAudio { synthesis } => self.metrics.tts_first_audio_ms = millis(synthesis),
            Progress::Sentence { text, start, duration } => {
                self.playout.add(&text, start, duration);
                if self.caption.is_none() {
                    let track_id = track.sid();
                    let (caption, header) =
                        AgentTranscript::open(&self.segment_id, track_id.as_deref(), now_ms, new_stream_id());
                    self.caption = Some(caption);
                    self.spoke_at_ms = Some(now_ms);
                    return vec![header];
                }
            }
            Progress::Tools { messages, end_call } => {
                self.tools.extend(messages);
                self.end_call |= end_call;
            }
            Progress::Done { text, usage } => {
                if let Some(usage) = usage {
                    tracing::debug!(prompt = usage.prompt_tokens, completion = usage.completion_tokens, "tokens");
                }
                self.written = Some(text);
            }
            Progress::Failed { stage, error } => {
                tracing::warn!(reply = self.id, "{stage} failed: {error}");
                self.failed = Some(stage);
            }
        }
        Vec::new()
    }

    /// Whether audio of this reply has been queued.
    pub fn started(&self) -> bool {
        self.caption.is_some()
    }

    /// Whether it is over: everything queued (or a failure), and everything queued has played.
    pub fn complete(&self, track: &LocalAudioTrack) -> bool {
        (self.written.is_some() || self.failed.is_some()) && self.playout.finished(track.played())
    }

    /// Reveals the words heard since the last call; returns the transcript packets for them.
    /// Also notes when the answer's first packet left, for voice-to-voice.
    pub fn advance(&mut self, track: &LocalAudioTrack) -> Vec<DataPacket> {
        if self.metrics.voice_to_voice_ms.is_none()
            && let (Some(clock), Some(talk)) = (self.clock, track.talk_started())
            && self.caption.is_some()
            && talk >= clock.asked
        {
            self.metrics.voice_to_voice_ms = millis(talk.saturating_duration_since(clock.last_speech));
        }
        let delta = self.playout.advance(track.played());
        match &mut self.caption {
            Some(caption) if !delta.is_empty() => caption.push(&delta),
            _ => Vec::new(),
        }
    }

    /// Stops the reply task and waits until it can queue no more audio.
    pub async fn cancel(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Ends the reply where playback is; `interrupted` when the caller cut it off.
    pub fn end(mut self, track: &LocalAudioTrack, interrupted: bool) -> Ended {
        self.task.abort();
        let mut packets = self.advance(track);
        if let Some(caption) = self.caption.take() {
            packets.push(caption.finish());
        }
        let heard = self.playout.heard().to_owned();
        let said = match self.written.take() {
            Some(written) if !interrupted && self.failed.is_none() && self.playout.finished(track.played()) => written,
            _ => heard,
        };
        let metrics = self.clock.map(|_| TurnMetrics { interrupted, ..self.metrics.clone() });
        Ended {
            purpose: self.purpose,
            said,
            failed: self.failed,
            metrics,
            packets,
            tools: self.tools,
            end_call: self.end_call,
            interrupted,
            spoke_at_ms: self.spoke_at_ms,
        }
    }
}
