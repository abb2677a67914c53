//! The conversation core driven frame by frame on a virtual clock, with a scripted stand-in for
//! the shell: jobs answer from a script, audio plays on a simulated track (which pauses, clears
//! and resumes as told), transcripts and tool results come back after set delays.

mod barge_in;
mod invariants;
mod limits;
mod noisy_rooms;
mod preemptive;
mod tools;
mod turns;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::*;
use crate::pipeline::vad::FRAME_SAMPLES;
use crate::profiles::LeadFieldKind;

pub(super) const FRAME: Duration = Duration::from_millis(20);
/// Synthesised speech lasts this long per word in the simulation.
pub(super) const PER_WORD: Duration = Duration::from_millis(300);

/// Where the noisy-room suite finds the repository's fixtures.
pub(super) fn repo_path(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The noisy-room suite of the integration tests, shared so the whole grid can run through the
/// core on a virtual clock.
#[path = "../../../../tests/support/noise.rs"]
#[allow(dead_code)]
pub(super) mod noise;

pub(super) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub(super) fn config() -> CoreConfig {
    CoreConfig {
        turn: TurnConfig::default(),
        endpointing: None,
        preemptive: false,
        min_interruption_words: 0,
        chat: ChatSettings { model: "test-model".into(), temperature: 0.5, max_tokens: 200 },
        system_prompt: "You are Aria.".into(),
        greeting: "Hello! How can I help?".into(),
        apology: "Sorry, say that again?".into(),
        lead_fields: vec![crate::profiles::LeadField {
            name: "name".into(),
            description: "The caller's name".into(),
            kind: LeadFieldKind::Text,
            required: true,
        }],
        tools: Vec::new(),
        filler: "One moment please.".into(),
        filler_after: ms(700),
        max_tool_rounds: 4,
        history_budget: 0,
        limits: no_limits(),
    }
}

/// Calls that never end on their own, unless a test sets a limit.
pub(super) fn no_limits() -> CallLimits {
    CallLimits {
        max_duration: None,
        goodbye: String::new(),
        silence_prompt: None,
        still_there: String::new(),
        silence_hangup: None,
        no_audio: None,
    }
}

/// What the scripted model answers to one round.
#[derive(Debug, Clone)]
pub(super) enum Reply {
    Text(&'static str),
    /// Calls, each `(name, arguments)`, after optional words.
    Calls(&'static str, Vec<(&'static str, &'static str)>),
    Fail,
    /// Never answers (a slow model).
    Hang,
}

/// A job the stand-in shell is running.
#[derive(Debug)]
struct Running {
    job: u64,
    work: Job,
    /// Releases a held answer.
    held: bool,
    /// The script's answer, delivered when released.
    reply: Option<Reply>,
}

pub(super) struct Call {
    pub core: ConversationCore,
    pub now: Instant,
    pub start: Instant,
    /// Every output, with the time it came.
    pub log: Vec<(Duration, Output)>,
    replies: VecDeque<Reply>,
    /// Transcripts given to finished segments, in order; an `Err` fails that segment.
    transcripts: VecDeque<Result<&'static str, &'static str>>,
    /// The transcript of a segment when none is scripted.
    pub fallback_transcript: &'static str,
    pub stt_delay: Duration,
    /// Finished segments waiting for their transcript: (due, segment).
    due_transcripts: Vec<(Instant, u64, Result<Heard, String>)>,
    /// Partial words sent for open segments: (segment, after this much audio, text).
    pub partials: Vec<(u64, Duration, String)>,
    segment_audio: BTreeMap<u64, usize>,
    tool_results: VecDeque<(Duration, ToolOutput)>,
    due_tools: Vec<(Instant, u64, ToolOutput)>,
    pub requests: Vec<ChatRequest>,
    running: Vec<Running>,
    // The simulated track.
    pub played: Duration,
    queued_end: Duration,
    paused: bool,
    track_idle: bool,
    talk_started: Option<Instant>,
    pub listening: Option<String>,
    pub hung_up: Option<EndReason>,
}

impl Call {
    pub fn new(config: CoreConfig) -> Self {
        let start = Instant::now();
        Self {
            core: ConversationCore::new(config, start, 1_767_225_600_000),
            now: start,
            start,
            log: Vec::new(),
            replies: VecDeque::new(),
            transcripts: VecDeque::new(),
            fallback_transcript: "",
            stt_delay: ms(100),
            due_transcripts: Vec::new(),
            partials: Vec::new(),
            segment_audio: BTreeMap::new(),
            tool_results: VecDeque::new(),
            due_tools: Vec::new(),
            requests: Vec::new(),
            running: Vec::new(),
            played: Duration::ZERO,
            queued_end: Duration::ZERO,
            paused: false,
            track_idle: true,
            talk_started: None,
            listening: None,
            hung_up: None,
        }
    }

    /// A caller joined and publishes a microphone.
    pub fn with_caller(config: CoreConfig) -> Self {
        let mut call = Self::new(config);
        call.input(Input::Joined { identity: "caller".into(), name: "Asha".into(), agent: false });
        call.input(Input::Track { identity: "caller".into(), track: "TR_mic".into() });
        call
    }

    pub fn replies(&mut self, replies: impl IntoIterator<Item = Reply>) {
        self.replies.extend(replies);
    }

    pub fn transcripts(&mut self, texts: impl IntoIterator<Item = Result<&'static str, &'static str>>) {
        self.transcripts.extend(texts);
    }

    pub fn tool_results(&mut self, results: impl IntoIterator<Item = (Duration, ToolOutput)>) {
        self.tool_results.extend(results);
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn input(&mut self, input: Input) {
        let outputs = self.core.handle(input, self.now);
        self.apply(outputs);
    }

    /// Carries out what the core asked, as the shell would.
    fn apply(&mut self, outputs: Vec<Output>) {
        let mut follow = Vec::new();
        for output in outputs {
            let at = self.elapsed();
            match &output {
                Output::Listen { track } => self.listening = Some(track.clone()),
                Output::StartTranscription { segment, audio } => {
                    self.segment_audio.insert(*segment, audio.len());
                }
                Output::Transcribe { segment, audio } => {
                    *self.segment_audio.entry(*segment).or_default() += audio.len();
                }
                Output::FinishTranscription { segment } => {
                    let result = match self.transcripts.pop_front() {
                        Some(Ok(text)) => Ok(Heard { text: text.into(), latency: self.stt_delay }),
                        Some(Err(error)) => Err(error.to_owned()),
                        None => Ok(Heard { text: self.fallback_transcript.into(), latency: self.stt_delay }),
                    };
                    self.due_transcripts.push((self.now + self.stt_delay, *segment, result));
                }
                Output::AbandonTranscription { segment } => {
                    self.due_transcripts.retain(|(_, id, _)| id != segment);
                }
                Output::StartJob { job, work, .. } => {
                    if let Job::Generate { request, .. } = work {
                        self.requests.push(request.clone());
                    }
                    let held = matches!(work, Job::Generate { hold: true, .. });
                    let reply = matches!(work, Job::Generate { .. })
                        .then(|| self.replies.pop_front().unwrap_or(Reply::Text("OK.")));
                    self.running.push(Running { job: *job, work: work.clone(), held, reply });
                    follow.extend(self.step_job(*job));
                }
                Output::Release { job } => {
                    if let Some(running) = self.running.iter_mut().find(|r| r.job == *job) {
                        running.held = false;
                    }
                    follow.extend(self.step_job(*job));
                }
                Output::CancelJob { job } => self.running.retain(|r| r.job != *job),
                Output::CallTool { tool, .. } => {
                    let (delay, result) = self
                        .tool_results
                        .pop_front()
                        .unwrap_or((ms(10), ToolOutput { result: "{\"ok\":true}".into(), say: None, end_call: false }));
                    self.due_tools.push((self.now + delay, *tool, result));
                }
                Output::CancelTool { tool } => self.due_tools.retain(|(_, id, _)| id != tool),
                Output::PrepareApology => follow.push(Input::ApologyReady(true)),
                Output::Pause => self.paused = true,
                Output::Resume => self.paused = false,
                Output::Clear => {
                    self.queued_end = self.played;
                    self.paused = false;
                    self.track_idle = true;
                }
                Output::HangUp(reason) => self.hung_up = Some(*reason),
                _ => {}
            }
            self.log.push((at, output));
        }
        for input in follow {
            self.input(input);
        }
    }

    /// Runs a job as far as it can go now: fixed words are synthesised at once; a model round
    /// answers from the script unless it is held or hangs.
    fn step_job(&mut self, job: u64) -> Vec<Input> {
        let Some(at) = self.running.iter().position(|r| r.job == job) else { return Vec::new() };
        if self.running[at].held {
            if let Some(Reply::Calls(..) | Reply::Text(_)) = &self.running[at].reply {
                return vec![Input::Job { job, event: JobEvent::FirstToken }];
            }
            return Vec::new();
        }
        let running = self.running.remove(at);
        let mut events = Vec::new();
        let mut say = |text: &str, events: &mut Vec<JobEvent>| {
            if text.is_empty() {
                return;
            }
            let duration = PER_WORD * text.split_whitespace().count() as u32;
            let start = self.queued_end.max(self.played);
            self.queued_end = start + duration;
            events.push(JobEvent::FirstAudio { synthesis: ms(0) });
            events.push(JobEvent::Sentence { text: text.into(), start, duration });
        };
        match (&running.work, running.reply) {
            (Job::Say(text), _) => {
                say(text, &mut events);
                events.push(JobEvent::Done { text: text.clone() });
            }
            (Job::PlayApology, _) => {
                let text = self.core.config.apology.clone();
                say(&text, &mut events);
                events.push(JobEvent::Done { text });
            }
            (Job::Generate { .. }, Some(Reply::Text(text))) => {
                events.push(JobEvent::FirstToken);
                say(text, &mut events);
                events.push(JobEvent::Done { text: text.into() });
            }
            (Job::Generate { .. }, Some(Reply::Calls(text, calls))) => {
                events.push(JobEvent::FirstToken);
                say(text, &mut events);
                let calls = calls
                    .iter()
                    .enumerate()
                    .map(|(n, (name, arguments))| ToolCall {
                        id: format!("call_{job}_{n}"),
                        name: (*name).into(),
                        arguments: (*arguments).into(),
                    })
                    .collect();
                events.push(JobEvent::ToolCalls(calls));
                events.push(JobEvent::Done { text: text.into() });
            }
            (Job::Generate { .. }, Some(Reply::Fail)) => {
                events.push(JobEvent::Failed { stage: Stage::Llm, error: "HTTP 500".into() })
            }
            (Job::Generate { .. }, Some(Reply::Hang) | None) => {
                self.running.push(Running { job, work: running.work, held: false, reply: Some(Reply::Hang) });
            }
        }
        events.into_iter().map(|event| Input::Job { job, event }).collect()
    }

    /// One 20 ms frame of the caller's microphone.
    pub fn frame(&mut self, speech: bool) {
        let value = if speech { 1_000 } else { 0 };
        self.feed(VadFrame { speech, samples: [value; FRAME_SAMPLES] });
    }

    /// One 20 ms frame as the voice detector decided it, arriving 20 ms after the previous.
    pub fn feed(&mut self, frame: VadFrame) {
        self.pass(FRAME);
        let track = self.listening.clone().unwrap_or_default();
        self.input(Input::Frames { track, frames: vec![frame] });
        self.send_partials();
    }

    pub fn speak(&mut self, millis: u64) {
        for _ in 0..millis / 20 {
            self.frame(true);
        }
    }

    pub fn silence(&mut self, millis: u64) {
        for _ in 0..millis / 20 {
            self.frame(false);
        }
    }

    /// Lets time pass without frames (a muted or absent microphone).
    pub fn wait(&mut self, millis: u64) {
        for _ in 0..millis / 20 {
            self.pass(FRAME);
        }
    }

    fn send_partials(&mut self) {
        let audio = &self.segment_audio;
        let heard = |segment: &u64, after: &Duration| {
            audio.get(segment).is_some_and(|samples| Duration::from_millis(*samples as u64 / 16) >= *after)
        };
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.partials).into_iter().partition(|(segment, after, _)| heard(segment, after));
        self.partials = waiting;
        for (segment, _, text) in ready {
            self.input(Input::Partial { segment, text });
        }
    }

    /// Advances the clock by `step`: audio plays, results come due, deadlines tick.
    fn pass(&mut self, step: Duration) {
        let target = self.now + step;
        let mut ticks = 0;
        loop {
            ticks += 1;
            assert!(
                ticks < 1_000,
                "a deadline that never passes: now {:?}, turn {:?}, caption {:?}, speech {:?}, user {:?}",
                self.core.now,
                self.core.turn.next_deadline(),
                self.core.next_caption,
                self.core.speech.as_ref().map(|s| (s.id, s.started(), s.remaining(self.core.played), s.pending.len())),
                self.core.user.as_ref().map(|u| (u.ended, u.open, u.segments.len())),
            );
            let next = self.core.next_deadline().filter(|deadline| *deadline < target);
            let until = next.unwrap_or(target).max(self.now);
            self.play_until(until);
            self.now = until;
            self.deliver_due();
            if next.is_some() {
                self.input(Input::Tick);
            }
            if self.now >= target {
                break;
            }
        }
    }

    fn play_until(&mut self, until: Instant) {
        if self.paused || until <= self.now {
            return;
        }
        let before = self.played;
        if before < self.queued_end {
            if self.track_idle {
                self.talk_started = Some(self.now);
                self.track_idle = false;
            }
            self.played = (before + (until - self.now)).min(self.queued_end);
            self.track_idle = self.played >= self.queued_end;
            let played = self.played;
            self.input(Input::Played { played, talk_started: self.talk_started });
        }
    }

    fn deliver_due(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = self.due_transcripts.drain(..).partition(|(at, _, _)| *at <= now);
        self.due_transcripts = later;
        for (_, segment, result) in due {
            self.input(Input::Transcript { segment, result });
        }
        let (due, later): (Vec<_>, Vec<_>) = self.due_tools.drain(..).partition(|(at, _, _)| *at <= now);
        self.due_tools = later;
        for (_, tool, output) in due {
            self.input(Input::ToolResult { tool, output });
        }
    }

    /// Audio queued on the simulated track up to `end`, as a job's sentence would.
    pub fn queue_until(&mut self, end: Duration) {
        self.queued_end = self.queued_end.max(end);
    }

    // ----- reading the log -----

    pub fn outputs(&self) -> impl Iterator<Item = &Output> {
        self.log.iter().map(|(_, output)| output)
    }

    /// The transcript lines for the record, as (speaker, text, interrupted).
    pub fn lines(&self) -> Vec<(Speaker, String, bool)> {
        self.outputs()
            .filter_map(|output| match output {
                Output::Line(line) => Some((line.speaker, line.text.clone(), line.interrupted)),
                _ => None,
            })
            .collect()
    }

    /// The agent's captions put together per speech.
    pub fn captions(&self) -> Vec<String> {
        let mut speeches: Vec<(u64, String)> = Vec::new();
        for output in self.outputs() {
            if let Output::AgentCaption { speech, text } = output {
                match speeches.iter_mut().find(|(id, _)| id == speech) {
                    Some((_, all)) => all.push_str(text),
                    None => speeches.push((*speech, text.clone())),
                }
            }
        }
        speeches.into_iter().map(|(_, text)| text.trim().to_owned()).collect()
    }

    pub fn states(&self) -> Vec<AgentState> {
        self.outputs()
            .filter_map(|output| match output {
                Output::State(state) => Some(*state),
                _ => None,
            })
            .collect()
    }

    /// When (since the start) the first output matching `wanted` came.
    pub fn when(&self, wanted: impl Fn(&Output) -> bool) -> Option<Duration> {
        self.log.iter().find(|(_, output)| wanted(output)).map(|(at, _)| *at)
    }

    pub fn count(&self, wanted: impl Fn(&Output) -> bool) -> usize {
        self.outputs().filter(|output| wanted(output)).count()
    }

    /// The model requests' last message texts.
    pub fn asked(&self) -> Vec<String> {
        self.requests.iter().map(|r| r.messages.last().map(|m| m.content.clone()).unwrap_or_default()).collect()
    }

    pub fn turns(&self) -> Vec<TurnMetrics> {
        self.outputs()
            .filter_map(|output| match output {
                Output::Turn(metrics) => Some(metrics.clone()),
                _ => None,
            })
            .collect()
    }

    /// Plays the greeting to its end.
    pub fn after_greeting(config: CoreConfig) -> Self {
        let mut call = Self::with_caller(config);
        call.silence(3_000);
        call
    }
}

pub(super) fn is_pause(output: &Output) -> bool {
    matches!(output, Output::Pause)
}

pub(super) fn is_clear(output: &Output) -> bool {
    matches!(output, Output::Clear)
}

pub(super) fn is_resume(output: &Output) -> bool {
    matches!(output, Output::Resume)
}
