//! One call's conversation: the task that owns turn taking, the history and the reply in
//! flight, fed by the listener, the transcribers and the reply tasks over channels.
//!
//! ```text
//!  caller track ─▶ listen task ─frames─▶ ┌──────────────┐ ─audio─▶ transcribe task (per turn)
//!                                        │ conversation │ ◀─transcript─┘
//!      room ◀─ transcripts, state ────── │  (this task) │ ─script─▶ reply task ─audio─▶ agent track
//!                                        └──────────────┘ ◀─progress──┘
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol::DataPacket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::listen::{Heard, listen};
use super::metrics::TurnMetrics;
use super::record::{Caller, Line, Speaker};
use super::reply::{Mouth, Progress, Script, speak};
use super::speaking::{Ended, Purpose, Speaking, TurnClock};
use super::state::AgentState;
use super::transcribe::{Chunk, transcribe};
use super::turn::{TurnDetector, TurnEvent};
use super::vad;
use crate::audio::AudioFrame;
use crate::livekit::data::{new_segment_id, new_stream_id, user_transcript_packets};
use crate::livekit::room::{ParticipantKind, RemoteAudioTrack, Room, RoomEvent};
use crate::providers::ProviderError;
use crate::providers::llm::{ChatMessage, ChatRequest, Role, ToolSpec};
use crate::providers::stt::{SpeechToText, Transcript};
use crate::worker::EndReason;

/// How often, while the agent speaks, the transcript catches up with the audio played.
const CAPTION_INTERVAL: Duration = Duration::from_millis(100);
/// A caller whose microphone never shows up is greeted after this anyway.
const GREET_WITHOUT_AUDIO: Duration = Duration::from_secs(2);
/// Frames waiting for the conversation; a second of audio.
const HEARD_QUEUE: usize = 50;
/// Silence kept after the caller's last word: enough for its fading end, while the rest of the
/// silence that ended the turn is neither uploaded nor billed.
const TAIL_SAMPLES: usize = vad::SAMPLE_RATE as usize / 10;

/// What the conversation needs that does not change during the call.
pub struct Setup {
    pub room: Room,
    pub mouth: Mouth,
    pub stt: Arc<dyn SpeechToText>,
    pub language: String,
    pub model: String,
    pub temperature: f32,
    pub max_tokens: u32,
    /// The functions offered to the model; they depend on the profile alone.
    pub tools: Vec<ToolSpec>,
    pub system_prompt: String,
    pub greeting: String,
    pub apology: String,
    pub turn: TurnDetector,
    pub vad_aggressiveness: u8,
    pub state: watch::Sender<AgentState>,
}

/// What the call left behind: the conversation as heard, and the figures of every turn.
#[derive(Debug)]
pub struct CallSummary {
    pub transcript: Vec<Line>,
    pub turns: Vec<TurnMetrics>,
    /// The first person who joined.
    pub caller: Option<Caller>,
    pub end_reason: EndReason,
}

/// A task that is stopped when its owner goes away.
struct Owned(JoinHandle<()>);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The caller's utterance being transcribed while they speak.
struct Open {
    audio: mpsc::UnboundedSender<Chunk>,
    /// Silence since the last speech, sent only if speech follows.
    held: Vec<i16>,
    result: oneshot::Receiver<Result<Transcript, ProviderError>>,
    last_speech: Instant,
    /// When the speech began, Unix ms.
    started_ms: i64,
    _task: Owned,
}

/// A finished turn waiting for its transcript.
struct Pending {
    result: oneshot::Receiver<Result<Transcript, ProviderError>>,
    last_speech: Instant,
    ended: Instant,
    started_ms: i64,
    _task: Owned,
}

enum Greeting {
    /// Waiting for the caller; `since` is when they joined.
    Due {
        since: Option<Instant>,
    },
    Done,
}

pub struct Conversation {
    setup: Setup,
    history: Vec<ChatMessage>,
    people: HashMap<String, ParticipantKind>,
    /// The identity and track sid of the audio being listened to.
    caller: Option<(String, String)>,
    listener: Option<Owned>,
    heard_tx: mpsc::Sender<Heard>,
    heard: mpsc::Receiver<Heard>,
    utterance: Option<Open>,
    pending: VecDeque<Pending>,
    speaking: Option<Speaking>,
    progress_tx: mpsc::UnboundedSender<(u64, Progress)>,
    progress: mpsc::UnboundedReceiver<(u64, Progress)>,
    next_reply: u64,
    greeting: Greeting,
    apology_audio: Option<Arc<[AudioFrame]>>,
    apology_ready: Option<oneshot::Receiver<Arc<[AudioFrame]>>>,
    turns: Vec<TurnMetrics>,
    transcript: Vec<Line>,
    first_caller: Option<Caller>,
    /// The model ended the call; it ends once nothing more is to be said.
    ending: bool,
    /// When the transcript next catches up with the audio; kept across loop turns, since
    /// frames arrive more often than the interval.
    next_caption: Instant,
}

impl Conversation {
    /// `apology_ready` delivers the apology once synthesised (it is dropped if that failed).
    pub fn new(setup: Setup, apology_ready: oneshot::Receiver<Arc<[AudioFrame]>>) -> Self {
        let (heard_tx, heard) = mpsc::channel(HEARD_QUEUE);
        let (progress_tx, progress) = mpsc::unbounded_channel();
        let history = vec![ChatMessage::system(setup.system_prompt.clone())];
        let greeting = if setup.greeting.trim().is_empty() { Greeting::Done } else { Greeting::Due { since: None } };
        Self {
            setup,
            history,
            people: HashMap::new(),
            caller: None,
            listener: None,
            heard_tx,
            heard,
            utterance: None,
            pending: VecDeque::new(),
            speaking: None,
            progress_tx,
            progress,
            next_reply: 0,
            greeting,
            apology_audio: None,
            apology_ready: Some(apology_ready),
            turns: Vec::new(),
            transcript: Vec::new(),
            first_caller: None,
            ending: false,
            next_caption: Instant::now(),
        }
    }

    /// Runs until the room ends, `stop` says why the call must end, or the agent hangs up.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<RoomEvent>,
        mut stop: watch::Receiver<Option<EndReason>>,
    ) -> CallSummary {
        self.set_state(AgentState::Listening);
        let reason = loop {
            if self.ending && self.speaking.is_none() {
                tracing::info!("the agent ended the call");
                break EndReason::AgentEnded;
            }
            let wake = tokio::time::Instant::from_std(self.next_wake());
            tokio::select! {
                reason = stopped(&mut stop) => break reason,
                event = events.recv() => match event {
                    Some(RoomEvent::Disconnected { reason }) => {
                        tracing::info!("left the room: {reason}");
                        break EndReason::RoomClosed;
                    }
                    Some(event) => self.on_room_event(event),
                    None => break EndReason::RoomClosed,
                },
                Some(heard) = self.heard.recv() => self.on_heard(heard).await,
                Some((id, progress)) = self.progress.recv() => self.on_progress(id, progress).await,
                result = next_transcript(&mut self.pending) => self.on_transcript(result).await,
                audio = wait_apology(&mut self.apology_ready) => {
                    self.apology_ready = None;
                    self.apology_audio = audio;
                }
                () = tokio::time::sleep_until(wake) => self.on_tick(Instant::now()).await,
            }
        };
        self.hang_up(reason).await
    }

    fn set_state(&self, state: AgentState) {
        self.setup.state.send_if_modified(|current| std::mem::replace(current, state) != state);
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(3600);
        if let Some(deadline) = self.setup.turn.next_deadline() {
            wake = wake.min(deadline);
        }
        if self.speaking.is_some() {
            wake = wake.min(self.next_caption);
        }
        if let Greeting::Due { since: Some(since) } = self.greeting {
            wake = wake.min(since + GREET_WITHOUT_AUDIO);
        }
        wake
    }

    fn on_room_event(&mut self, event: RoomEvent) {
        match event {
            RoomEvent::ParticipantConnected(participant) => {
                if participant.kind != ParticipantKind::Agent
                    && let Greeting::Due { since: since @ None } = &mut self.greeting
                {
                    *since = Some(Instant::now());
                }
                if participant.kind != ParticipantKind::Agent && self.first_caller.is_none() {
                    let (identity, name) = (participant.identity.clone(), participant.name.clone());
                    self.first_caller = Some(Caller { identity, name });
                }
                self.people.insert(participant.identity, participant.kind);
            }
            RoomEvent::ParticipantDisconnected { participant, .. } => {
                self.people.remove(&participant.identity);
            }
            RoomEvent::TrackSubscribed { track } => self.on_track(track),
            _ => {}
        }
    }

    /// Listens to a person's new audio track (a republished microphone replaces the old one).
    fn on_track(&mut self, track: RemoteAudioTrack) {
        if self.people.get(&track.participant_identity) == Some(&ParticipantKind::Agent) {
            return;
        }
        tracing::info!(caller = %track.participant_identity, track = %track.track_sid, "listening");
        self.caller = Some((track.participant_identity.clone(), track.track_sid.clone()));
        self.utterance = None;
        let task = tokio::spawn(listen(track, self.setup.vad_aggressiveness, self.heard_tx.clone()));
        self.listener = Some(Owned(task));
        if matches!(self.greeting, Greeting::Due { .. }) {
            self.greet();
        }
    }

    fn greet(&mut self) {
        self.greeting = Greeting::Done;
        let greeting = self.setup.greeting.clone();
        self.start_reply(Script::Line(greeting), Purpose::Greeting, None);
    }

    /// Whether a reply is under way for turn taking: from its first audio until it has all
    /// played, gaps between sentences and pauses included.
    fn agent_speaking(&self) -> bool {
        let track = &self.setup.mouth.track;
        self.speaking.as_ref().is_some_and(|speaking| speaking.started() && !speaking.complete(track))
    }

    async fn on_heard(&mut self, heard: Heard) {
        if self.caller.as_ref().is_none_or(|(_, sid)| *sid != heard.track_sid) {
            return;
        }
        let mut audio = Vec::new();
        for frame in &heard.frames {
            let speaking = self.agent_speaking();
            let events = self.setup.turn.on_frame(heard.at, frame, speaking);
            let mut started = false;
            for event in events {
                started |= matches!(event, TurnEvent::SpeechStarted { .. });
                self.on_turn_event(event, heard.at, &mut audio).await;
            }
            // The pre-roll of `SpeechStarted` already ends with this frame.
            if let Some(open) = &mut self.utterance
                && !started
            {
                if frame.speech {
                    open.last_speech = heard.at;
                    audio.append(&mut open.held);
                    audio.extend_from_slice(&frame.samples);
                } else {
                    open.held.extend_from_slice(&frame.samples);
                }
            }
        }
        if let Some(open) = &self.utterance
            && !audio.is_empty()
        {
            let _ = open.audio.send(Chunk::Audio(audio));
        }
    }

    /// Handles one turn-taking event; `audio` collects what goes to the open utterance and is
    /// sent before the utterance ends.
    async fn on_turn_event(&mut self, event: TurnEvent, at: Instant, audio: &mut Vec<i16>) {
        let track = self.setup.mouth.track.clone();
        match event {
            TurnEvent::SpeechStarted { pre_roll } => {
                let (audio_tx, audio_rx) = mpsc::unbounded_channel();
                let (result_tx, result) = oneshot::channel();
                let stt = self.setup.stt.clone();
                let task = tokio::spawn(transcribe(stt, self.setup.language.clone(), audio_rx, result_tx));
                audio.clear();
                audio.extend_from_slice(&pre_roll);
                let started_ms = now_ms() - i64::try_from(at.elapsed().as_millis()).unwrap_or(0);
                self.utterance = Some(Open {
                    audio: audio_tx,
                    held: Vec::new(),
                    result,
                    last_speech: at,
                    started_ms,
                    _task: Owned(task),
                });
            }
            TurnEvent::UserTurnEnded { speech } => {
                let Some(open) = self.utterance.take() else { return };
                audio.extend_from_slice(&open.held[..open.held.len().min(TAIL_SAMPLES)]);
                if !audio.is_empty() {
                    let _ = open.audio.send(Chunk::Audio(std::mem::take(audio)));
                }
                let _ = open.audio.send(Chunk::End);
                tracing::debug!(speech_ms = speech.as_millis(), "the caller's turn ended");
                self.pending.push_back(Pending {
                    result: open.result,
                    last_speech: open.last_speech,
                    ended: at,
                    started_ms: open.started_ms,
                    _task: open._task,
                });
                // The caller said more while the agent was still thinking: answer everything.
                if let Some(speaking) = self.speaking.as_ref()
                    && speaking.purpose == Purpose::Answer
                    && !speaking.started()
                {
                    self.stop_speaking(false).await;
                }
                if self.speaking.is_none() {
                    self.set_state(AgentState::Thinking);
                }
            }
            TurnEvent::Discarded => {
                self.utterance = None;
                audio.clear();
            }
            TurnEvent::PauseAgent => {
                tracing::debug!("the caller may be interrupting; pausing");
                track.pause();
            }
            TurnEvent::ResumeAgent => {
                tracing::debug!("not an interruption; resuming");
                track.resume();
            }
            TurnEvent::Interrupt => {
                tracing::info!("the caller interrupted");
                self.stop_speaking(true).await;
                self.set_state(AgentState::Listening);
            }
        }
    }

    /// Stops the reply in flight now: no more of its audio plays.
    async fn stop_speaking(&mut self, interrupted: bool) {
        let Some(mut speaking) = self.speaking.take() else { return };
        speaking.cancel().await;
        let track = &self.setup.mouth.track;
        track.clear();
        track.resume();
        let ended = speaking.end(track, interrupted);
        self.reply_ended(ended, false).await;
    }

    async fn on_transcript(&mut self, heard: HeardTurn) {
        let HeardTurn { result, last_speech, ended, started_ms } = heard;
        let transcript = match result {
            Ok(transcript) => transcript,
            Err(error) => {
                tracing::warn!("speech-to-text failed: {error}");
                if self.pending.is_empty() && self.speaking.is_none() {
                    self.apologise();
                }
                return;
            }
        };
        let text = transcript.text.trim();
        if text.is_empty() {
            tracing::debug!("nothing intelligible in the caller's turn");
            if self.pending.is_empty() && self.speaking.is_none() {
                self.set_state(AgentState::Listening);
            }
            return;
        }
        tracing::info!(stt_ms = transcript.latency.as_millis(), text, "the caller said");
        self.send_user_transcript(text).await;
        self.history.push(ChatMessage::user(text));
        self.transcript.push(Line::new(Speaker::Caller, text, started_ms, false));
        if self.speaking.is_some() {
            // The agent began something (a greeting, an answer) after this turn ended; the newer
            // turn takes precedence, as it would in a conversation between people.
            self.stop_speaking(true).await;
        }
        if !self.pending.is_empty() {
            return;
        }
        let request = ChatRequest {
            model: self.setup.model.clone(),
            messages: self.history.clone(),
            temperature: self.setup.temperature,
            max_tokens: self.setup.max_tokens,
            tools: self.setup.tools.clone(),
        };
        let clock = TurnClock { last_speech, ended, stt: transcript.latency, asked: Instant::now() };
        self.set_state(AgentState::Thinking);
        self.start_reply(Script::Answer(request), Purpose::Answer, Some(clock));
    }

    async fn send_user_transcript(&self, text: &str) {
        let Some((identity, track_sid)) = &self.caller else { return };
        let packets = user_transcript_packets(
            identity,
            &new_segment_id(),
            Some(track_sid),
            text,
            true,
            now_ms(),
            new_stream_id(),
        );
        self.send(packets).await;
    }

    fn apologise(&mut self) {
        let text = self.setup.apology.clone();
        let script = match &self.apology_audio {
            Some(audio) => Script::Recorded { text, audio: audio.clone() },
            None => Script::Line(text),
        };
        self.start_reply(script, Purpose::Apology, None);
    }

    fn start_reply(&mut self, script: Script, purpose: Purpose, clock: Option<TurnClock>) {
        self.next_reply += 1;
        let id = self.next_reply;
        let task = tokio::spawn(speak(self.setup.mouth.clone(), script, id, self.progress_tx.clone()));
        self.speaking = Some(Speaking::new(id, purpose, task, clock));
    }

    async fn on_progress(&mut self, id: u64, progress: Progress) {
        let track = self.setup.mouth.track.clone();
        let Some(speaking) = self.speaking.as_mut().filter(|speaking| speaking.id == id) else { return };
        let was_started = speaking.started();
        let packets = speaking.on_progress(progress, &track, now_ms());
        let started = speaking.started();
        self.send(packets).await;
        if started && !was_started {
            self.set_state(AgentState::Speaking);
        }
        self.settle().await;
    }

    async fn on_tick(&mut self, now: Instant) {
        let speaking = self.agent_speaking();
        let events = self.setup.turn.on_tick(now, speaking);
        let mut audio = Vec::new();
        for event in events {
            self.on_turn_event(event, now, &mut audio).await;
        }
        if let Greeting::Due { since: Some(since) } = self.greeting
            && now >= since + GREET_WITHOUT_AUDIO
        {
            tracing::info!("the caller has no microphone yet; greeting anyway");
            self.greet();
        }
        if let Some(speaking) = &mut self.speaking
            && now >= self.next_caption
        {
            self.next_caption = now + CAPTION_INTERVAL;
            let packets = speaking.advance(&self.setup.mouth.track);
            self.send(packets).await;
        }
        self.settle().await;
    }

    /// Ends the reply if it has finished playing.
    async fn settle(&mut self) {
        let track = self.setup.mouth.track.clone();
        if self.speaking.as_ref().is_some_and(|speaking| speaking.complete(&track))
            && let Some(speaking) = self.speaking.take()
        {
            let ended = speaking.end(&track, false);
            self.reply_ended(ended, true).await;
        }
    }

    /// Records what the caller heard; after a failure the agent apologises, unless the caller
    /// has already moved on (`may_follow` is false when the reply was cut off).
    async fn reply_ended(&mut self, ended: Ended, may_follow: bool) {
        let Ended { purpose, said, failed, metrics, packets, tools, end_call, interrupted, spoke_at_ms } = ended;
        self.send(packets).await;
        // The calls and their results come before the words: the model wrote them first.
        self.history.extend(tools);
        if let (false, Some(at_ms)) = (said.trim().is_empty(), spoke_at_ms) {
            self.transcript.push(Line::new(Speaker::Agent, &said, at_ms, interrupted));
        }
        // Cut off during its goodbye, the agent stays: the caller has more to say.
        self.ending |= end_call && may_follow;
        if !said.trim().is_empty() {
            match self.history.last_mut() {
                Some(last) if last.role == Role::Assistant => {
                    last.content.push(' ');
                    last.content.push_str(said.trim());
                }
                _ => self.history.push(ChatMessage::assistant(said.trim())),
            }
        }
        if let Some(metrics) = metrics {
            metrics.log(self.turns.len() + 1);
            self.turns.push(metrics);
        }
        if may_follow && failed.is_some() && purpose != Purpose::Apology && self.pending.is_empty() {
            self.apologise();
            return;
        }
        if self.speaking.is_none() {
            let idle = if self.pending.is_empty() { AgentState::Listening } else { AgentState::Thinking };
            self.set_state(idle);
        }
    }

    async fn send(&self, packets: Vec<DataPacket>) {
        if packets.is_empty() {
            return;
        }
        if let Err(e) = self.setup.room.send_packets(packets).await {
            tracing::warn!("cannot send a transcript: {e}");
        }
    }

    /// The call is over: what was said so far is final.
    async fn hang_up(mut self, end_reason: EndReason) -> CallSummary {
        if let Some(mut speaking) = self.speaking.take() {
            speaking.cancel().await;
            let ended = speaking.end(&self.setup.mouth.track, true);
            self.reply_ended(ended, false).await;
        }
        self.listener = None;
        CallSummary { transcript: self.transcript, turns: self.turns, caller: self.first_caller, end_reason }
    }
}

/// A finished turn with its transcript (or why there is none).
struct HeardTurn {
    result: Result<Transcript, ProviderError>,
    last_speech: Instant,
    ended: Instant,
    started_ms: i64,
}

/// The transcript of the oldest finished turn; turns are answered in the order they were spoken.
async fn next_transcript(pending: &mut VecDeque<Pending>) -> HeardTurn {
    let Some(front) = pending.front_mut() else { return std::future::pending().await };
    let result = (&mut front.result).await.unwrap_or_else(|_| {
        Err(ProviderError::Protocol { provider: "speech-to-text", message: "the transcriber stopped".into() })
    });
    let heard = HeardTurn { result, last_speech: front.last_speech, ended: front.ended, started_ms: front.started_ms };
    pending.pop_front();
    heard
}

async fn wait_apology(ready: &mut Option<oneshot::Receiver<Arc<[AudioFrame]>>>) -> Option<Arc<[AudioFrame]>> {
    match ready {
        Some(ready) => ready.await.ok(),
        None => std::future::pending().await,
    }
}

/// Why the call must end, once it must; a worker that goes away ends it too.
async fn stopped(stop: &mut watch::Receiver<Option<EndReason>>) -> EndReason {
    match stop.wait_for(Option::is_some).await {
        Ok(reason) => reason.unwrap_or(EndReason::WorkerShutdown),
        Err(_) => EndReason::WorkerShutdown,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
