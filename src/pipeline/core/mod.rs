//! The conversation of one call as a state machine: [`ConversationCore::handle`] takes what
//! happened (audio frames with their voice decisions, transcripts, the progress of the agent's
//! speech, function results, people joining and typing, the passage of time) and returns what
//! to do (transcribe, generate, speak, pause, caption, hang up). It never reads a clock, spawns
//! a task or touches a socket; time is an argument. The shell in [`super::shell`] owns the room,
//! the providers and the tasks and only carries out [`Output`]s, so every decision below is
//! unit-tested frame by frame on a virtual clock.
//!
//! # The caller's side
//!
//! The turn detector ([`TurnDetector`]) turns voice decisions into utterances. Each utterance's
//! audio goes to speech-to-text as a *segment* while the caller speaks. When the caller has been
//! silent for `likely_end` (a short pause), the segment is finished early: its words arrive
//! while the turn detector still waits, so
//! - the wait adapts to the words ([`endpoint`]): shorter after a complete sentence, longer
//!   after "and", "um" or half a phone number;
//! - with `preemptive` set, the model is asked at once and its answer held back until the turn
//!   really ends; should the caller go on, the answer is dropped and a new segment opens.
//!
//! A user turn is one or more segments; once it has ended and every transcript is in, the words
//! join the history and the agent answers (releasing the prepared answer when it answered the
//! same words).
//!
//! # The agent's side
//!
//! Whatever the agent says is a [`speech::Speech`] made of jobs run one after another (a model
//! round, fixed words, the rehearsed apology). Words are captioned as their audio plays, and
//! when a speech ends only what was heard enters the history and the call record. Function
//! calls run between model rounds (at most `max_tool_rounds`), several at once; a filler line
//! covers a slow one.
//!
//! Barge-in follows the turn detector: caller speech pauses the agent within a frame; once it
//! lasts `min_interrupt_speech` it interrupts, but with `min_interruption_words` set the agent
//! stays paused until the caller's words are known, and resumes where it stopped when the
//! speech held no words (a cough, a door, a television).
//!
//! # Limits
//!
//! A call ends at `max_duration` after a goodbye, after a long silence (with "are you still
//! there?" first), and when the caller never shows a microphone nor types (without any paid
//! synthesis: the greeting waits for the caller's audio).

mod ending;
mod endpoint;
mod history;
mod listening;
mod room;
mod speaking;
mod speech;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use endpoint::Endpointing;
use history::History;
use listening::UserTurn;
pub use speech::{Job, Purpose, Stage};
use speech::{PendingCall, Speech, TurnClock};

use super::metrics::TurnMetrics;
use super::record::{Caller, Line, Speaker};
use super::state::AgentState;
use super::tools::{CAPTURE_LEAD, END_CALL, LeadSheet};
use super::turn::{TurnConfig, TurnDetector, TurnEvent};
use super::vad::{self, VadFrame};
use crate::profiles::LeadField;
use crate::providers::llm::{ChatMessage, ChatRequest, ToolCall, ToolSpec};
use crate::worker::EndReason;

/// How often, while the agent speaks, its caption catches up with the audio played.
const CAPTION_INTERVAL: Duration = Duration::from_millis(100);
/// Silence kept after the caller's last word: enough for its fading end, while the rest of the
/// silence that ended the turn is neither uploaded nor billed.
const TAIL_SAMPLES: usize = vad::SAMPLE_RATE as usize / 10;
/// Audio kept before speech that resumes after a likely end, for the new segment.
const CONTINUATION_PRE_ROLL: usize = vad::SAMPLE_RATE as usize * 3 / 10;
/// After the call is told to stop, how long the caller's last words may take to be transcribed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// The longest a goodbye may take before the agent hangs up anyway.
const GOODBYE_LIMIT: Duration = Duration::from_secs(15);
/// A typed message longer than this is cut: no caller types more, and the model pays per token.
const MAX_TYPED_CHARS: usize = 2_000;
/// Playout is checked at least this often near a speech's end (audio leaves in 20 ms frames).
const PLAYOUT_GRAIN: Duration = Duration::from_millis(20);

/// The model's request settings for this call.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub model: String,
    pub temperature: f32,
    pub max_tokens: u32,
}

/// A function the model may call that the shell runs (anything but the built-in
/// `capture_lead` and `end_call`).
#[derive(Debug, Clone)]
pub struct ExternalTool {
    pub spec: ToolSpec,
    /// It changes something outside (a booking): never retried, never cancelled by barge-in.
    pub side_effects: bool,
    /// Said once when the tool takes longer than [`CoreConfig::filler_after`].
    pub filler: Option<String>,
}

/// When a call ends on its own. `None` turns a limit off.
#[derive(Debug, Clone, PartialEq)]
pub struct CallLimits {
    /// The agent says `goodbye` and hangs up after this. Default 30 minutes.
    pub max_duration: Option<Duration>,
    /// Default "I'm sorry, we have reached the time limit for this call. Goodbye!"
    pub goodbye: String,
    /// After this long without a word from anyone the agent asks `still_there`. Default 15 s.
    pub silence_prompt: Option<Duration>,
    /// Default "Are you still there?"
    pub still_there: String,
    /// After this long without a word from anyone the agent hangs up. Default 30 s.
    pub silence_hangup: Option<Duration>,
    /// A caller who neither publishes a microphone nor types within this is dropped, before
    /// anything is synthesised. Default 20 s.
    pub no_audio: Option<Duration>,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            max_duration: Some(Duration::from_secs(30 * 60)),
            goodbye: "I'm sorry, we have reached the time limit for this call. Goodbye!".into(),
            silence_prompt: Some(Duration::from_secs(15)),
            still_there: "Are you still there?".into(),
            silence_hangup: Some(Duration::from_secs(30)),
            no_audio: Some(Duration::from_secs(20)),
        }
    }
}

/// What the conversation needs to know that does not change during the call.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub turn: TurnConfig,
    /// Waits chosen from the words at a likely end; `None` always waits `min_silence`.
    pub endpointing: Option<Endpointing>,
    /// Ask the model at a likely end, before the turn is certain.
    pub preemptive: bool,
    /// Words an interruption needs before the agent's answer is dropped; 0 trusts the voice
    /// detector alone.
    pub min_interruption_words: usize,
    pub chat: ChatSettings,
    pub system_prompt: String,
    /// Said when the caller's audio arrives; empty means the agent waits for the caller.
    pub greeting: String,
    pub apology: String,
    pub lead_fields: Vec<LeadField>,
    pub tools: Vec<ExternalTool>,
    /// Said when a tool is slow and the tool names no filler of its own.
    pub filler: String,
    pub filler_after: Duration,
    pub max_tool_rounds: u32,
    /// The history's budget in estimated tokens; 0 keeps everything.
    pub history_budget: usize,
    pub limits: CallLimits,
}

/// A transcript, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub text: String,
    /// From the end of the segment to its transcript.
    pub latency: Duration,
}

/// What a tool answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// The result for the model, as JSON text.
    pub result: String,
    /// Words the agent speaks as they are.
    pub say: Option<String>,
    /// The call ends once the agent's words have been heard.
    pub end_call: bool,
}

/// The progress of a job the shell runs.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// The model's first words arrived.
    FirstToken,
    /// The job's first audio was queued, `synthesis` after it was asked for.
    FirstAudio { synthesis: Duration },
    /// A sentence's audio is queued whole: it plays from `start` on the track's playout clock.
    Sentence { text: String, start: Duration, duration: Duration },
    /// The model's round ended asking for these calls (reported before `Done`).
    ToolCalls(Vec<ToolCall>),
    /// Everything of the job is queued; `text` is what it said in full.
    Done { text: String },
    /// The job stopped; what was queued before still plays.
    Failed { stage: Stage, error: String },
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Someone joined the room.
    Joined { identity: String, name: String, agent: bool },
    /// An audio track of someone was subscribed.
    Track { identity: String, track: String },
    /// A track was muted or unmuted.
    Muted { track: String, muted: bool },
    /// Someone typed a message (LiveKit chat).
    Typed { identity: String, text: String },
    /// 20 ms frames of the track listened to, just arrived.
    Frames { track: String, frames: Vec<VadFrame> },
    /// Words recognised so far in a segment, while the caller speaks.
    Partial { segment: u64, text: String },
    /// A segment's transcript.
    Transcript { segment: u64, result: Result<Heard, String> },
    /// A job's progress.
    Job { job: u64, event: JobEvent },
    /// The agent's track has sent `played` of audio; its latest stretch of talk began at
    /// `talk_started`.
    Played { played: Duration, talk_started: Option<Instant> },
    /// A tool answered.
    ToolResult { tool: u64, output: ToolOutput },
    /// The apology was synthesised ahead of need (false: that failed).
    ApologyReady(bool),
    /// Time passed; see [`ConversationCore::next_deadline`].
    Tick,
    /// The call must end.
    Stop(EndReason),
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Listen to this track (and no other).
    Listen { track: String },
    /// Open a segment with its first audio (the pre-roll).
    StartTranscription { segment: u64, audio: Vec<i16> },
    /// More audio of the segment.
    Transcribe { segment: u64, audio: Vec<i16> },
    /// The segment is complete: transcribe what it has.
    FinishTranscription { segment: u64 },
    /// Drop the segment: it was a click or a cough.
    AbandonTranscription { segment: u64 },
    /// Run a job of speech `speech`.
    StartJob { job: u64, speech: u64, work: Job },
    /// Let a held job speak.
    Release { job: u64 },
    /// Stop a job: nothing more of it may be queued.
    CancelJob { job: u64 },
    /// Run a tool.
    CallTool { tool: u64, call: ToolCall },
    /// Stop a tool whose answer nobody waits for.
    CancelTool { tool: u64 },
    /// Synthesise the apology ahead of need.
    PrepareApology,
    /// Hold the agent's queued audio.
    Pause,
    /// Continue the agent's audio.
    Resume,
    /// Drop the agent's queued audio (and resume sending).
    Clear,
    /// The caller's words so far in user turn `turn`.
    UserCaption { turn: u64, text: String, last: bool },
    /// More words of speech `speech` were heard.
    AgentCaption { speech: u64, text: String },
    /// Speech `speech` is over; its caption is final.
    AgentCaptionEnd { speech: u64 },
    /// The agent's state changed.
    State(AgentState),
    /// A line of the transcript, for the call record.
    Line(Line),
    /// The figures of an answered turn.
    Turn(TurnMetrics),
    /// The call is over.
    HangUp(EndReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Apology {
    NotAsked,
    Preparing,
    Ready,
    Unavailable,
}

/// The conversation of one call; see the module documentation.
#[derive(Debug)]
pub struct ConversationCore {
    config: CoreConfig,
    started: Instant,
    /// Unix ms at `started`, for the times in the record.
    wall_ms: i64,
    now: Instant,
    turn: TurnDetector,
    agents: Vec<String>,
    first_caller: Option<Caller>,
    joined_at: Option<Instant>,
    listening: Option<String>,
    /// The caller showed a microphone or typed.
    engaged: bool,
    greeting_due: bool,
    apology: Apology,
    user: Option<UserTurn>,
    speech: Option<Speech>,
    next_id: u64,
    history: History,
    lead: LeadSheet,
    played: Duration,
    paused: bool,
    state: AgentState,
    next_caption: Option<Instant>,
    /// The caller last spoke or typed, or the agent last finished saying something.
    last_activity: Instant,
    asked_still_there: bool,
    /// The agent hangs up once it has said what it is saying.
    ending: Option<(EndReason, Instant)>,
    /// The call must end once the caller's last words are transcribed, or at the deadline.
    stopping: Option<(EndReason, Instant)>,
    hung_up: bool,
    /// Tools with side effects still running for a speech that is gone.
    orphans: Vec<(u64, PendingCall)>,
    out: Vec<Output>,
}

impl ConversationCore {
    /// A call starting at `now`, which is `wall_ms` in Unix milliseconds.
    pub fn new(config: CoreConfig, now: Instant, wall_ms: i64) -> Self {
        let history = History::new(config.system_prompt.clone(), config.history_budget);
        let lead = LeadSheet::new(config.lead_fields.clone());
        Self {
            turn: TurnDetector::new(config.turn),
            greeting_due: !config.greeting.trim().is_empty(),
            config,
            started: now,
            wall_ms,
            now,
            agents: Vec::new(),
            first_caller: None,
            joined_at: None,
            listening: None,
            engaged: false,
            apology: Apology::NotAsked,
            user: None,
            speech: None,
            next_id: 0,
            history,
            lead,
            played: Duration::ZERO,
            paused: false,
            state: AgentState::Initializing,
            next_caption: None,
            last_activity: now,
            asked_still_there: false,
            ending: None,
            stopping: None,
            hung_up: false,
            orphans: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Takes what happened at `now` and returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        if self.hung_up {
            return Vec::new();
        }
        self.now = self.now.max(now);
        let now = self.now;
        match input {
            Input::Joined { identity, name, agent } => self.on_joined(identity, name, agent, now),
            Input::Track { identity, track } => self.on_track(identity, track, now),
            Input::Muted { track, muted } => self.on_muted(&track, muted, now),
            Input::Typed { identity, text } => self.on_typed(&identity, &text, now),
            Input::Frames { track, frames } => self.on_frames(&track, &frames, now),
            Input::Partial { segment, text } => self.on_partial(segment, text, now),
            Input::Transcript { segment, result } => self.on_transcript(segment, result, now),
            Input::Job { job, event } => self.on_job(job, event, now),
            Input::Played { played, talk_started } => {
                self.played = played;
                if let Some(speech) = &mut self.speech {
                    speech.talk_started(talk_started);
                }
            }
            Input::ToolResult { tool, output } => self.on_tool_result(tool, output),
            Input::ApologyReady(ready) => {
                self.apology = if ready { Apology::Ready } else { Apology::Unavailable };
            }
            Input::Tick => self.on_tick(now),
            Input::Stop(reason) => self.on_stop(reason, now),
        }
        self.settle(now);
        std::mem::take(&mut self.out)
    }

    /// When to call [`Self::handle`] with [`Input::Tick`] if nothing happens before.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.hung_up {
            return None;
        }
        let mut deadlines = vec![self.turn.next_deadline(), self.next_caption];
        if let Some(speech) = &self.speech
            && speech.started()
            && !self.paused
        {
            let remaining = speech.remaining(self.played);
            if remaining > Duration::ZERO {
                deadlines.push(Some(self.now + remaining.max(PLAYOUT_GRAIN)));
            }
        }
        if let Some(speech) = &self.speech
            && !speech.pending.is_empty()
            && !speech.filler_said
        {
            deadlines.push(speech.calls_since.map(|since| since + self.config.filler_after));
        }
        let limits = &self.config.limits;
        if self.ending.is_none() && self.stopping.is_none() {
            deadlines.push(limits.max_duration.map(|max| self.started + max));
        }
        if self.idle() {
            if !self.asked_still_there && !limits.still_there.trim().is_empty() {
                deadlines.push(limits.silence_prompt.map(|after| self.last_activity + after));
            }
            deadlines.push(limits.silence_hangup.map(|after| self.last_activity + after));
        }
        if !self.engaged
            && let (Some(joined), Some(after)) = (self.joined_at, limits.no_audio)
        {
            deadlines.push(Some(joined + after));
        }
        deadlines.push(self.ending.map(|(_, limit)| limit));
        deadlines.push(self.stopping.map(|(_, limit)| limit));
        deadlines.into_iter().flatten().min()
    }

    /// The first person who joined.
    pub fn caller(&self) -> Option<&Caller> {
        self.first_caller.as_ref()
    }

    /// What the caller told about themselves so far.
    pub fn lead(&self) -> &LeadSheet {
        &self.lead
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn wall(&self, at: Instant) -> i64 {
        let since = at.saturating_duration_since(self.started);
        self.wall_ms + i64::try_from(since.as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// Nothing is said, heard or pending: the silence timers run.
    fn idle(&self) -> bool {
        self.engaged
            && self.speech.is_none()
            && self.user.is_none()
            && !self.turn.in_utterance()
            && self.ending.is_none()
            && self.stopping.is_none()
    }

    fn agent_speaking(&self) -> bool {
        self.speech.as_ref().is_some_and(|speech| speech.started() && !speech.complete(self.played))
    }
    /// After every input: ends what is finished, catches captions up, and keeps the state.
    fn settle(&mut self, now: Instant) {
        if self.hung_up {
            return;
        }
        if let Some(next) = self.next_caption
            && now >= next
            && let Some(speech) = &mut self.speech
        {
            let text = speech.advance(self.played);
            let id = speech.id;
            if !text.is_empty() {
                self.out.push(Output::AgentCaption { speech: id, text });
            }
            self.next_caption = Some(now + CAPTION_INTERVAL);
        }
        if self.speech.as_ref().is_some_and(|speech| speech.complete(self.played)) {
            self.end_speech(false, now);
        }
        if let Some((reason, limit)) = self.stopping {
            if self.user.is_none() || now >= limit {
                self.hang_up(reason);
            }
            return;
        }
        if let Some((reason, limit)) = self.ending
            && (self.speech.is_none() || (reason == EndReason::MaxDuration && now >= limit))
        {
            self.hang_up(reason);
            return;
        }
        let state = if self.agent_speaking() {
            AgentState::Speaking
        } else if self.speech.is_some() || self.user.as_ref().is_some_and(|user| user.ended.is_some()) {
            AgentState::Thinking
        } else {
            AgentState::Listening
        };
        if state != self.state {
            self.state = state;
            self.out.push(Output::State(state));
        }
    }
}
