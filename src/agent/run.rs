//! An agent in a call: its track published, its conversation run to the end, its summary handed
//! to the hooks.

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;

use super::builder::Agent;
use super::hooks::CallSummary;
use super::tool::CallContext;
use crate::pipeline::core::ConversationCore;
use crate::pipeline::shell::jobs::Voice;
use crate::pipeline::shell::{Equipment, Shell};
use crate::pipeline::state;
use crate::worker::{AgentSession, JobContext};

/// The name of the agent's audio track in the room.
const TRACK_NAME: &str = "agent-voice";

impl Agent {
    /// Runs one call in the job's room until it ends, then hands its summary to the hooks.
    pub async fn run(self, context: JobContext) -> Result<CallSummary, String> {
        let JobContext { room, events, stop, job, metrics, .. } = context;
        let started_ms = chrono::Utc::now().timestamp_millis();
        let (state, publishing) = state::publisher(room.clone());
        let track =
            room.publish_audio(TRACK_NAME).await.map_err(|e| format!("cannot publish the agent's audio: {e}"))?;
        let voice = Voice {
            llm: self.llm,
            tts: self.tts,
            voice: self.voice,
            track: Arc::new(track),
            hooks: self.hooks.clone(),
        };
        let context = CallContext { call_id: job.id.clone(), agent_id: self.agent_id, ..CallContext::default() };
        let kit = Equipment {
            call_id: job.id.clone(),
            started_ms,
            hooks: self.hooks.clone(),
            room,
            voice,
            stt: self.stt,
            language: self.language,
            vad: self.vad,
            apology: self.config.apology.clone(),
            tools: self.tools,
            context,
            state,
            metrics: metrics.clone(),
        };
        let core = ConversationCore::new(self.config, Instant::now(), started_ms);
        let outcome = Shell::new(core, kit).run(events, stop).await;
        let _ = publishing.await;
        let mut summary = outcome.summary;
        summary.end_reason = Some(outcome.end_reason);
        metrics.call_ended(outcome.end_reason);
        self.hooks.call_ended(summary.clone()).await;
        Ok(summary)
    }
}

/// A session that builds an agent for each call with `build` and runs it: the simplest way to
/// hand your agent to the [`Worker`](crate::worker::Worker).
pub fn per_call<F, E>(build: F) -> Arc<dyn AgentSession>
where
    F: Fn(&JobContext) -> Result<Agent, E> + Send + Sync + 'static,
    E: std::fmt::Display,
{
    crate::pipeline::vad::preload();
    Arc::new(PerCall(build))
}

struct PerCall<F>(F);

impl<F, E> AgentSession for PerCall<F>
where
    F: Fn(&JobContext) -> Result<Agent, E> + Send + Sync + 'static,
    E: std::fmt::Display,
{
    fn run(&self, context: JobContext) -> BoxFuture<'static, Result<(), String>> {
        let agent = (self.0)(&context).map_err(|e| format!("cannot build the agent: {e}"));
        Box::pin(async move { agent?.run(context).await.map(|_| ()) })
    }
}
