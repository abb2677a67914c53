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

/// Who a message is from, as chat-completions names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions: the profile's prompt.
    System,
    /// The caller's words.
    User,
    /// The model's earlier answers (only what was actually spoken).
    Assistant,
    /// A tool's result, answering an assistant's tool call.
    Tool,
}

/// A function the model asked to call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The model's id for the call, echoed in the `Tool` message that answers it.
    pub id: String,
    /// The function's name, as offered in a [`ToolSpec`].
    pub name: String,
    /// The arguments as the model wrote them: JSON text, unchecked, since models get it wrong.
    pub arguments: String,
}

/// One message of the conversation sent with every request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// Who it is from.
    pub role: Role,
    /// Its text; may be empty for an assistant message that only calls tools.
    pub content: String,
    /// The calls an assistant message made (answered by later `Tool` messages).
    pub tool_calls: Vec<ToolCall>,
    /// The call a `Tool` message answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// Instructions for the model.
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(Role::System, text.into())
    }

    /// What the caller said.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, text.into())
    }

    /// What the agent said.
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
    /// The function name the model calls it by.
    pub name: String,
    /// Tells the model when to call it.
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: serde_json::Value,
}

/// One chat-completions request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The provider's model id.
    pub model: String,
    /// The conversation so far, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature, 0.0 to 2.0.
    pub temperature: f32,
    /// The longest answer, in tokens.
    pub max_tokens: u32,
    /// Functions the model may call; empty offers none.
    pub tools: Vec<ToolSpec>,
}

/// Tokens a request used, as the server counted them (what it bills).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Tokens read: the messages and tool specs.
    pub prompt_tokens: u32,
    /// Tokens written: the answer and its tool calls.
    pub completion_tokens: u32,
    /// Their sum, as the server reported it.
    pub total_tokens: u32,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatDelta {
    /// The next piece of the answer's text.
    Text(String),
    /// A complete call: emitted when the model moves on to the next call or ends.
    ToolCall(ToolCall),
    /// The answer is complete; `usage` is missing only if the server did not report it.
    Done {
        /// The server's reason: `stop`, `length`, `tool_calls`...
        finish_reason: String,
        /// What the request used.
        usage: Option<Usage>,
    },
}

/// A streaming chat model; fallback chains and usage meters wrap one in another.
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

/// How to reach an OpenAI-compatible chat server.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Names the provider in errors and logs.
    pub provider: &'static str,
    /// The API root, e.g. `https://api.groq.com/openai/v1`.
    pub base_url: Url,
    /// Sent as a bearer token.
    pub api_key: Secret,
    /// For the first byte of the answer, and again for every gap between two pieces of it.
    pub timeout: Duration,
    /// Retries before the first byte of an answer.
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
