//! The voice pipeline of one call.
//!
//! The decisions of a conversation live in [`core`], a state machine fed with what happened and
//! the time (no clock, no tasks, no I/O); [`shell`] owns the room, the providers and the tasks
//! and only carries out what the core asks. Around them, pure parts each tested alone:
//!
//! - Listening: room audio (48 kHz Opus, decoded) is resampled to 16 kHz and cut by [`vad::Vad`]
//!   into 20 ms frames, each with a speech/non-speech decision; [`turn::TurnDetector`] turns
//!   them into utterances (onset, pre-roll, likely end, end of turn, barge-in).
//! - Speaking: the model's streamed text goes through [`sentences::SentenceSplitter`], which
//!   hands out each sentence as soon as it is certain to be complete, then through
//!   [`speakable::speakable`], which strips markdown and emoji, to text-to-speech; [`playout`]
//!   knows which words the caller has heard.
//! - Functions: `capture_lead` (the profile's lead fields, checked and merged into the call's
//!   [`tools::LeadSheet`]) and `end_call`; other tools come from the agent's builder, and a
//!   profile's webhook tools from [`profile_tools`].
//! - Prompts: [`variables`] fills the `{{name}}` placeholders of the prompt and greeting.
//! - Records: [`record`] is what a call leaves for n8n, checkpointed after every turn and
//!   analysed after the call when the profile asks ([`analysis`]).

mod analysis;
pub(crate) mod core;
mod fillers;
pub mod metrics;
pub(crate) mod playout;
mod profile_tools;
mod providers;
pub mod record;
pub mod sentences;
mod session;
pub(crate) mod shell;
pub mod speakable;
pub(crate) mod state;
pub(crate) mod tools;
pub mod turn;
pub mod vad;
mod variables;

pub use profile_tools::{ToolEndpoints, profile_tools};
pub use session::PipelineSession;
