//! Where your code joins the conversation: before the model answers a turn, and when the call
//! is over.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;

use crate::pipeline::metrics::TurnMetrics;
use crate::pipeline::record::{Caller, Line};
use crate::providers::llm::ChatMessage;
use crate::worker::EndReason;

/// Callbacks of an agent; every method has a default that does nothing.
pub trait AgentHooks: Send + Sync + 'static {
    /// The caller finished a turn (spoken or typed) and the model is about to be asked.
    /// `turn.messages` is that request's conversation: add context to it (facts looked up for
    /// these words, the time of day). Changes apply to this request only; the conversation
    /// keeps what was said. With preemptive generation this may run for words the caller then
    /// goes on from: keep it free of side effects.
    fn user_turn_completed<'a>(&'a self, turn: &'a mut TurnContext) -> BoxFuture<'a, ()> {
        let _ = turn;
        Box::pin(async {})
    }

    /// A turn is over: what the call holds so far, `end_reason` still
    /// `None`. Runs on a task of its own, one snapshot after another; when it is slower than
    /// the conversation, it gets the latest snapshot. Keep a checkpoint here, so a worker that
    /// dies mid-call does not lose the call.
    fn turn_completed(&self, progress: CallSummary) -> BoxFuture<'_, ()> {
        let _ = progress;
        Box::pin(async {})
    }

    /// The call is over: what was said and learned. Runs before the job ends, so a record kept
    /// here is kept before the worker reports the call finished.
    fn call_ended(&self, summary: CallSummary) -> BoxFuture<'_, ()> {
        let _ = summary;
        Box::pin(async {})
    }
}

/// Hooks that do nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl AgentHooks for NoHooks {}

/// A turn about to be answered.
#[derive(Debug, Clone)]
pub struct TurnContext {
    /// The caller's words in this turn.
    pub text: String,
    /// The conversation sent to the model for this answer, system prompt first.
    pub messages: Vec<ChatMessage>,
}

/// What a call left behind.
#[derive(Debug, Clone)]
pub struct CallSummary {
    /// The call's id (the LiveKit job id).
    pub call_id: String,
    /// The room it happened in.
    pub room: String,
    /// When the agent joined, Unix ms.
    pub started_ms: i64,
    /// When it ended (for a snapshot of a call still running: when the snapshot was taken),
    /// Unix ms.
    pub ended_ms: i64,
    /// The first person who joined.
    pub caller: Option<Caller>,
    /// Why it ended; `None` while it runs.
    pub end_reason: Option<EndReason>,
    /// Everything said, as heard (interrupted answers hold only what played).
    pub transcript: Vec<Line>,
    /// The figures of every answered turn.
    pub turns: Vec<TurnMetrics>,
    /// The lead fields captured, by name.
    pub lead: BTreeMap<String, String>,
    /// Required lead fields not captured.
    pub lead_missing: Vec<String>,
}
