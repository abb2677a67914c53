//! The profile-driven voice agent the worker binary runs: each call's agent is built with the
//! public [`Agent`] builder from the call's profile (its placeholders filled, its webhook tools
//! offered), its progress is checkpointed after every turn, and its summary (analysed, when the
//! profile asks) becomes the call record that goes to n8n.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::analysis::Analyst;
use super::fillers::filler;
use super::profile_tools::{ToolEndpoints, profile_tools};
use super::providers::for_profile;
use super::record::{CallRecord, LatencySummary, RECORD_VERSION, timestamp};
use super::variables::{render, values};
use crate::agent::{Agent, AgentHooks, CallSummary, Limits, TurnOptions, WebhookTool};
use crate::config::ProviderSettings;
use crate::profiles::AgentProfile;
use crate::providers::tts::SpeechRequest;
use crate::providers::usage::UsageMeter;
use crate::records::{ActiveCall, Outbox};
use crate::worker::{AgentSession, CallChoice, EndReason, JobContext};

/// Why a checkpoint has no analysis: it is only ever delivered when the worker died.
const LOST_BEFORE_ANALYSIS: &str = "the call was not analysed: its worker stopped before the call ended";
/// Why the checkpoint taken while a call is analysed has none.
const LOST_DURING_ANALYSIS: &str = "the call was not analysed: its worker stopped during the analysis";

/// Talks with the caller as the call's profile says, and keeps the record of every call.
pub struct PipelineSession {
    providers: ProviderSettings,
    /// Shared by every call, so connections to providers are reused across calls.
    http: reqwest::Client,
    /// Where each call's record goes when it ends.
    outbox: Outbox,
    /// Where the profiles' webhook tools send requests.
    endpoints: ToolEndpoints,
    /// For webhook tools: follows no redirects.
    tools_http: reqwest::Client,
}

impl PipelineSession {
    /// Agents with the deployment's provider keys, keeping records in `outbox`. Profile tools
    /// whose webhook is a path under N8N_BASE_URL are left out until [`Self::with_n8n`].
    pub fn new(providers: ProviderSettings, http: reqwest::Client, outbox: Outbox) -> Self {
        super::vad::preload();
        let tools_http = WebhookTool::client().unwrap_or_else(|e| {
            tracing::warn!("cannot set up the webhook tools' own HTTP client ({e}); they share the providers'");
            http.clone()
        });
        Self { providers, http, outbox, endpoints: ToolEndpoints::default(), tools_http }
    }

    /// Profile tools reach n8n at `base_url` (N8N_BASE_URL), their requests signed with
    /// `secret` (N8N_WEBHOOK_SECRET).
    pub fn with_n8n(mut self, base_url: Option<url::Url>, secret: Option<crate::config::Secret>) -> Self {
        self.endpoints = ToolEndpoints { n8n_base_url: base_url, secret };
        self
    }

    fn agent(&self, context: &JobContext) -> Result<Agent, String> {
        let profile = &context.profile;
        let choice = &context.choice;
        let providers = for_profile(&self.providers, profile, &self.http, &context.metrics)?;
        let voice =
            SpeechRequest { text: String::new(), language: choice.language.clone(), voice: choice.voice.clone() };
        let placeholders = values(profile, &choice.language, &context.variables, chrono::Utc::now());
        let instructions = render(&profile.system_prompt, &placeholders);
        let greeting = render(&profile.greeting, &placeholders);
        let missing: Vec<&str> = instructions.missing.union(&greeting.missing).map(String::as_str).collect();
        if !missing.is_empty() {
            tracing::warn!(
                job = %context.job.id,
                agent = %profile.id,
                missing = %missing.join(", "),
                "the prompt or greeting has placeholders no metadata, built-in or profile variable fills; they are left empty"
            );
        }
        let active = match self.outbox.active_call(&context.job.id) {
            Ok(active) => Some(active),
            Err(e) => {
                tracing::warn!(job = %context.job.id, "this call is not checkpointed: {e}");
                None
            }
        };
        // Each chat provider of the chain asks for its own model; this names the first's.
        let model = profile.llm.providers.first().and_then(|p| p.options.get("model")).and_then(|m| m.as_str());
        let analyst = profile
            .analysis
            .clone()
            .map(|options| Analyst::new(providers.llm.clone(), model.unwrap_or_default(), options, &profile.name));
        let records = RecordKeeper {
            outbox: self.outbox.clone(),
            profile: profile.clone(),
            choice: choice.clone(),
            usage: providers.usage,
            active,
            analyst,
        };
        let mut builder = Agent::builder();
        for tool in profile_tools(profile, &self.endpoints, &self.tools_http) {
            builder = builder.tool(tool);
        }
        builder
            .agent_id(&profile.id)
            .speech_to_text(providers.stt, &choice.language)
            .chat_model(providers.llm, model.unwrap_or_default())
            .chat_options(profile.llm.temperature, profile.llm.max_tokens)
            .text_to_speech(providers.tts, &choice.language, &choice.voice)
            .voice(voice)
            .instructions(instructions.text)
            .greeting(greeting.text)
            .apology(&profile.apology)
            .filler(filler(profile, &choice.language), Duration::from_millis(u64::from(profile.filler_after_ms)))
            .lead_fields(profile.lead_fields.clone())
            .turn(turn_options(profile))
            .limits(limits(profile))
            .hooks(Arc::new(records))
            .build()
            .map_err(|e| e.to_string())
    }
}

impl AgentSession for PipelineSession {
    fn run(&self, context: JobContext) -> BoxFuture<'static, Result<(), String>> {
        let agent = self.agent(&context);
        Box::pin(async move { agent?.run(context).await.map(|_| ()) })
    }
}

fn turn_options(profile: &AgentProfile) -> TurnOptions {
    let turn = &profile.turn;
    let ms = |value: u32| Duration::from_millis(u64::from(value));
    TurnOptions {
        min_speech: ms(turn.min_speech_ms),
        min_silence: ms(turn.min_silence_ms),
        complete_silence: ms(turn.complete_silence_ms),
        unfinished_silence: ms(turn.unfinished_silence_ms),
        likely_end: (turn.likely_end_ms > 0).then(|| ms(turn.likely_end_ms)),
        preemptive: turn.preemptive,
        min_interrupt_speech: ms(turn.min_interrupt_speech_ms),
        min_interruption_words: turn.min_interruption_words as usize,
        false_interruption_timeout: ms(turn.false_interruption_timeout_ms),
        // A resolved profile always names a detector.
        vad: turn.vad_config().unwrap_or_default(),
    }
}

fn limits(profile: &AgentProfile) -> Limits {
    let limits = &profile.limits;
    let seconds = |value: u32| (value > 0).then(|| Duration::from_secs(u64::from(value)));
    Limits {
        max_duration: seconds(limits.max_call_seconds),
        goodbye: limits.goodbye.clone(),
        silence_prompt: seconds(limits.silence_prompt_seconds),
        still_there: limits.still_there.clone(),
        silence_hangup: seconds(limits.silence_hangup_seconds),
        no_audio: seconds(limits.no_audio_seconds),
    }
}

/// Checkpoints each call after every turn, and turns its summary into its record (analysed,
/// when the profile asks) for the outbox, which has it on disk before the job ends.
struct RecordKeeper {
    outbox: Outbox,
    profile: Arc<AgentProfile>,
    choice: CallChoice,
    /// What the call's providers count their usage into.
    usage: UsageMeter,
    /// `None` when the call cannot be checkpointed (its id cannot name a file).
    active: Option<ActiveCall>,
    analyst: Option<Analyst>,
}

impl AgentHooks for RecordKeeper {
    /// The record as it would go if the worker died now: `worker_lost`, up to this turn.
    fn turn_completed(&self, progress: CallSummary) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut record = self.record(progress);
            record.end_reason = EndReason::WorkerLost;
            self.checkpoint(&record, LOST_BEFORE_ANALYSIS).await;
        })
    }

    fn call_ended(&self, summary: CallSummary) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut record = self.record(summary);
            tracing::info!(
                job = %record.call_id,
                reason = ?record.end_reason,
                turns = record.turns.len(),
                lead_fields = record.lead.len(),
                cost_usd = record.usage.estimated_cost_usd,
                usage = %usage_line(&record.usage),
                "call ended"
            );
            if let Some(analyst) = &self.analyst {
                // The analysis may take a while: should the worker die meanwhile, the call is
                // delivered with how it really ended.
                self.checkpoint(&record, LOST_DURING_ANALYSIS).await;
                match analyst.analyse(&record.transcript, &record.lead).await {
                    Ok(analysis) => record.analysis = Some(analysis),
                    Err(why) => {
                        tracing::warn!(job = %record.call_id, "the call was not analysed; its record says why (analysis_error)");
                        record.analysis_error = Some(why);
                    }
                }
            }
            keep(&self.outbox, self.active.as_ref(), &record).await;
        })
    }
}

impl RecordKeeper {
    async fn checkpoint(&self, record: &CallRecord, no_analysis: &str) {
        let Some(active) = &self.active else { return };
        let mut record = record.clone();
        if self.analyst.is_some() {
            record.analysis_error = Some(no_analysis.to_owned());
        }
        let body = match serde_json::to_vec(&record) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(job = %record.call_id, "cannot encode the call's checkpoint: {e}");
                return;
            }
        };
        if let Err(e) = active.checkpoint(body).await {
            tracing::warn!(job = %record.call_id, "cannot checkpoint the call: {e}");
        }
    }

    fn record(&self, summary: CallSummary) -> CallRecord {
        CallRecord {
            record_version: RECORD_VERSION,
            call_id: summary.call_id,
            room: summary.room,
            agent_id: self.profile.id.clone(),
            language: self.choice.language.clone(),
            voice: self.choice.voice.clone(),
            started_at: timestamp(summary.started_ms),
            ended_at: timestamp(summary.ended_ms),
            duration_seconds: (summary.ended_ms - summary.started_ms).max(0) as f64 / 1000.0,
            caller: summary.caller,
            end_reason: summary.end_reason.unwrap_or(EndReason::WorkerShutdown),
            transcript: summary.transcript,
            lead: summary.lead,
            lead_missing: summary.lead_missing,
            latency: LatencySummary::of(&summary.turns),
            turns: summary.turns,
            usage: self.usage.summary(),
            analysis: None,
            analysis_error: None,
        }
    }
}

/// The usage of a call on one log line: `sarvam/saaras:v3 42.1s, groq/... 1200+80 tokens`.
fn usage_line(usage: &crate::providers::usage::UsageSummary) -> String {
    let lines: Vec<String> = usage
        .providers
        .iter()
        .map(|line| {
            let amount = match (line.audio_seconds, line.characters, line.prompt_tokens, line.completion_tokens) {
                (Some(seconds), ..) => format!("{seconds}s"),
                (_, Some(characters), ..) => format!("{characters} chars"),
                (_, _, Some(prompt), Some(completion)) => format!("{prompt}+{completion} tokens"),
                _ => String::new(),
            };
            format!("{}/{} {amount}", line.provider, line.model)
        })
        .collect();
    lines.join(", ")
}

/// Hands the record to the outbox, which has it on disk before this returns (and drops the
/// call's checkpoint). Should even that fail (a full disk), the record goes to the log whole, the
/// last place it can be kept.
async fn keep(outbox: &Outbox, active: Option<&ActiveCall>, record: &CallRecord) {
    let body = match serde_json::to_vec(record) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(call = %record.call_id, "cannot encode the call record: {e}; record: {record:?}");
            return;
        }
    };
    let submitted = match active {
        Some(active) => active.submit(body.clone()).await,
        None => outbox.submit(&record.call_id, body.clone()).await,
    };
    if let Err(e) = submitted {
        tracing::error!(
            call = %record.call_id,
            record = %String::from_utf8_lossy(&body),
            "cannot keep the call record in the spool: {e}"
        );
    }
}
