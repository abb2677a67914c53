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

mod endpoint;
mod history;
mod speech;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use endpoint::Endpointing;
use history::History;
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

/// The caller's turn: segments transcribed or being transcribed.
#[derive(Debug)]
struct UserTurn {
    id: u64,
    segments: Vec<Segment>,
    /// The segment receiving audio.
    open: Option<u64>,
    /// Index of the first segment of the detector's current utterance.
    utterance_from: usize,
    /// Silence since the last speech, sent only if speech follows.
    held: Vec<i16>,
    last_speech: Instant,
    /// When the turn detector ended it; `None` while the caller speaks.
    ended: Option<Instant>,
    started_at: Instant,
    /// It interrupted the agent, which stays paused until its words are known.
    confirming: bool,
    /// An answer prepared for the words so far.
    draft: Option<Draft>,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    partial: String,
    result: Option<Result<Heard, String>>,
}

#[derive(Debug)]
struct Draft {
    speech: Speech,
    /// The words it answers.
    text: String,
    asked: Instant,
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

    // ----- the room -----

    fn on_joined(&mut self, identity: String, name: String, agent: bool, now: Instant) {
        if agent {
            self.agents.push(identity);
            return;
        }
        self.joined_at.get_or_insert(now);
        if self.first_caller.is_none() {
            self.first_caller = Some(Caller { identity, name });
        }
    }

    fn on_track(&mut self, identity: String, track: String, now: Instant) {
        if self.agents.contains(&identity) || self.stopping.is_some() {
            return;
        }
        // A republished microphone replaces the old one; an utterance on the old one is over.
        if let Some(user) = &mut self.user
            && let Some(open) = user.open.take()
        {
            self.out.push(Output::FinishTranscription { segment: open });
        }
        self.turn = TurnDetector::new(self.config.turn);
        self.listening = Some(track.clone());
        self.out.push(Output::Listen { track });
        self.engage(now);
        if std::mem::take(&mut self.greeting_due) && self.ending.is_none() {
            let greeting = self.config.greeting.clone();
            self.start_speech(Purpose::Greeting, None, Job::Say(greeting));
        }
    }

    /// The caller is really here: prepare what a conversation needs.
    fn engage(&mut self, now: Instant) {
        if !self.engaged {
            self.engaged = true;
            self.last_activity = now;
        }
        if self.apology == Apology::NotAsked && !self.config.apology.trim().is_empty() {
            self.apology = Apology::Preparing;
            self.out.push(Output::PrepareApology);
        }
    }

    fn on_muted(&mut self, track: &str, muted: bool, now: Instant) {
        if muted && self.listening.as_deref() == Some(track) {
            let speaking = self.agent_speaking();
            let events = self.turn.end_now(now, speaking);
            for event in events {
                self.on_turn_event(event, now, None, &mut Vec::new());
            }
        }
    }

    fn on_typed(&mut self, identity: &str, text: &str, now: Instant) {
        if self.agents.iter().any(|agent| agent == identity) || self.ending.is_some() || self.stopping.is_some() {
            return;
        }
        let text: String = text.trim().chars().take(MAX_TYPED_CHARS).collect();
        if text.is_empty() {
            return;
        }
        self.engage(now);
        self.greeting_due = false;
        self.last_activity = now;
        self.asked_still_there = false;
        // A message is a deliberate turn: it cuts the agent off like sustained speech would.
        self.end_speech(true, now);
        let at = self.wall(now);
        self.out.push(Output::Line(Line::typed(&text, at)));
        self.history.push(ChatMessage::user(text));
        self.answer(None);
    }

    // ----- listening -----

    fn on_frames(&mut self, track: &str, frames: &[VadFrame], now: Instant) {
        if self.listening.as_deref() != Some(track) {
            return;
        }
        let mut audio = Vec::new();
        for frame in frames {
            let speaking = self.agent_speaking();
            let events = self.turn.on_frame(now, frame, speaking);
            let mut took_frame = false;
            for event in events {
                took_frame |= self.on_turn_event(event, now, Some(frame), &mut audio);
            }
            let Some(user) = &mut self.user else { continue };
            if frame.speech && self.turn.in_utterance() {
                user.last_speech = now;
            }
            if took_frame {
                continue;
            }
            if user.open.is_some() {
                if frame.speech {
                    audio.append(&mut user.held);
                    audio.extend_from_slice(&frame.samples);
                } else {
                    user.held.extend_from_slice(&frame.samples);
                }
            } else if self.turn.in_utterance() {
                // Between a likely end and what follows: kept as the pre-roll of a continuation.
                user.held.extend_from_slice(&frame.samples);
                let excess = user.held.len().saturating_sub(CONTINUATION_PRE_ROLL);
                user.held.drain(..excess);
            }
        }
        if let Some(segment) = self.user.as_ref().and_then(|user| user.open)
            && !audio.is_empty()
        {
            self.out.push(Output::Transcribe { segment, audio });
        }
    }

    /// Acts on a turn event; `audio` collects what goes to the open segment and is sent before
    /// the segment closes. True when the event already took `frame`'s audio.
    fn on_turn_event(
        &mut self,
        event: TurnEvent,
        now: Instant,
        frame: Option<&VadFrame>,
        audio: &mut Vec<i16>,
    ) -> bool {
        match event {
            TurnEvent::SpeechStarted { pre_roll } => {
                self.speech_started(pre_roll, now, audio);
                return true;
            }
            TurnEvent::Continued => {
                // The draft stays: should the words that follow add nothing (a breath, a
                // cough), it still answers the turn.
                let Some(user) = &mut self.user else { return false };
                let mut pre_roll = std::mem::take(&mut user.held);
                if let Some(frame) = frame {
                    pre_roll.extend_from_slice(&frame.samples);
                }
                self.open_segment(pre_roll, audio);
                return frame.is_some();
            }
            TurnEvent::LikelyEnd => {
                if self.config.preemptive || self.config.endpointing.is_some() {
                    self.close_segment(audio);
                }
            }
            TurnEvent::UserTurnEnded { .. } => {
                self.close_segment(audio);
                if let Some(user) = &mut self.user {
                    user.ended = Some(now);
                    user.held.clear();
                }
                self.try_complete(now);
            }
            TurnEvent::Discarded => self.discard_utterance(audio),
            TurnEvent::PauseAgent => {
                if self.interruptible() {
                    self.pause();
                }
            }
            TurnEvent::ResumeAgent => {
                if !self.user.as_ref().is_some_and(|user| user.confirming) {
                    self.resume();
                }
            }
            TurnEvent::Interrupt => {
                if !self.interruptible() {
                    return false;
                }
                if self.config.min_interruption_words == 0 {
                    self.interrupt(now);
                } else if let Some(user) = &mut self.user {
                    user.confirming = true;
                    self.pause();
                    self.confirm_by_words(now);
                }
            }
        }
        false
    }

    /// The goodbye at the time limit is said whole.
    fn interruptible(&self) -> bool {
        self.speech.as_ref().is_some_and(|speech| speech.purpose != Purpose::Goodbye)
    }

    fn speech_started(&mut self, pre_roll: Vec<i16>, now: Instant, audio: &mut Vec<i16>) {
        self.last_activity = now;
        self.asked_still_there = false;
        match &mut self.user {
            // More words before the agent answered: the same turn goes on.
            Some(user) => {
                user.ended = None;
                user.held.clear();
                user.last_speech = now;
                user.utterance_from = user.segments.len();
            }
            None => {
                let id = self.id();
                self.user = Some(UserTurn {
                    id,
                    segments: Vec::new(),
                    open: None,
                    utterance_from: 0,
                    held: Vec::new(),
                    last_speech: now,
                    ended: None,
                    started_at: now,
                    confirming: false,
                    draft: None,
                });
            }
        }
        self.open_segment(pre_roll, audio);
    }

    fn open_segment(&mut self, pre_roll: Vec<i16>, audio: &mut Vec<i16>) {
        let id = self.id();
        let Some(user) = &mut self.user else { return };
        user.segments.push(Segment { id, partial: String::new(), result: None });
        user.open = Some(id);
        audio.clear();
        self.out.push(Output::StartTranscription { segment: id, audio: pre_roll });
    }

    /// Sends the open segment's last audio with a short tail of silence, and finishes it.
    fn close_segment(&mut self, audio: &mut Vec<i16>) {
        let Some(user) = &mut self.user else { return };
        let Some(segment) = user.open.take() else { return };
        audio.extend_from_slice(&user.held[..user.held.len().min(TAIL_SAMPLES)]);
        if !audio.is_empty() {
            self.out.push(Output::Transcribe { segment, audio: std::mem::take(audio) });
        }
        self.out.push(Output::FinishTranscription { segment });
    }

    /// The detector's utterance was noise or a backchannel: its segments go, and a turn that
    /// had ended before it stands as it was.
    fn discard_utterance(&mut self, audio: &mut Vec<i16>) {
        audio.clear();
        let Some(user) = &mut self.user else { return };
        user.open = None;
        let dropped: Vec<u64> = user.segments.drain(user.utterance_from..).map(|segment| segment.id).collect();
        self.out.extend(dropped.into_iter().map(|segment| Output::AbandonTranscription { segment }));
        if user.segments.is_empty() {
            if let Some(draft) = self.user.take().and_then(|user| user.draft) {
                self.drop_speech(draft.speech);
            }
            return;
        }
        user.held.clear();
        user.ended = Some(self.now);
        self.try_complete(self.now);
    }

    fn on_partial(&mut self, segment: u64, text: String, now: Instant) {
        let Some(user) = &mut self.user else { return };
        let Some(found) = user.segments.iter_mut().find(|s| s.id == segment) else { return };
        found.partial = text;
        let words = user.words();
        let turn = user.id;
        if !words.is_empty() {
            self.out.push(Output::UserCaption { turn, text: words, last: false });
        }
        self.confirm_by_words(now);
    }

    /// An interruption waiting for words becomes real once there are enough.
    fn confirm_by_words(&mut self, now: Instant) {
        let Some(user) = &self.user else { return };
        if user.confirming && word_count(&user.words()) >= self.config.min_interruption_words {
            self.interrupt(now);
        }
    }

    fn on_transcript(&mut self, segment: u64, result: Result<Heard, String>, now: Instant) {
        let Some(user) = &mut self.user else { return };
        let Some(found) = user.segments.iter_mut().find(|s| s.id == segment) else { return };
        found.result = Some(result);
        if user.ended.is_none() {
            self.early_words(now);
        }
        self.confirm_by_words(now);
        self.try_complete(now);
    }

    /// The words of a likely end: how long to wait for more, and an answer prepared meanwhile.
    fn early_words(&mut self, now: Instant) {
        let Some(user) = &mut self.user else { return };
        if user.segments.iter().any(|segment| segment.result.is_none()) || user.open.is_some() {
            return;
        }
        let text = user.text();
        if let Some(waits) = self.config.endpointing {
            self.turn.set_silence(endpoint::silence_after(&text, waits));
        }
        let turn = user.id;
        if !text.is_empty() {
            self.out.push(Output::UserCaption { turn, text: text.clone(), last: false });
        }
        let preempt = self.config.preemptive
            && !text.is_empty()
            && !user.confirming
            && self.stopping.is_none()
            && self.ending.is_none()
            && user.draft.as_ref().is_none_or(|draft| draft.text != text);
        if !preempt {
            return;
        }
        if let Some(draft) = self.user.as_mut().and_then(|user| user.draft.take()) {
            self.drop_speech(draft.speech);
        }
        let mut messages = self.history.messages(self.lead.captured());
        messages.push(ChatMessage::user(text.clone()));
        let request = self.request(messages);
        let id = self.id();
        let mut speech = Speech::new(id, Purpose::Answer, None);
        speech.held = true;
        speech.request = Some(request.clone());
        speech.rounds = 1;
        let job = self.id();
        speech.running = Some(job);
        self.out.push(Output::StartJob {
            job,
            speech: id,
            work: Job::Generate { request, hold: true, new_turn: true },
        });
        if let Some(user) = &mut self.user {
            user.draft = Some(Draft { speech, text, asked: now });
        }
    }

    /// Once the turn has ended and every segment is transcribed: the words join the
    /// conversation and the agent answers.
    fn try_complete(&mut self, now: Instant) {
        let ready = self
            .user
            .as_ref()
            .is_some_and(|user| user.ended.is_some() && user.segments.iter().all(|segment| segment.result.is_some()));
        if !ready {
            return;
        }
        let Some(user) = self.user.take() else { return };
        let text = user.text();
        let failed = user.segments.iter().any(|segment| matches!(segment.result, Some(Err(_))));
        let stt = user
            .segments
            .iter()
            .rev()
            .find_map(|segment| match &segment.result {
                Some(Ok(heard)) => Some(heard.latency),
                _ => None,
            })
            .unwrap_or_default();
        let ended = user.ended.unwrap_or(now);
        let mut draft = user.draft;
        if user.confirming {
            if word_count(&text) >= self.config.min_interruption_words.max(1) {
                self.interrupt(now);
            } else {
                // Not words: a cough, a door, the television. The agent goes on.
                if let Some(draft) = draft.take() {
                    self.drop_speech(draft.speech);
                }
                self.resume();
                return;
            }
        }
        if text.is_empty() {
            if let Some(draft) = draft.take() {
                self.drop_speech(draft.speech);
            }
            if failed && self.speech.is_none() && self.stopping.is_none() && self.ending.is_none() {
                self.apologise();
            }
            return;
        }
        self.last_activity = now;
        tracing::debug!(words = %crate::telemetry::personal(&text), "the caller's turn");
        self.out.push(Output::UserCaption { turn: user.id, text: text.clone(), last: true });
        self.out.push(Output::Line(Line::new(Speaker::Caller, &text, self.wall(user.started_at), false)));
        self.history.push(ChatMessage::user(text.clone()));
        if self.stopping.is_some() || self.ending.is_some() {
            if let Some(draft) = draft.take() {
                self.drop_speech(draft.speech);
            }
            return;
        }
        // Whatever the agent began after this turn started, the newer turn takes precedence.
        self.end_speech(true, now);
        let clock = |asked| TurnClock { last_speech: user.last_speech, ended, stt, asked };
        match draft {
            Some(draft) if draft.text == text => {
                let mut speech = draft.speech;
                speech.set_clock(clock(draft.asked));
                speech.held = false;
                if let Some(job) = speech.running {
                    self.out.push(Output::Release { job });
                }
                self.speech = Some(speech);
                self.after_job(now);
            }
            other => {
                if let Some(draft) = other {
                    self.drop_speech(draft.speech);
                }
                self.answer(Some(clock(now)));
            }
        }
    }

    // ----- speaking -----

    fn request(&self, messages: Vec<ChatMessage>) -> ChatRequest {
        let mut tools = self.lead.specs();
        tools.extend(self.config.tools.iter().map(|tool| tool.spec.clone()));
        let chat = &self.config.chat;
        ChatRequest {
            model: chat.model.clone(),
            messages,
            temperature: chat.temperature,
            max_tokens: chat.max_tokens,
            tools,
        }
    }

    /// Asks the model for an answer to the conversation so far.
    fn answer(&mut self, clock: Option<TurnClock>) {
        let request = self.request(self.history.messages(self.lead.captured()));
        let id = self.id();
        let mut speech = Speech::new(id, Purpose::Answer, clock);
        speech.request = Some(request.clone());
        speech.rounds = 1;
        speech.queue.push_back(Job::Generate { request, hold: false, new_turn: true });
        self.speech = Some(speech);
        self.start_next_job();
    }

    fn start_speech(&mut self, purpose: Purpose, clock: Option<TurnClock>, job: Job) {
        let id = self.id();
        let mut speech = Speech::new(id, purpose, clock);
        speech.queue.push_back(job);
        self.speech = Some(speech);
        self.start_next_job();
    }

    fn apologise(&mut self) {
        let job = match self.apology {
            Apology::Ready => Job::PlayApology,
            _ => Job::Say(self.config.apology.clone()),
        };
        if !self.config.apology.trim().is_empty() {
            self.start_speech(Purpose::Apology, None, job);
        }
    }

    fn start_next_job(&mut self) {
        let Some(speech) = &mut self.speech else { return };
        if speech.running.is_some() || speech.failed.is_some() {
            return;
        }
        let Some(work) = speech.queue.pop_front() else { return };
        let speech_id = speech.id;
        self.next_id += 1;
        let job = self.next_id;
        if let Some(speech) = &mut self.speech {
            speech.running = Some(job);
        }
        self.out.push(Output::StartJob { job, speech: speech_id, work });
    }

    fn on_job(&mut self, job: u64, event: JobEvent, now: Instant) {
        let mine = |speech: &Speech| speech.running == Some(job);
        let speech = match (&mut self.speech, &mut self.user) {
            (Some(speech), _) if mine(speech) => speech,
            (_, Some(UserTurn { draft: Some(draft), .. })) if mine(&draft.speech) => &mut draft.speech,
            _ => return,
        };
        match event {
            JobEvent::FirstToken => speech.first_token(now),
            JobEvent::FirstAudio { synthesis } => speech.first_audio(synthesis),
            JobEvent::Sentence { text, start, duration } => {
                if speech.sentence(&text, start, duration, now) {
                    self.next_caption = Some(now);
                }
            }
            JobEvent::ToolCalls(calls) => speech.calls = calls,
            JobEvent::Done { text } => {
                speech.job_done(&text);
                self.after_job(now);
            }
            JobEvent::Failed { stage, error } => {
                tracing::warn!(speech = speech.id, "{stage} failed: {error}");
                speech.running = None;
                speech.failed = Some(stage);
                speech.queue.clear();
                speech.calls.clear();
            }
        }
    }

    /// A job finished: run the functions its round called, or start what comes next.
    fn after_job(&mut self, now: Instant) {
        let Some(speech) = &mut self.speech else { return };
        if speech.held || speech.running.is_some() {
            return;
        }
        if !speech.calls.is_empty() {
            self.run_tools(now);
        }
        self.start_next_job();
    }

    fn run_tools(&mut self, now: Instant) {
        let Some(speech) = &mut self.speech else { return };
        let calls = std::mem::take(&mut speech.calls);
        speech.exchange.push(ChatMessage { tool_calls: calls.clone(), ..ChatMessage::assistant("") });
        speech.calls_since = Some(now);
        speech.filler_said = false;
        for call in calls {
            let external = self.config.tools.iter().find(|tool| tool.spec.name == call.name).cloned();
            let (result, side_effects) = match external {
                Some(tool) => {
                    self.next_id += 1;
                    let token = self.next_id;
                    tracing::info!(tool = %call.name, "the model called a function");
                    self.out.push(Output::CallTool { tool: token, call: call.clone() });
                    let pending = PendingCall { call, result: None, side_effects: tool.side_effects, token };
                    if let Some(speech) = &mut self.speech {
                        speech.pending.push(pending);
                    }
                    continue;
                }
                None if call.name == CAPTURE_LEAD || call.name == END_CALL => {
                    let outcome = self.lead.call(&call);
                    tracing::info!(tool = %call.name, "the model called a function");
                    if outcome.end_call
                        && let Some(speech) = &mut self.speech
                    {
                        speech.end_call = true;
                    }
                    (outcome.result, false)
                }
                None => {
                    let mut names: Vec<String> = self.lead.specs().into_iter().map(|spec| spec.name).collect();
                    names.extend(self.config.tools.iter().map(|tool| tool.spec.name.clone()));
                    let error =
                        format!("there is no function named `{}`; the functions are {}", call.name, names.join(", "));
                    (serde_json::json!({"ok": false, "error": error}).to_string(), false)
                }
            };
            if let Some(speech) = &mut self.speech {
                speech.pending.push(PendingCall { call, result: Some(result), side_effects, token: 0 });
            }
        }
        self.next_round();
    }

    /// Once every call of the round has its result: the results go to the model for the next
    /// round, unless the rounds are used up.
    fn next_round(&mut self) {
        let max_rounds = self.config.max_tool_rounds;
        let Some(speech) = &mut self.speech else { return };
        if speech.pending.iter().any(|call| call.result.is_none()) {
            return;
        }
        let results: Vec<ChatMessage> = std::mem::take(&mut speech.pending)
            .into_iter()
            .map(|call| ChatMessage::tool(&call.call.id, call.result.unwrap_or_default()))
            .collect();
        speech.exchange.extend(results);
        speech.calls_since = None;
        if speech.rounds >= max_rounds {
            tracing::warn!("the model kept calling functions; its answer ends here");
            return;
        }
        // The first round's request with the calls and results of every round so far.
        let Some(mut request) = speech.request.clone() else { return };
        request.messages.extend(speech.exchange.iter().cloned());
        speech.rounds += 1;
        speech.queue.push_back(Job::Generate { request, hold: false, new_turn: false });
    }

    fn on_tool_result(&mut self, tool: u64, output: ToolOutput) {
        if let Some(at) = self.orphans.iter().position(|(token, _)| *token == tool) {
            let (_, pending) = self.orphans.remove(at);
            tracing::info!(tool = %pending.call.name, "a function finished after its answer was cut off");
            let call = pending.call;
            let id = call.id.clone();
            self.history.extend([
                ChatMessage { tool_calls: vec![call], ..ChatMessage::assistant("") },
                ChatMessage::tool(&id, output.result),
            ]);
            return;
        }
        let Some(speech) = &mut self.speech else { return };
        let Some(pending) = speech.pending.iter_mut().find(|call| call.token == tool && call.result.is_none()) else {
            return;
        };
        let mut result = output.result;
        if let Some(say) = output.say.filter(|say| !say.trim().is_empty()) {
            result = serde_json::json!({"result": serde_json::from_str::<serde_json::Value>(&result).unwrap_or(serde_json::Value::String(result)), "said_to_caller": say}).to_string();
            speech.queue.push_back(Job::Say(say));
        }
        pending.result = Some(result);
        speech.end_call |= output.end_call;
        self.next_round();
        self.start_next_job();
    }

    fn pause(&mut self) {
        if !self.paused && self.speech.as_ref().is_some_and(Speech::started) {
            self.paused = true;
            self.next_caption = None;
            self.out.push(Output::Pause);
        }
    }

    fn resume(&mut self) {
        if self.paused {
            self.paused = false;
            self.next_caption = self.speech.as_ref().filter(|speech| speech.started()).map(|_| self.now);
            self.out.push(Output::Resume);
        }
    }

    /// The caller cut the agent off: what it was saying stops now.
    fn interrupt(&mut self, now: Instant) {
        if let Some(user) = &mut self.user {
            user.confirming = false;
        }
        if self.interruptible() {
            tracing::info!("the caller interrupted");
            self.end_speech(true, now);
        }
    }

    /// Drops a speech nobody heard (a draft): its job stops, its tools too.
    fn drop_speech(&mut self, speech: Speech) {
        if let Some(job) = speech.running {
            self.out.push(Output::CancelJob { job });
        }
    }

    /// Ends the speech in flight: `interrupted` when it is cut off, else it has played whole.
    fn end_speech(&mut self, interrupted: bool, now: Instant) {
        let Some(mut speech) = self.speech.take() else { return };
        if let Some(job) = speech.running.take() {
            self.out.push(Output::CancelJob { job });
        }
        for pending in std::mem::take(&mut speech.pending) {
            if pending.result.is_some() {
                continue;
            }
            if pending.side_effects {
                self.orphans.push((pending.token, pending));
            } else {
                self.out.push(Output::CancelTool { tool: pending.token });
            }
        }
        if interrupted || self.paused {
            self.out.push(Output::Clear);
        }
        self.paused = false;
        self.next_caption = None;
        let id = speech.id;
        let started = speech.started();
        let (ended, delta, exchange) = speech.end(self.played, interrupted);
        if !delta.is_empty() {
            self.out.push(Output::AgentCaption { speech: id, text: delta });
        }
        if started {
            self.out.push(Output::AgentCaptionEnd { speech: id });
        }
        self.history.extend(exchange);
        self.history.said(&ended.said);
        if let (false, Some(at)) = (ended.said.trim().is_empty(), ended.spoke_at) {
            let at = self.wall(at);
            self.out.push(Output::Line(Line::new(Speaker::Agent, &ended.said, at, ended.interrupted)));
        }
        if let Some(metrics) = ended.metrics {
            self.out.push(Output::Turn(metrics));
        }
        if ended.purpose != Purpose::StillThere {
            self.last_activity = now;
        }
        if interrupted {
            return;
        }
        if ended.end_call && self.ending.is_none() {
            self.ending = Some((EndReason::AgentEnded, now));
        }
        let waiting = self.user.as_ref().is_some_and(|user| user.ended.is_some());
        if ended.failed
            && ended.purpose != Purpose::Apology
            && !waiting
            && self.stopping.is_none()
            && self.ending.is_none()
        {
            self.apologise();
        }
    }

    // ----- time and the end -----

    fn on_tick(&mut self, now: Instant) {
        let speaking = self.agent_speaking();
        let events = self.turn.on_tick(now, speaking);
        let mut audio = Vec::new();
        for event in events {
            self.on_turn_event(event, now, None, &mut audio);
        }
        if let Some(segment) = self.user.as_ref().and_then(|user| user.open)
            && !audio.is_empty()
        {
            self.out.push(Output::Transcribe { segment, audio });
        }
        self.say_filler(now);
        self.check_limits(now);
    }

    /// A slow tool is covered once, so the caller never sits in silence.
    fn say_filler(&mut self, now: Instant) {
        let Some(speech) = &mut self.speech else { return };
        let slow = speech.calls_since.is_some_and(|since| now >= since + self.config.filler_after);
        if !slow || speech.filler_said || speech.pending.iter().all(|call| call.result.is_some()) {
            return;
        }
        speech.filler_said = true;
        let filler = speech
            .pending
            .iter()
            .filter(|call| call.result.is_none())
            .find_map(|call| {
                self.config
                    .tools
                    .iter()
                    .find(|tool| tool.spec.name == call.call.name)
                    .and_then(|tool| tool.filler.clone())
            })
            .unwrap_or_else(|| self.config.filler.clone());
        if filler.trim().is_empty() {
            return;
        }
        speech.queue.push_front(Job::Say(filler));
        self.start_next_job();
    }

    fn check_limits(&mut self, now: Instant) {
        let limits = self.config.limits.clone();
        if self.ending.is_none()
            && self.stopping.is_none()
            && let Some(max) = limits.max_duration
            && now >= self.started + max
        {
            tracing::info!("the call reached its time limit");
            self.end_speech(true, now);
            self.abandon_user();
            self.ending = Some((EndReason::MaxDuration, now + GOODBYE_LIMIT));
            if !limits.goodbye.trim().is_empty() {
                self.start_speech(Purpose::Goodbye, None, Job::Say(limits.goodbye.clone()));
            }
            return;
        }
        if !self.engaged
            && let (Some(joined), Some(after)) = (self.joined_at, limits.no_audio)
            && now >= joined + after
        {
            tracing::info!("the caller has neither a microphone nor a message; ending the call");
            self.hang_up(EndReason::NoAudio);
            return;
        }
        if self.idle() {
            if let Some(after) = limits.silence_hangup
                && now >= self.last_activity + after
            {
                tracing::info!("nobody has spoken for {after:?}; ending the call");
                self.hang_up(EndReason::Silence);
                return;
            }
            if let Some(after) = limits.silence_prompt
                && !self.asked_still_there
                && now >= self.last_activity + after
                && !limits.still_there.trim().is_empty()
            {
                self.asked_still_there = true;
                self.start_speech(Purpose::StillThere, None, Job::Say(limits.still_there.clone()));
            }
        }
    }

    /// Drops the caller's turn in progress without answering it.
    fn abandon_user(&mut self) {
        let Some(user) = self.user.take() else { return };
        for segment in user.segments.iter().filter(|segment| segment.result.is_none()) {
            self.out.push(Output::AbandonTranscription { segment: segment.id });
        }
        if let Some(draft) = user.draft {
            self.drop_speech(draft.speech);
        }
    }

    fn on_stop(&mut self, reason: EndReason, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some((reason, now + STOP_GRACE));
        self.end_speech(true, now);
        let mut audio = Vec::new();
        self.close_segment(&mut audio);
        if let Some(user) = &mut self.user {
            user.ended.get_or_insert(now);
            if let Some(draft) = user.draft.take() {
                self.drop_speech(draft.speech);
            }
        }
        self.try_complete(now);
    }

    fn hang_up(&mut self, reason: EndReason) {
        if self.hung_up {
            return;
        }
        self.end_speech(true, self.now);
        self.abandon_user();
        for (tool, pending) in std::mem::take(&mut self.orphans) {
            tracing::debug!(tool = %pending.call.name, "the call ended before a function did");
            self.out.push(Output::CancelTool { tool });
        }
        self.hung_up = true;
        self.out.push(Output::HangUp(reason));
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

impl UserTurn {
    /// The transcribed words of every segment, in order.
    fn text(&self) -> String {
        let texts = self.segments.iter().filter_map(|segment| match &segment.result {
            Some(Ok(heard)) => Some(heard.text.trim()),
            _ => None,
        });
        join(texts)
    }

    /// The words known so far: transcripts, and partial words of segments still open.
    fn words(&self) -> String {
        let texts = self.segments.iter().map(|segment| match &segment.result {
            Some(Ok(heard)) => heard.text.trim(),
            _ => segment.partial.trim(),
        });
        join(texts)
    }
}

fn join<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    texts.filter(|text| !text.is_empty()).collect::<Vec<_>>().join(" ")
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().filter(|word| word.chars().any(char::is_alphanumeric)).count()
}
