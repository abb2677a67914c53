//! The voice agent as a worker session: joins the conversation to the room with the providers
//! of the call's profile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use super::conversation::{CallSummary, Conversation, Setup};
use super::providers::for_profile;
use super::record::{CallRecord, LatencySummary, RECORD_VERSION, timestamp};
use super::reply::Mouth;
use super::speakable::speakable;
use super::state;
use super::tools::LeadSheet;
use super::turn::{TurnConfig, TurnDetector};
use crate::audio::AudioFrame;
use crate::config::ProviderSettings;
use crate::profiles::AgentProfile;
use crate::providers::tts::{SpeechRequest, TextToSpeech};
use crate::records::Outbox;
use crate::worker::{AgentSession, CallChoice, JobContext};

/// The name of the agent's audio track in the room.
const TRACK_NAME: &str = "agent-voice";
/// The apology is synthesised at the start of the call; after this it is synthesised when needed.
const APOLOGY_TIMEOUT: Duration = Duration::from_secs(15);

/// Talks with the caller: listens, transcribes, asks the model, speaks the answer.
pub struct PipelineSession {
    providers: ProviderSettings,
    /// Shared by every call, so connections to providers are reused across calls.
    http: reqwest::Client,
    /// Where each call's record goes when it ends.
    outbox: Outbox,
}

impl PipelineSession {
    pub fn new(providers: ProviderSettings, http: reqwest::Client, outbox: Outbox) -> Self {
        Self { providers, http, outbox }
    }
}

impl AgentSession for PipelineSession {
    fn run(&self, context: JobContext) -> BoxFuture<'static, Result<(), String>> {
        let providers = for_profile(&self.providers, &context.profile, &self.http);
        let outbox = self.outbox.clone();
        Box::pin(async move {
            let JobContext { room, events, profile, choice, stop, job } = context;
            let started_ms = chrono::Utc::now().timestamp_millis();
            let providers = providers?;
            let chosen = choice.clone();
            let room_name = room.name().to_owned();
            let (state, publishing) = state::publisher(room.clone());
            let track =
                room.publish_audio(TRACK_NAME).await.map_err(|e| format!("cannot publish the agent's audio: {e}"))?;
            let voice = SpeechRequest {
                text: String::new(),
                language: choice.language.clone(),
                voice: choice.voice,
                model: profile.tts.model.clone(),
                pace: profile.tts.pace,
                pitch: profile.tts.pitch,
                loudness: profile.tts.loudness,
            };
            let (apology_tx, apology_rx) = oneshot::channel();
            let rehearsal =
                tokio::spawn(rehearse(providers.tts.clone(), voice.clone(), profile.apology.clone(), apology_tx));
            let sheet = LeadSheet::new(profile.lead_fields.clone());
            let tools = sheet.specs();
            let lead = Arc::new(Mutex::new(sheet));
            let mouth =
                Mouth { llm: providers.llm, tts: providers.tts, voice, track: Arc::new(track), lead: lead.clone() };
            let setup = Setup {
                room,
                mouth,
                stt: providers.stt,
                language: choice.language,
                model: profile.llm.model.clone(),
                temperature: profile.llm.temperature,
                max_tokens: profile.llm.max_tokens,
                tools,
                system_prompt: profile.system_prompt.clone(),
                greeting: profile.greeting.clone(),
                apology: profile.apology.clone(),
                turn: TurnDetector::new(turn_config(&profile)),
                vad_aggressiveness: profile.turn.vad_aggressiveness,
                state,
            };
            let summary = Conversation::new(setup, apology_rx).run(events, stop).await;
            rehearsal.abort();
            let _ = publishing.await;
            let lead = lead.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let call = Call { id: &job.id, room: &room_name, profile: &profile, choice: &chosen, started_ms };
            let record = call.record(summary, &lead);
            tracing::info!(
                job = %job.id,
                reason = ?record.end_reason,
                turns = record.turns.len(),
                lead_fields = record.lead.len(),
                "call ended"
            );
            keep(&outbox, &record).await;
            Ok(())
        })
    }
}

/// What is known of a call from its start.
struct Call<'a> {
    id: &'a str,
    room: &'a str,
    profile: &'a AgentProfile,
    choice: &'a CallChoice,
    started_ms: i64,
}

impl Call<'_> {
    fn record(&self, summary: CallSummary, lead: &LeadSheet) -> CallRecord {
        let ended_ms = chrono::Utc::now().timestamp_millis();
        CallRecord {
            record_version: RECORD_VERSION,
            call_id: self.id.to_owned(),
            room: self.room.to_owned(),
            agent_id: self.profile.id.clone(),
            language: self.choice.language.clone(),
            voice: self.choice.voice.clone(),
            started_at: timestamp(self.started_ms),
            ended_at: timestamp(ended_ms),
            duration_seconds: (ended_ms - self.started_ms).max(0) as f64 / 1000.0,
            caller: summary.caller,
            end_reason: summary.end_reason,
            transcript: summary.transcript,
            lead: lead.captured().clone(),
            lead_missing: lead.missing(),
            latency: LatencySummary::of(&summary.turns),
            turns: summary.turns,
        }
    }
}

/// Hands the record to the outbox, which has it on disk before this returns. Should even that
/// fail (a full disk), the record goes to the log whole, the last place it can be kept.
async fn keep(outbox: &Outbox, record: &CallRecord) {
    let body = match serde_json::to_vec(record) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(call = %record.call_id, "cannot encode the call record: {e}; record: {record:?}");
            return;
        }
    };
    if let Err(e) = outbox.submit(&record.call_id, body.clone()).await {
        tracing::error!(
            call = %record.call_id,
            record = %String::from_utf8_lossy(&body),
            "cannot keep the call record in the spool: {e}"
        );
    }
}

fn turn_config(profile: &AgentProfile) -> TurnConfig {
    let ms = |value: u32| Duration::from_millis(u64::from(value));
    TurnConfig {
        min_speech: ms(profile.turn.min_speech_ms),
        min_silence: ms(profile.turn.min_silence_ms),
        min_interrupt_speech: ms(profile.turn.min_interrupt_speech_ms),
        ..TurnConfig::default()
    }
}

/// Synthesises the apology ahead of need, so it plays even when synthesis fails later.
async fn rehearse(
    tts: Arc<dyn TextToSpeech>,
    voice: SpeechRequest,
    apology: String,
    ready: oneshot::Sender<Arc<[AudioFrame]>>,
) {
    let synthesis = async {
        let mut audio = tts.synthesize(voice.saying(speakable(&apology))).await?;
        let mut frames = Vec::new();
        while let Some(frame) = audio.next().await {
            frames.push(frame?);
        }
        Ok::<_, crate::providers::ProviderError>(frames)
    };
    match tokio::time::timeout(APOLOGY_TIMEOUT, synthesis).await {
        Ok(Ok(frames)) if !frames.is_empty() => {
            let _ = ready.send(frames.into());
        }
        Ok(Ok(_)) => tracing::warn!("speech synthesis returned no audio for the apology"),
        Ok(Err(e)) => tracing::warn!("cannot synthesise the apology ahead of time: {e}"),
        Err(_) => {
            tracing::warn!("synthesising the apology took over {APOLOGY_TIMEOUT:?}; it will be tried when needed")
        }
    }
}
