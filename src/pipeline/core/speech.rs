//! One thing the agent says (a greeting, an answer with its function rounds, an apology): the
//! jobs that produce its audio, which of its words the caller has heard, and the figures of the
//! turn it answers. Pure bookkeeping; [`super::ConversationCore`] decides what happens to it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::pipeline::metrics::{TurnMetrics, millis};
use crate::pipeline::playout::Playout;
use crate::providers::llm::{ChatMessage, ChatRequest, ToolCall};

/// Why the agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The profile's greeting, when the caller arrives.
    Greeting,
    /// The model's answer to a turn of the caller.
    Answer,
    /// The profile's apology, after a provider failed.
    Apology,
    /// "Are you still there?", after a long silence.
    StillThere,
    /// The goodbye before the agent hangs up on its own (the call's time limit).
    Goodbye,
}

/// What the shell runs to produce audio for a speech; each job's audio is queued whole before
/// the next job starts, so they play in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// One round of the model: stream its answer, synthesise each sentence. With `hold`, the
    /// answer is prepared but nothing is synthesised until [`super::Output::Release`].
    /// `new_turn` when it answers the caller's new words (not function results).
    Generate { request: ChatRequest, hold: bool, new_turn: bool },
    /// Fixed words, synthesised now.
    Say(String),
    /// The apology synthesised at the start of the call.
    PlayApology,
}

/// What went wrong in a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The chat model.
    Llm,
    /// Speech synthesis.
    Tts,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Llm => "the language model",
            Stage::Tts => "speech synthesis",
        })
    }
}

/// When the stages of the answered turn happened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TurnClock {
    /// The caller's last speech frame arrived.
    pub last_speech: Instant,
    /// The end of the turn was decided.
    pub ended: Instant,
    pub stt: Duration,
    /// The model was asked.
    pub asked: Instant,
}

/// A function call of the model waiting for its result.
#[derive(Debug, Clone)]
pub(crate) struct PendingCall {
    pub call: ToolCall,
    /// The result, once in.
    pub result: Option<String>,
    /// A tool with side effects keeps running when the caller interrupts.
    pub side_effects: bool,
    /// Names the run to the shell; 0 for the built-in functions, which run at once.
    pub token: u64,
}

/// How a speech ended, for the history and the call record.
#[derive(Debug)]
pub(crate) struct Ended {
    pub purpose: Purpose,
    /// What the caller heard: the whole text when nobody interrupted.
    pub said: String,
    pub failed: bool,
    pub metrics: Option<TurnMetrics>,
    pub end_call: bool,
    pub interrupted: bool,
    /// When its first words were queued; None if nothing was.
    pub spoke_at: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Speech {
    pub id: u64,
    pub purpose: Purpose,
    /// Jobs not started yet.
    pub queue: VecDeque<Job>,
    /// The job producing audio now.
    pub running: Option<u64>,
    /// The request of the first model round; later rounds add the calls and results.
    pub request: Option<ChatRequest>,
    pub rounds: u32,
    /// Calls of the last round, reported before its end.
    pub calls: Vec<ToolCall>,
    /// Calls being run, in the model's order.
    pub pending: Vec<PendingCall>,
    /// When the calls being run started, for the filler.
    pub calls_since: Option<Instant>,
    pub filler_said: bool,
    /// Prepared ahead of the end of turn and not released yet.
    pub held: bool,
    playout: Playout,
    /// Text of the jobs that completed.
    written: String,
    pub failed: Option<Stage>,
    clock: Option<TurnClock>,
    first_token_at: Option<Instant>,
    metrics: TurnMetrics,
    /// The calls and results of finished rounds, for the history.
    pub exchange: Vec<ChatMessage>,
    pub end_call: bool,
    spoke_at: Option<Instant>,
}

impl Speech {
    pub fn new(id: u64, purpose: Purpose, clock: Option<TurnClock>) -> Self {
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
            queue: VecDeque::new(),
            running: None,
            request: None,
            rounds: 0,
            calls: Vec::new(),
            pending: Vec::new(),
            calls_since: None,
            filler_said: false,
            held: false,
            playout: Playout::default(),
            written: String::new(),
            failed: None,
            clock,
            first_token_at: None,
            metrics,
            exchange: Vec::new(),
            end_call: false,
            spoke_at: None,
        }
    }

    /// Sets when the answered turn's stages happened, for a speech prepared before the turn
    /// ended.
    pub fn set_clock(&mut self, clock: TurnClock) {
        self.clock = Some(clock);
        self.metrics.end_of_utterance_ms = millis(clock.ended.saturating_duration_since(clock.last_speech));
        self.metrics.stt_ms = millis(clock.stt);
        if let Some(at) = self.first_token_at {
            self.metrics.llm_first_token_ms = millis(at.saturating_duration_since(clock.asked));
        }
    }

    pub fn first_token(&mut self, at: Instant) {
        if self.first_token_at.is_some() {
            return;
        }
        self.first_token_at = Some(at);
        if let Some(clock) = self.clock {
            self.metrics.llm_first_token_ms = millis(at.saturating_duration_since(clock.asked));
        }
    }

    pub fn first_audio(&mut self, synthesis: Duration) {
        if self.metrics.tts_first_audio_ms.is_none() {
            self.metrics.tts_first_audio_ms = millis(synthesis);
        }
    }

    /// A sentence's audio is queued whole; true if it is the speech's first.
    pub fn sentence(&mut self, text: &str, start: Duration, duration: Duration, now: Instant) -> bool {
        self.playout.add(text, start, duration);
        self.spoke_at.get_or_insert(now);
        self.playout.len() == 1
    }

    /// A job finished queueing its audio; `text` is what it said in full.
    pub fn job_done(&mut self, text: &str) {
        self.running = None;
        let text = text.trim();
        if !text.is_empty() {
            if !self.written.is_empty() {
                self.written.push(' ');
            }
            self.written.push_str(text);
        }
    }

    /// Whether audio of this speech has been queued.
    pub fn started(&self) -> bool {
        !self.playout.is_empty()
    }

    /// Nothing runs, waits or is left to start.
    pub fn idle(&self) -> bool {
        self.running.is_none() && self.queue.is_empty() && self.pending.is_empty() && self.calls.is_empty()
    }

    /// Everything is said (or it failed) and has played.
    pub fn complete(&self, played: Duration) -> bool {
        (self.idle() || self.failed.is_some()) && !self.held && self.playout.finished(played)
    }

    /// When, at this playout position, the audio queued so far ends.
    pub fn remaining(&self, played: Duration) -> Duration {
        self.playout.end().saturating_sub(played)
    }

    /// Notes when the first packet of the answer left, for voice-to-voice.
    pub fn talk_started(&mut self, talk: Option<Instant>) {
        if self.metrics.voice_to_voice_ms.is_none()
            && let (Some(clock), Some(talk)) = (self.clock, talk)
            && self.started()
            && talk >= clock.asked
        {
            self.metrics.voice_to_voice_ms = millis(talk.saturating_duration_since(clock.last_speech));
        }
    }

    /// The words heard by `played` not revealed before.
    pub fn advance(&mut self, played: Duration) -> String {
        self.playout.advance(played)
    }

    /// Ends the speech where playback is; `interrupted` when the caller cut it off.
    pub fn end(mut self, played: Duration, interrupted: bool) -> (Ended, String, Vec<ChatMessage>) {
        let delta = self.playout.advance(played);
        let finished = self.playout.finished(played) && self.idle();
        let said = if !interrupted && self.failed.is_none() && finished {
            self.written
        } else {
            self.playout.heard().to_owned()
        };
        let metrics = self.clock.map(|_| TurnMetrics { interrupted, ..self.metrics.clone() });
        let ended = Ended {
            purpose: self.purpose,
            said,
            failed: self.failed.is_some(),
            metrics,
            end_call: self.end_call,
            interrupted,
            spoke_at: self.spoke_at,
        };
        (ended, delta, self.exchange)
    }
}
