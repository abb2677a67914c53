//! Functions the model may call during a call, beyond the built-in `capture_lead` and
//! `end_call`: your own, or the profile's n8n webhooks.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;

pub use crate::pipeline::core::ToolOutput;
use crate::pipeline::record::Caller;
use crate::providers::llm::ToolSpec;

/// A function the model may call. Calls run as tasks of their own, never under a lock, several
/// at once when the model asks for several in one turn; the conversation goes on meanwhile (a
/// slow tool is covered by its [`filler`](Tool::filler)).
pub trait Tool: Send + Sync + 'static {
    /// The name, description and JSON-schema parameters the model sees.
    fn spec(&self) -> ToolSpec;

    /// Whether a call changes something outside (a booking, an order). Such calls are never
    /// cancelled when the caller interrupts, and their result reaches the conversation even
    /// when it arrives after the answer that asked for it was cut off.
    fn side_effects(&self) -> bool {
        false
    }

    /// Words said once when a call takes longer than a moment, so the caller never waits in
    /// silence; `None` uses the agent's default filler.
    fn filler(&self) -> Option<String> {
        None
    }

    /// Runs one call. Failures are answers too: return a result that tells the model what went
    /// wrong, so it can tell the caller.
    fn call(&self, request: ToolRequest) -> BoxFuture<'_, ToolOutput>;
}

/// One call of a tool by the model.
#[derive(Debug, Clone)]
pub struct ToolRequest {
    /// The tool's name.
    pub name: String,
    /// Unique per call of a tool (the call id and the model's call id): an idempotency key.
    pub id: String,
    /// The arguments as the model wrote them: JSON text, unchecked, since models get it wrong.
    pub arguments: String,
    /// The call the tool runs in.
    pub context: CallContext,
}

/// What a tool may want to know about the call.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The call's id (the LiveKit job id).
    pub call_id: String,
    /// The agent profile's id.
    pub agent_id: String,
    /// The first person who joined.
    pub caller: Option<Caller>,
    /// What the caller has told about themselves so far.
    pub lead: BTreeMap<String, String>,
}
