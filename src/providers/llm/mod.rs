//! Chat models, streamed: the trait the conversation uses, and a client for OpenAI's
//! chat-completions protocol, which OpenAI, Groq and compatible servers speak.
//!
//! Answers are consumed as they are written so the first sentence can be spoken before the
//! model has finished the last.

mod chunks;
mod client;
pub(crate) mod compatible;
mod sse;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::Serialize;
use url::Url;

use super::{ProviderError, RetryPolicy};
use crate::config::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// A function the model asked to call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: JSON text, unchecked, since models get it wrong.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// The calls an assistant message made (answered by later `Tool` messages).
    pub tool_calls: Vec<ToolCall>,
    /// The call a `Tool` message answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(Role::System, text.into())
    }

    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, text.into())
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(Role::Assistant, text.into())
    }

    /// The result of the call `call_id`.
    pub fn tool(call_id: &str, result: impl Into<String>) -> Self {
        Self { tool_call_id: Some(call_id.to_owned()), ..Self::new(Role::Tool, result.into()) }
    }

    fn new(role: Role, content: String) -> Self {
        Self { role, content, tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A function offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: f32,
    pub max_tokens: u32,
    pub tools: Vec<ToolSpec>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChatDelta {
    /// The next piece of the answer's text.
    Text(String),
    /// A complete call: emitted when the model moves on to the next call or ends.
    ToolCall(ToolCall),
    /// The answer is complete; `usage` is missing only if the server did not report it.
    Done { finish_reason: String, usage: Option<Usage> },
}

pub trait ChatModel: Send + Sync {
    /// Streams the answer; retried only before the first byte of the body.
    ///
    /// A failure after that ends the stream with an error item: by then part of the answer may
    /// have been spoken, so only the caller can decide how to recover.
    fn stream(
        &self,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Result<ChatDelta, ProviderError>>, ProviderError>>;
}

#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Names the provider in errors and logs.
    pub provider: &'static str,
    /// The API root, e.g. `https://api.groq.com/openai/v1`.
    pub base_url: Url,
    pub api_key: Secret,
    /// For the first byte of the answer, and again for every gap between two pieces of it.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Sent as `reasoning_effort` to reasoning models, whose thinking the caller waits for.
    pub reasoning_effort: Option<String>,
}

/// A client for OpenAI's `/chat/completions` as OpenAI, Groq and compatible servers speak it.
pub fn openai_compatible(config: LlmConfig, http: reqwest::Client) -> Arc<dyn ChatModel> {
    Arc::new(client::OpenAiCompatible::new(config, http))
}

/// The ids `GET {base}/models` lists, as OpenAI, Groq and compatible servers answer it.
pub async fn list_models(config: &LlmConfig, http: &reqwest::Client) -> Result<Vec<String>, ProviderError> {
    client::list_models(config, http).await
}
