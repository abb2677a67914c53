//! A [`Tool`] answered by a webhook: an n8n workflow (or any HTTPS endpoint) checks a calendar,
//! looks up an order or books a slot while the caller waits.
//!
//! The request is a POST of `{call_id, agent_id, tool, arguments, caller, lead, idempotency_key}`
//! with `Idempotency-Key` (unique per call of the tool, the same on a retry) and, with a secret,
//! `X-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, the header call records carry. The
//! answer's JSON goes back to the model; its `say` is spoken as written and its `end_call: true`
//! ends the call after that. Every failure becomes a result the model can put into words.

mod answer;

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use serde_json::{Value, json};
use url::Url;

use super::schema;
use super::tool::{Tool, ToolOutput, ToolRequest};
use crate::config::Secret;
use crate::providers::llm::ToolSpec;
use crate::records::signature;
use answer::{Answer, classify};

/// The most of an answer read; a tool's result goes to the model on every later turn.
const MAX_ANSWER_BYTES: usize = 32 * 1024;

/// How to reach one webhook and what the model is told about it.
#[derive(Debug, Clone)]
pub struct WebhookToolConfig {
    /// The name, description and JSON-schema parameters the model sees; arguments that do not
    /// fit the parameters go back to the model instead of to the webhook.
    pub spec: ToolSpec,
    /// Where each call is POSTed as JSON: the arguments with the call, caller and lead so far.
    pub url: Url,
    /// For one try; a tool without side effects is tried once more after a timeout.
    pub timeout: Duration,
    /// A call changes something (a booking): it is never retried, and never cancelled when the
    /// caller interrupts.
    pub side_effects: bool,
    /// Said once when the tool is slow; `None` uses the agent's.
    pub filler: Option<String>,
    /// Signs each request's body, as call records are signed.
    pub secret: Option<Secret>,
}

/// A tool answered by a webhook.
pub struct WebhookTool {
    config: WebhookToolConfig,
    http: reqwest::Client,
}

/// What one try came to.
enum Try {
    Answered { status: u16, body: Vec<u8>, truncated: bool },
    TimedOut,
    Unreachable(String),
}

impl WebhookTool {
    /// `http` should not follow redirects ([`WebhookTool::client`]): a client that does may
    /// turn the POST into a GET, or hand the arguments to another host.
    pub fn new(config: WebhookToolConfig, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    /// An HTTP client for webhook tools: no redirects followed; share it between calls.
    pub fn client() -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()
    }

    async fn answer(&self, request: &ToolRequest) -> Answer {
        let arguments = match serde_json::from_str::<Value>(&request.arguments) {
            Ok(arguments @ Value::Object(_)) => arguments,
            Ok(other) => return Answer::failure(format!("the arguments must be a JSON object, not {other}")),
            Err(e) => return Answer::failure(format!("the arguments are not valid JSON ({e}); call the tool again")),
        };
        let problems = schema::validate(&self.config.spec.parameters, &arguments);
        if !problems.is_empty() {
            return Answer::failure(format!(
                "the tool was not called: {}; call it again with corrected arguments",
                problems.join("; ")
            ));
        }
        let context = &request.context;
        let body = json!({
            "call_id": context.call_id,
            "agent_id": context.agent_id,
            "tool": self.config.spec.name,
            "arguments": arguments,
            "caller": context.caller,
            "lead": context.lead,
            "idempotency_key": request.id,
        })
        .to_string()
        .into_bytes();
        let tries = if self.config.side_effects { 1 } else { 2 };
        let mut attempt = 1;
        loop {
            match self.post(&body, &request.id).await {
                Try::Answered { status, body, truncated } => return classify(status, &body, truncated),
                Try::TimedOut if attempt < tries => {
                    tracing::warn!(tool = %self.config.spec.name, timeout = ?self.config.timeout, "the tool did not answer in time; trying once more");
                    attempt += 1;
                }
                Try::TimedOut => {
                    let again = if tries > 1 { ", twice" } else { "" };
                    return Answer::failure(format!(
                        "the tool did not answer within {:.1} s{again}; it may work if tried again later",
                        self.config.timeout.as_secs_f64()
                    ));
                }
                Try::Unreachable(why) => return Answer::failure(format!("the tool could not be reached: {why}")),
            }
        }
    }

    async fn post(&self, body: &[u8], key: &str) -> Try {
        let mut request = self
            .http
            .post(self.config.url.clone())
            .timeout(self.config.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("voice-agent/", env!("CARGO_PKG_VERSION")))
            .header("idempotency-key", key);
        if let Some(secret) = &self.config.secret {
            request = request.header(signature::HEADER, signature::sign(secret, body));
        }
        let mut response = match request.body(body.to_vec()).send().await {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return Try::TimedOut,
            Err(error) => return Try::Unreachable(crate::net::causes(error)),
        };
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if kept.len() + chunk.len() > MAX_ANSWER_BYTES => {
                    truncated = true;
                    break;
                }
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(error) if error.is_timeout() => return Try::TimedOut,
                Err(error) => return Try::Unreachable(crate::net::causes(error)),
            }
        }
        Try::Answered { status, body: kept, truncated }
    }
}

impl Tool for WebhookTool {
    fn spec(&self) -> ToolSpec {
        self.config.spec.clone()
    }

    fn side_effects(&self) -> bool {
        self.config.side_effects
    }

    fn filler(&self) -> Option<String> {
        self.config.filler.clone()
    }

    fn call(&self, request: ToolRequest) -> BoxFuture<'_, ToolOutput> {
        Box::pin(async move {
            let started = Instant::now();
            let answer = self.answer(&request).await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let tool = &self.config.spec.name;
            let call = &request.context.call_id;
            match &answer {
                // The answer itself stays out of the log: it may hold what the caller said.
                Answer::Result { say, end_call, .. } => {
                    tracing::info!(%call, %tool, elapsed_ms, says = say.is_some(), end_call, "the tool answered");
                }
                Answer::Failure { error, .. } => tracing::warn!(%call, %tool, elapsed_ms, "the tool failed: {error}"),
            }
            let result = answer.for_model();
            match answer {
                Answer::Result { say, end_call, .. } => ToolOutput { result, say, end_call },
                Answer::Failure { .. } => ToolOutput { result, say: None, end_call: false },
            }
        })
    }
}
