//! Speech and language model providers, one module per kind.
//!
//! Every provider is a trait object built from a config (endpoint, key, timeout, retry policy),
//! so a call picks its providers from the agent's profile and tests point them at local mocks.
//! Failures of all providers share one error type, [`ProviderError`], classified by what the
//! caller should do (retry, give up, tell the operator), and one [`RetryPolicy`].

mod error;
mod http;
pub mod llm;
mod retry;
pub mod stt;
pub mod tts;
mod websocket;

pub use self::error::ProviderError;
pub use self::retry::{RetryPolicy, retry_after};
