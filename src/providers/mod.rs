//! Speech and language model providers: a registry of them by kind and name, their clients,
//! and what every call's providers share (fallback chains, usage metering, retries).
//!
//! Every provider is a trait object ([`stt::SpeechToText`], [`llm::ChatModel`],
//! [`tts::TextToSpeech`]) built from its account's settings and the profile's options, so a
//! call picks its providers from the agent's profile and tests point them at local mocks.
//! Failures of all providers share one error type, [`ProviderError`], classified by what the
//! caller should do (retry, give up, tell the operator), and one [`RetryPolicy`].

mod build;
pub mod catalog;
mod deepgram;
mod elevenlabs;
mod error;
mod fallback;
mod groq;
mod http;
pub mod llm;
mod metered;
mod openai;
mod options;
pub mod registry;
mod retry;
mod sarvam;
pub(crate) mod setup;
pub mod startup;
pub mod stt;
pub mod tts;
pub mod usage;
mod websocket;

pub use self::build::{CallProviders, Chains, build, build_counted, build_with, missing_keys};
pub use self::error::ProviderError;
pub use self::fallback::ProbePolicy;
pub use self::retry::{RetryPolicy, retry_after};
