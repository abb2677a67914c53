//! The thin async shell around [`ConversationCore`]: it owns the room, the agent's track, the
//! providers, the tasks and the timers, turns what happens into [`Input`]s and carries out the
//! core's [`Output`]s. It decides nothing.
//!
//! ```text
//!  caller track ─▶ listen task ─frames─▶ ┌────────┐ ─audio─▶ transcribe task (per segment)
//!  room events ────────────────────────▶ │  core  │ ◀─words──┘
//!  timers ─────────────────────────────▶ │        │ ─jobs──▶ job task (model, synthesis) ─▶ agent track
//!      room ◀─ captions, state ───────── └────────┘ ◀─progress─┘   tool task ─result─▶ core
//! ```

mod captions;
pub(crate) mod jobs;
mod listen;
mod transcribe;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::core::{ConversationCore, Input, Output};
use super::metrics::TurnMetrics;
use super::record::Line;
use super::speakable::speakable;
use super::state::AgentState;
use crate::agent::{AgentHooks, CallContext, CallSummary, Tool, ToolOutput, ToolRequest};
use crate::audio::AudioFrame;
use crate::livekit::data::TextStreamEvent;
use crate::livekit::room::{ParticipantKind, RemoteAudioTrack, Room, RoomEvent};
use crate::metrics::WorkerMetrics;
use crate::pipeline::vad::VadConfig;
use crate::providers::stt::SpeechToText;
use crate::worker::EndReason;
use captions::Captions;
use jobs::Voice;
use listen::{Heard, listen};
use transcribe::{Chunk, transcribe};

/// Frames waiting for the conversation: a second of audio.
const HEARD_QUEUE: usize = 50;
/// Reports of tasks waiting for the conversation.
const REPORT_QUEUE: usize = 256;
/// The topic LiveKit's clients send typed messages on.
const CHAT_TOPIC: &str = "lk.chat";
/// Chat streams being received at once; more are ignored (a caller types one message at a time).
const MAX_OPEN_CHATS: usize = 8;
/// The apology is rehearsed ahead of need; after this it is synthesised when needed.
const APOLOGY_TIMEOUT: Duration = Duration::from_secs(15);

/// A task stopped when its owner lets go of it.
struct Owned(JoinHandle<()>);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the shell runs a call with.
pub(crate) struct Equipment {
    pub call_id: String,
    /// When the call started, Unix ms.
    pub started_ms: i64,
    pub hooks: Arc<dyn AgentHooks>,
    pub room: Room,
    pub voice: Voice,
    pub stt: Arc<dyn SpeechToText>,
    pub language: String,
    pub vad: VadConfig,
    pub apology: String,
    pub tools: Vec<Arc<dyn Tool>>,
    pub context: CallContext,
    pub state: watch::Sender<AgentState>,
    pub metrics: WorkerMetrics,
}

/// What the call left behind.
pub(crate) struct Outcome {
    pub end_reason: EndReason,
    /// Everything but the end reason, which the caller of [`Shell::run`] sets.
    pub summary: CallSummary,
}

pub(crate) struct Shell {
    core: ConversationCore,
    kit: Equipment,
    /// Subscribed audio tracks not listened to yet, by sid.
    tracks: HashMap<String, RemoteAudioTrack>,
    /// Who each track belongs to.
    owners: HashMap<String, String>,
    listening: Option<(String, String, Owned)>,
    heard_tx: mpsc::Sender<Heard>,
    heard: mpsc::Receiver<Heard>,
    report_tx: mpsc::Sender<Input>,
    reports: mpsc::Receiver<Input>,
    segments: HashMap<u64, (mpsc::UnboundedSender<Chunk>, Owned)>,
    jobs: HashMap<u64, (watch::Sender<bool>, Owned)>,
    tools: HashMap<u64, Owned>,
    apology_audio: Option<Arc<[AudioFrame]>>,
    apology_ready: Option<oneshot::Receiver<Option<Arc<[AudioFrame]>>>>,
    rehearsal: Option<Owned>,
    captions: Captions,
    chats: HashMap<String, String>,
    transcript: Vec<Line>,
    turns: Vec<TurnMetrics>,
    played: Duration,
    /// The latest snapshot for [`AgentHooks::turn_completed`], taken by the checkpoint task.
    progress: watch::Sender<Option<CallSummary>>,
    _checkpoints: Owned,
}

impl Shell {
    pub fn new(core: ConversationCore, kit: Equipment) -> Self {
        let (heard_tx, heard) = mpsc::channel(HEARD_QUEUE);
        let (report_tx, reports) = mpsc::channel(REPORT_QUEUE);
        let (progress, snapshots) = watch::channel(None);
        let checkpoints = Owned(tokio::spawn(checkpoint(kit.hooks.clone(), snapshots)));
        Self {
            core,
            kit,
            tracks: HashMap::new(),
            owners: HashMap::new(),
            listening: None,
            heard_tx,
            heard,
            report_tx,
            reports,
            segments: HashMap::new(),
            jobs: HashMap::new(),
            tools: HashMap::new(),
            apology_audio: None,
            apology_ready: None,
            rehearsal: None,
            captions: Captions::default(),
            chats: HashMap::new(),
            transcript: Vec::new(),
            turns: Vec::new(),
            played: Duration::ZERO,
            progress,
            _checkpoints: checkpoints,
        }
    }

    /// What the call holds so far.
    fn summary(&self) -> CallSummary {
        let lead = self.core.lead();
        CallSummary {
            call_id: self.kit.call_id.clone(),
            room: self.kit.room.name().to_owned(),
            started_ms: self.kit.started_ms,
            ended_ms: chrono::Utc::now().timestamp_millis(),
            caller: self.core.caller().cloned(),
            end_reason: None,
            transcript: self.transcript.clone(),
            turns: self.turns.clone(),
            lead: lead.captured().clone(),
            lead_missing: lead.missing(),
        }
    }

    /// Runs the call until the core hangs up.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<RoomEvent>,
        mut stop: watch::Receiver<Option<EndReason>>,
    ) -> Outcome {
        let mut stopped = false;
        let mut room_open = true;
        let mut outputs = self.core.handle(Input::Tick, Instant::now());
        loop {
            if let Some(reason) = self.execute(outputs).await {
                return Outcome { end_reason: reason, summary: self.summary() };
            }
            let wake = self.core.next_deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(3_600));
            let (input, at) = tokio::select! {
                reason = wait_stop(&mut stop), if !stopped => {
                    stopped = true;
                    (Some(Input::Stop(reason)), Instant::now())
                }
                event = events.recv(), if room_open => {
                    room_open = event.is_some();
                    (self.on_room_event(event), Instant::now())
                }
                Some(heard) = self.heard.recv() => (Some(Input::Frames { track: heard.track_sid, frames: heard.frames }), heard.at),
                Some(report) = self.reports.recv() => (Some(report), Instant::now()),
                audio = wait_apology(&mut self.apology_ready) => {
                    self.apology_ready = None;
                    let ready = audio.is_some();
                    self.apology_audio = audio;
                    (Some(Input::ApologyReady(ready)), Instant::now())
                }
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => (Some(Input::Tick), Instant::now()),
            };
            outputs = self.playout(at);
            if let Some(input) = input {
                outputs.extend(self.core.handle(input, at));
            }
        }
    }

    /// Tells the core how far the agent's audio has played, when that changed.
    fn playout(&mut self, at: Instant) -> Vec<Output> {
        let track = &self.kit.voice.track;
        let played = track.played();
        if played == self.played {
            return Vec::new();
        }
        self.played = played;
        self.core.handle(Input::Played { played, talk_started: track.talk_started() }, at)
    }

    fn on_room_event(&mut self, event: Option<RoomEvent>) -> Option<Input> {
        let Some(event) = event else { return Some(Input::Stop(EndReason::RoomClosed)) };
        match event {
            RoomEvent::Disconnected { reason } => {
                tracing::info!("left the room: {reason}");
                Some(Input::Stop(EndReason::RoomClosed))
            }
            RoomEvent::ParticipantConnected(participant) => Some(Input::Joined {
                agent: participant.kind == ParticipantKind::Agent,
                identity: participant.identity,
                name: participant.name,
            }),
            RoomEvent::ParticipantUpdated(participant) => {
                let listened = self.listening.as_ref().map(|(_, sid, _)| sid.clone())?;
                let track = participant.tracks.iter().find(|track| track.sid == listened)?;
                Some(Input::Muted { track: listened, muted: track.muted })
            }
            RoomEvent::TrackSubscribed { track } => {
                let input =
                    Input::Track { identity: track.participant_identity.clone(), track: track.track_sid.clone() };
                self.owners.insert(track.track_sid.clone(), track.participant_identity.clone());
                self.tracks.insert(track.track_sid.clone(), track);
                Some(input)
            }
            RoomEvent::TrackUnsubscribed { track_sid, .. } => {
                self.tracks.remove(&track_sid);
                None
            }
            RoomEvent::Text(TextStreamEvent::Opened { stream_id, topic, sender_identity, .. })
                if topic == CHAT_TOPIC && self.chats.len() < MAX_OPEN_CHATS =>
            {
                self.chats.insert(stream_id, sender_identity);
                None
            }
            RoomEvent::Text(TextStreamEvent::Closed { stream_id, full_text, .. }) => {
                let identity = self.chats.remove(&stream_id)?;
                Some(Input::Typed { identity, text: full_text })
            }
            RoomEvent::Text(TextStreamEvent::Aborted { stream_id, .. }) => {
                self.chats.remove(&stream_id);
                None
            }
            _ => None,
        }
    }

    /// Carries out the core's outputs; the end reason once it hung up.
    async fn execute(&mut self, outputs: Vec<Output>) -> Option<EndReason> {
        let mut packets = Vec::new();
        let mut hung_up = None;
        let mut progressed = false;
        for output in outputs {
            progressed |= matches!(output, Output::Line(_) | Output::Turn(_));
            match output {
                Output::Listen { track } => self.listen_to(track),
                Output::StartTranscription { segment, audio } => self.start_segment(segment, audio),
                Output::Transcribe { segment, audio } => {
                    if let Some((chunks, _)) = self.segments.get(&segment) {
                        let _ = chunks.send(Chunk::Audio(audio));
                    }
                }
                Output::FinishTranscription { segment } => {
                    if let Some((chunks, _)) = self.segments.get(&segment) {
                        let _ = chunks.send(Chunk::End);
                    }
                }
                Output::AbandonTranscription { segment } => {
                    self.segments.remove(&segment);
                }
                Output::StartJob { job, work, .. } => self.start_job(job, work),
                Output::Release { job } => {
                    if let Some((release, _)) = self.jobs.get(&job) {
                        release.send_replace(true);
                    }
                }
                Output::CancelJob { job } => {
                    self.jobs.remove(&job);
                }
                Output::CallTool { tool, call } => self.call_tool(tool, call),
                Output::CancelTool { tool } => {
                    self.tools.remove(&tool);
                }
                Output::PrepareApology => self.rehearse(),
                Output::Pause => self.kit.voice.track.pause(),
                Output::Resume => self.kit.voice.track.resume(),
                Output::Clear => {
                    self.kit.voice.track.clear();
                    self.kit.voice.track.resume();
                }
                Output::UserCaption { turn, text, last } => {
                    if let Some((identity, track, _)) = &self.listening {
                        packets.extend(self.captions.user(turn, identity, track, &text, last));
                    }
                }
                Output::AgentCaption { speech, text } => {
                    let track = self.kit.voice.track.sid();
                    packets.extend(self.captions.agent(speech, track.as_deref(), &text));
                }
                Output::AgentCaptionEnd { speech } => packets.extend(self.captions.agent_end(speech)),
                Output::State(state) => {
                    self.kit.state.send_if_modified(|current| std::mem::replace(current, state) != state);
                }
                Output::Line(line) => self.transcript.push(line),
                Output::Turn(metrics) => {
                    metrics.log(self.turns.len() + 1);
                    self.kit.metrics.turn(&metrics);
                    self.turns.push(metrics);
                }
                Output::HangUp(reason) => hung_up = Some(reason),
            }
        }
        if !packets.is_empty()
            && let Err(e) = self.kit.room.send_packets(packets).await
        {
            tracing::warn!("cannot send a transcript: {e}");
        }
        if progressed && hung_up.is_none() {
            self.progress.send_replace(Some(self.summary()));
        }
        if hung_up.is_some() {
            self.segments.clear();
            self.jobs.clear();
            self.tools.clear();
            self.listening = None;
            self.rehearsal = None;
        }
        hung_up
    }

    fn listen_to(&mut self, track: String) {
        let Some(remote) = self.tracks.remove(&track) else {
            tracing::warn!(track = %track, "asked to listen to a track that is gone");
            return;
        };
        let identity = self.owners.get(&track).cloned().unwrap_or_default();
        tracing::info!(track = %track, "listening");
        let task = tokio::spawn(listen(remote, self.kit.vad, self.heard_tx.clone()));
        self.listening = Some((identity, track, Owned(task)));
    }

    fn start_segment(&mut self, segment: u64, audio: Vec<i16>) {
        let (chunks, receiver) = mpsc::unbounded_channel();
        let _ = chunks.send(Chunk::Audio(audio));
        let task = tokio::spawn(transcribe(
            self.kit.stt.clone(),
            self.kit.language.clone(),
            segment,
            receiver,
            self.report_tx.clone(),
        ));
        self.segments.insert(segment, (chunks, Owned(task)));
    }

    fn start_job(&mut self, job: u64, work: super::core::Job) {
        let (release, released) = watch::channel(false);
        let apology = self.apology_audio.clone().map(|audio| (self.kit.apology.clone(), audio));
        let task =
            tokio::spawn(jobs::run(self.kit.voice.clone(), job, work, released, apology, self.report_tx.clone()));
        self.jobs.insert(job, (release, Owned(task)));
    }

    fn call_tool(&mut self, token: u64, call: crate::providers::llm::ToolCall) {
        let tool = self.kit.tools.iter().find(|tool| tool.spec().name == call.name).cloned();
        let mut context = self.kit.context.clone();
        context.caller = self.core.caller().cloned();
        context.lead = self.core.lead().captured().clone();
        let request = ToolRequest {
            name: call.name.clone(),
            id: format!("{}:{}", context.call_id, call.id),
            arguments: call.arguments,
            context,
        };
        let report = self.report_tx.clone();
        let task = tokio::spawn(async move {
            let output = match tool {
                Some(tool) => tool.call(request).await,
                None => ToolOutput {
                    result: serde_json::json!({"ok": false, "error": format!("`{}` is not available", call.name)})
                        .to_string(),
                    say: None,
                    end_call: false,
                },
            };
            let _ = report.send(Input::ToolResult { tool: token, output }).await;
        });
        self.tools.insert(token, Owned(task));
    }

    /// Synthesises the apology ahead of need, so it plays even when synthesis fails later.
    fn rehearse(&mut self) {
        let (ready, receiver) = oneshot::channel();
        let voice = self.kit.voice.clone();
        let apology = self.kit.apology.clone();
        let task = tokio::spawn(async move {
            let synthesis = async {
                let mut audio = voice.tts.synthesize(voice.voice.saying(speakable(&apology))).await?;
                let mut frames = Vec::new();
                while let Some(frame) = audio.next().await {
                    frames.push(frame?);
                }
                Ok::<_, crate::providers::ProviderError>(frames)
            };
            let audio = match tokio::time::timeout(APOLOGY_TIMEOUT, synthesis).await {
                Ok(Ok(frames)) if !frames.is_empty() => Some(frames.into()),
                Ok(Ok(_)) => {
                    tracing::warn!("speech synthesis returned no audio for the apology");
                    None
                }
                Ok(Err(e)) => {
                    tracing::warn!("cannot synthesise the apology ahead of time: {e}");
                    None
                }
                Err(_) => {
                    tracing::warn!(
                        "synthesising the apology took over {APOLOGY_TIMEOUT:?}; it will be tried when needed"
                    );
                    None
                }
            };
            let _ = ready.send(audio);
        });
        self.apology_ready = Some(receiver);
        self.rehearsal = Some(Owned(task));
    }
}

/// Hands each new snapshot to the hooks, one at a time, skipping those that were replaced
/// meanwhile.
async fn checkpoint(hooks: Arc<dyn AgentHooks>, mut snapshots: watch::Receiver<Option<CallSummary>>) {
    while snapshots.changed().await.is_ok() {
        let snapshot = snapshots.borrow_and_update().clone();
        if let Some(snapshot) = snapshot {
            hooks.turn_completed(snapshot).await;
        }
    }
}

/// Why the call must end, once it must; a worker that goes away ends it too.
async fn wait_stop(stop: &mut watch::Receiver<Option<EndReason>>) -> EndReason {
    match stop.wait_for(Option::is_some).await {
        Ok(reason) => reason.unwrap_or(EndReason::WorkerShutdown),
        Err(_) => EndReason::WorkerShutdown,
    }
}

async fn wait_apology(ready: &mut Option<oneshot::Receiver<Option<Arc<[AudioFrame]>>>>) -> Option<Arc<[AudioFrame]>> {
    match ready {
        Some(ready) => ready.await.ok().flatten(),
        None => std::future::pending().await,
    }
}
