//! Your own voice agent, run by the worker for every call.
//!
//! The worker binary configures agents from profiles; as a library, the crate lets you write the
//! agent's logic yourself: its providers (any [`SpeechToText`], [`ChatModel`] and
//! [`TextToSpeech`]), its instructions, its [`Tool`]s (async functions the model calls, such as
//! a web service lookup) and its [`AgentHooks`] (before each answer, after the call).
//!
//! ```no_run
//! use std::sync::Arc;
//! use voice_agent::agent::{Agent, per_call};
//! use voice_agent::worker::JobContext;
//! # fn providers() -> (Arc<dyn voice_agent::providers::stt::SpeechToText>, Arc<dyn voice_agent::providers::llm::ChatModel>, Arc<dyn voice_agent::providers::tts::TextToSpeech>) { unimplemented!() }
//!
//! let session = per_call(|_job: &JobContext| {
//!     let (stt, llm, tts) = providers();
//!     Agent::builder()
//!         .speech_to_text(stt, "en-IN")
//!         .chat_model(llm, "gpt-4o-mini")
//!         .text_to_speech(tts, "en-IN", "anushka")
//!         .instructions("You are a friendly assistant for a bakery. Answer in one or two sentences.")
//!         .greeting("Hello! What would you like to order?")
//!         .build()
//! });
//! // `session` goes to `voice_agent::worker::Worker::new`, which runs it for every call.
//! # let _ = session;
//! ```
//!
//! See `examples/custom_agent.rs` for an agent with its own tool and prompt logic.
//!
//! [`SpeechToText`]: crate::providers::stt::SpeechToText
//! [`ChatModel`]: crate::providers::llm::ChatModel
//! [`TextToSpeech`]: crate::providers::tts::TextToSpeech

mod builder;
mod hooks;
mod run;
pub(crate) mod schema;
mod tool;
mod webhook;

pub use builder::{Agent, AgentBuilder, BuildError, Limits, TurnOptions};
pub use hooks::{AgentHooks, CallSummary, NoHooks, TurnContext};
pub use run::per_call;
pub use tool::{CallContext, Tool, ToolOutput, ToolRequest};
pub use webhook::{WebhookTool, WebhookToolConfig};
