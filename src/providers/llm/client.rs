//! `POST {base}/chat/completions` with `stream: true`, as OpenAI and Groq serve it.
//!
//! A try ends successfully with the first bytes of the answer's body, so retries (with the
//! first-byte timeout) cover connecting, queueing at the provider and error statuses, and never
//! repeat an answer the caller may already have heard part of.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use url::Url;

use super::chunks::Assembler;
use super::sse::SseDecoder;
use super::{ChatDelta, ChatMessage, ChatModel, ChatRequest, LlmConfig, Role};
use crate::providers::http::{body, endpoint};
use crate::providers::{ProviderError, retry_after};

/// Longest wait for the model list at start-up: it must not hold the worker up for long.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct OpenAiCompatible {
    config: LlmConfig,
    http: reqwest::Client,
}

type Body = BoxStream<'static, reqwest::Result<Bytes>>;
type Item = Result<ChatDelta, ProviderError>;

/// The rest of an answer being read.
struct Reader {
    provider: &'static str,
    body: Body,
    timeout: Duration,
    decoder: SseDecoder,
    assembler: Assembler,
    ready: VecDeque<Item>,
    ended: bool,
}

impl OpenAiCompatible {
    pub(super) fn new(config: LlmConfig, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    /// One try: the answer's status and its first bytes, within the first-byte timeout.
    async fn open(&self, url: &Url, payload: &Value) -> Result<(Body, Bytes), ProviderError> {
        let (provider, timeout) = (self.config.provider, self.config.timeout);
        let attempt = async {
            let response = self
                .http
                .post(url.clone())
                .bearer_auth(self.config.api_key.expose())
                .json(payload)
                .send()
                .await
                .map_err(|e| ProviderError::from_reqwest(provider, e, timeout))?;
            let status = response.status();
            if !status.is_success() {
                let after = retry_after(response.headers());
                let body = response.text().await.unwrap_or_default();
                return Err(ProviderError::from_status(provider, status.as_u16(), after, &body, &self.config.api_key));
            }
            let mut body = response.bytes_stream().boxed();
            loop {
                match body.next().await {
                    Some(Ok(first)) if first.is_empty() => {}
                    Some(Ok(first)) => return Ok((body, first)),
                    Some(Err(e)) => return Err(ProviderError::from_reqwest(provider, e, timeout)),
                    None => return Err(ProviderError::Protocol { provider, message: "the answer was empty".into() }),
                }
            }
        };
        tokio::time::timeout(timeout, attempt).await.map_err(|_| ProviderError::Timeout { provider, after: timeout })?
    }
}

impl ChatModel for OpenAiCompatible {
    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<BoxStream<'static, Item>, ProviderError>> {
        Box::pin(async move {
            let provider = self.config.provider;
            let url = endpoint(provider, &self.config.base_url, "chat/completions")?;
            let payload = payload(&request, self.config.reasoning_effort.as_deref());
            let (body, first) = self.config.retry.run(|| self.open(&url, &payload)).await?;
            let mut reader = Reader {
                provider,
                body,
                timeout: self.config.timeout,
                decoder: SseDecoder::default(),
                assembler: Assembler::new(provider),
                ready: VecDeque::new(),
                ended: false,
            };
            reader.absorb(&first);
            Ok(stream::unfold(reader, Reader::next).boxed())
        })
    }
}

impl Reader {
    async fn next(mut self) -> Option<(Item, Self)> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some((item, self));
            }
            if self.ended {
                return None;
            }
            let provider = self.provider;
            match tokio::time::timeout(self.timeout, self.body.next()).await {
                Err(_) => self.fail(ProviderError::Timeout { provider, after: self.timeout }),
                Ok(Some(Ok(bytes))) => self.absorb(&bytes),
                Ok(Some(Err(e))) => self.fail(ProviderError::from_reqwest(provider, e, self.timeout)),
                Ok(None) => {
                    self.ended = true;
                    let end = self.assembler.end();
                    self.queue(end);
                }
            }
        }
    }

    fn absorb(&mut self, bytes: &[u8]) {
        let mut events = Vec::new();
        let decoded = self.decoder.push(bytes, &mut events);
        for data in events {
            let deltas = self.assembler.feed(&data);
            self.queue(deltas);
            if self.ended || self.assembler.is_done() {
                self.ended = true;
                return;
            }
        }
        if let Err(error) = decoded {
            self.fail(ProviderError::Protocol { provider: self.provider, message: error.to_string() });
        }
    }

    fn queue(&mut self, deltas: Result<Vec<ChatDelta>, ProviderError>) {
        match deltas {
            Ok(deltas) => self.ready.extend(deltas.into_iter().map(Ok)),
            Err(error) => self.fail(error),
        }
    }

    /// Ends the stream with `error` as its last item.
    fn fail(&mut self, error: ProviderError) {
        self.ready.push_back(Err(error));
        self.ended = true;
    }
}

/// `GET {base}/models`: `{"object":"list","data":[{"id":...},...]}`.
pub(super) async fn list_models(config: &LlmConfig, http: &reqwest::Client) -> Result<Vec<String>, ProviderError> {
    let provider = config.provider;
    let url = endpoint(provider, &config.base_url, "models")?;
    let timeout = config.timeout.min(LIST_TIMEOUT);
    let sent = http.get(url).bearer_auth(config.api_key.expose()).timeout(timeout).send().await;
    let answer = body(provider, sent, &config.api_key, timeout).await?;
    let listed: Value = serde_json::from_slice(&answer)
        .map_err(|e| ProviderError::Protocol { provider, message: format!("the model list is not JSON: {e}") })?;
    let ids = listed["data"]
        .as_array()
        .ok_or_else(|| ProviderError::Protocol { provider, message: "the model list has no `data` array".into() })?;
    Ok(ids.iter().filter_map(|model| model["id"].as_str().map(str::to_owned)).collect())
}

/// The request body. `max_completion_tokens` is the field OpenAI and Groq both document
/// (`max_tokens` is deprecated by both, and refused by OpenAI's reasoning models).
fn payload(request: &ChatRequest, reasoning_effort: Option<&str>) -> Value {
    let mut payload = json!({
        "model": request.model,
        "messages": request.messages.iter().map(message).collect::<Vec<_>>(),
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": request.temperature,
        "max_completion_tokens": request.max_tokens,
    });
    if let Some(effort) = reasoning_effort {
        payload["reasoning_effort"] = json!(effort);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.name, "description": tool.description, "parameters": tool.parameters,
                }})
            })
            .collect();
        payload["tools"] = Value::Array(tools);
        payload["tool_choice"] = json!("auto");
    }
    payload
}

fn message(message: &ChatMessage) -> Value {
    let mut value = json!({"role": message.role, "content": message.content});
    if !message.tool_calls.is_empty() {
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|call| json!({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}))
            .collect();
        value["tool_calls"] = Value::Array(calls);
        if message.role == Role::Assistant && message.content.is_empty() {
            value["content"] = Value::Null;
        }
    }
    if let Some(id) = &message.tool_call_id {
        value["tool_call_id"] = json!(id);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::super::{ToolCall, ToolSpec};
    use super::*;

    #[test]
    fn the_payload_follows_the_chat_completions_schema() {
        let mut calling = ChatMessage::assistant("");
        calling.tool_calls =
            vec![ToolCall { id: "call_1".into(), name: "lookup".into(), arguments: "{\"q\":1}".into() }];
        let answer = ChatMessage {
            role: Role::Tool,
            content: "42".into(),
            tool_calls: vec![],
            tool_call_id: Some("call_1".into()),
        };
        let request = ChatRequest {
            model: "llama-3.3-70b-versatile".into(),
            messages: vec![ChatMessage::system("Be brief."), ChatMessage::user("Hi"), calling, answer],
            temperature: 0.5,
            max_tokens: 200,
            tools: vec![ToolSpec {
                name: "lookup".into(),
                description: "Looks up".into(),
                parameters: json!({"type": "object"}),
            }],
        };
        let payload = payload(&request, None);
        assert_eq!(payload["stream"], true);
        assert_eq!(payload["stream_options"], json!({"include_usage": true}));
        assert_eq!(payload["max_completion_tokens"], 200);
        assert_eq!(payload["temperature"], 0.5);
        assert_eq!(payload["tool_choice"], "auto");
        assert_eq!(payload["tools"][0]["function"]["name"], "lookup");
        assert_eq!(payload["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(payload["messages"][2]["content"], Value::Null);
        assert_eq!(payload["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"q\":1}");
        assert_eq!(payload["messages"][3], json!({"role": "tool", "content": "42", "tool_call_id": "call_1"}));
        assert!(payload.get("reasoning_effort").is_none());
        let plain = super::payload(&ChatRequest { tools: vec![], ..request }, Some("low"));
        assert!(plain.get("tools").is_none() && plain.get("tool_choice").is_none());
        assert_eq!(plain["reasoning_effort"], "low");
    }

    #[tokio::test]
    async fn a_provider_streaming_an_endless_line_ends_the_answer_with_a_clear_error() {
        let text = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\ndata: {\"choices\":[";
        let endless = stream::iter(std::iter::repeat_with(|| Ok(Bytes::from(vec![b' '; 64 * 1024]))));
        let mut reader = Reader {
            provider: "groq",
            body: endless.boxed(),
            timeout: Duration::from_secs(5),
            decoder: SseDecoder::default(),
            assembler: Assembler::new("groq"),
            ready: VecDeque::new(),
            ended: false,
        };
        reader.absorb(text.as_bytes());
        let items =
            tokio::time::timeout(Duration::from_secs(30), stream::unfold(reader, Reader::next).collect::<Vec<_>>())
                .await
                .expect("the answer ends instead of buffering for ever");
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(matches!(&items[0], Ok(ChatDelta::Text(text)) if text == "Hello"), "{items:?}");
        let Err(error) = &items[1] else { panic!("{items:?}") };
        assert!(matches!(error, ProviderError::Protocol { provider: "groq", .. }), "{error}");
        assert!(error.to_string().contains("line of its event stream passed 1024 KiB"), "{error}");
        assert!(!error.retryable());
    }
}
