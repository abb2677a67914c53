//! A mock OpenAI or Groq: `/chat/completions` streaming scripted answers as server-sent events
//! exactly as providers.md §2 documents them, `/models`, and OpenAI's audio endpoints
//! (`audio`), with the bearer key checked.

mod audio;

pub use audio::{AudioRecord, MODELS_GROQ, MODELS_OPENAI};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Fault, Faults, Server, dropped, timed_body};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    OpenAi,
    Groq,
}

/// What the model answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Text(String),
    /// Calls as (name, JSON arguments), streamed as parallel calls with index 0, 1, …
    ToolCalls(Vec<(String, String)>),
}

/// One request received, faulted or not.
#[derive(Debug, Clone)]
pub struct ChatRecord {
    pub at: Instant,
    pub body: Value,
    pub fault: Option<Fault>,
    /// The usage the answer reported (prompt, completion, total).
    pub usage: Option<(u32, u32, u32)>,
}

struct Script {
    flavour: Flavour,
    key: String,
    faults: Faults,
    replies: Mutex<VecDeque<Reply>>,
    token_delay: Mutex<Duration>,
    latency: Mutex<Duration>,
    /// Whether Groq adds the top-level usage chunk to `x_groq.usage` (it honours
    /// `include_usage`, but some clients only ever see `x_groq`).
    groq_usage_chunk: AtomicBool,
    records: Mutex<Vec<ChatRecord>>,
    /// What `GET /models` lists.
    models: Mutex<Vec<String>>,
    /// Transcripts to answer, in order.
    transcripts: Mutex<VecDeque<String>>,
    /// Duration of the audio every speech request answers.
    speech_audio: Mutex<Duration>,
    audio_records: Mutex<Vec<AudioRecord>>,
}

pub struct MockOpenAi {
    server: Server,
    script: Arc<Script>,
}

impl MockOpenAi {
    pub async fn start(flavour: Flavour, key: &str) -> Self {
        let script = Arc::new(Script {
            flavour,
            key: key.to_owned(),
            faults: Faults::default(),
            replies: Mutex::default(),
            token_delay: Mutex::default(),
            latency: Mutex::default(),
            groq_usage_chunk: AtomicBool::new(false),
            records: Mutex::default(),
            models: Mutex::new(
                match flavour {
                    Flavour::OpenAi => MODELS_OPENAI,
                    Flavour::Groq => MODELS_GROQ,
                }
                .iter()
                .map(|model| (*model).to_owned())
                .collect(),
            ),
            transcripts: Mutex::default(),
            speech_audio: Mutex::new(Duration::from_millis(500)),
            audio_records: Mutex::default(),
        });
        let root = root(flavour);
        let mut app = Router::new()
            .route(&format!("{root}/chat/completions"), post(completions))
            .route(&format!("{root}/models"), get(audio::models));
        if flavour == Flavour::OpenAi {
            app = app
                .route(&format!("{root}/audio/transcriptions"), post(audio::transcriptions))
                .route(&format!("{root}/audio/speech"), post(audio::speech));
        }
        let app = app.with_state(script.clone());
        Self { server: Server::start(app).await, script }
    }

    /// The API root, as configured in OPENAI_BASE_URL or GROQ_BASE_URL.
    pub fn base_url(&self) -> url::Url {
        self.server.url(root(self.script.flavour))
    }

    /// Answers, in order; once used up, answers are "Hello from the mock."
    pub fn replies(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.replies.lock().expect("not poisoned").extend(replies);
    }

    /// Delay before each chunk after the first.
    pub fn token_delay(&self, delay: Duration) {
        *self.script.token_delay.lock().expect("not poisoned") = delay;
    }

    /// Delay before every answer's headers.
    pub fn latency(&self, delay: Duration) {
        *self.script.latency.lock().expect("not poisoned") = delay;
    }

    pub fn groq_usage_chunk(&self, send: bool) {
        self.script.groq_usage_chunk.store(send, Ordering::SeqCst);
    }

    /// Plays `fault` for the next `times` requests.
    pub fn fault_next(&self, fault: Fault, times: usize) {
        self.script.faults.push(fault, times);
    }

    pub fn records(&self) -> Vec<ChatRecord> {
        self.script.records.lock().expect("not poisoned").clone()
    }

    /// What `GET /models` lists from now on.
    pub fn models<S: Into<String>>(&self, models: impl IntoIterator<Item = S>) {
        *self.script.models.lock().expect("not poisoned") = models.into_iter().map(Into::into).collect();
    }

    /// Transcripts to answer, in order; once used up, answers are "transcript N".
    pub fn transcripts<S: Into<String>>(&self, answers: impl IntoIterator<Item = S>) {
        self.script.transcripts.lock().expect("not poisoned").extend(answers.into_iter().map(Into::into));
    }

    /// Duration of the audio every speech request answers.
    pub fn speech_audio(&self, duration: Duration) {
        *self.script.speech_audio.lock().expect("not poisoned") = duration;
    }

    /// Every audio request received (transcriptions and speech), faulted or not.
    pub fn audio_records(&self) -> Vec<AudioRecord> {
        self.script.audio_records.lock().expect("not poisoned").clone()
    }
}

fn root(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::OpenAi => "/v1",
        Flavour::Groq => "/openai/v1",
    }
}

async fn completions(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let fault =
        if bearer == Some(script.key.as_str()) { script.faults.take(|_| true) } else { Some(Fault::AuthFailure) };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let record = ChatRecord { at: Instant::now(), body: request.clone(), fault: fault.clone(), usage: None };
    let index = {
        let mut records = script.records.lock().expect("not poisoned");
        records.push(record);
        records.len() - 1
    };
    if let Some(fault) = fault.as_ref().filter(|f| f.is_status()) {
        return error_answer(script.flavour, fault, bearer.unwrap_or_default());
    }
    if request["stream"] != true || request["messages"].as_array().is_none_or(Vec::is_empty) {
        return error_body(
            StatusCode::BAD_REQUEST,
            "'messages' and 'stream': true are required",
            "invalid_request_error",
            None,
        );
    }
    let latency = *script.latency.lock().expect("not poisoned");
    let slow = if let Some(Fault::Slow(delay)) = fault { delay } else { Duration::ZERO };
    tokio::time::sleep(latency + slow).await;

    let reply =
        script.replies.lock().expect("not poisoned").pop_front().unwrap_or(Reply::Text("Hello from the mock.".into()));
    let include_usage = request["stream_options"]["include_usage"] == true;
    let stream = Stream::new(script.flavour, &request, include_usage);
    let (events, usage) = stream.events(&reply, script.groq_usage_chunk.load(Ordering::SeqCst));
    script.records.lock().expect("not poisoned")[index].usage = Some(usage);

    let delay = *script.token_delay.lock().expect("not poisoned");
    let mut parts: Vec<_> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| (if i == 0 { Duration::ZERO } else { delay }, Ok(Bytes::from(format!("data: {event}\n\n")))))
        .collect();
    match fault {
        Some(Fault::DropConnection) => {
            parts.truncate(3);
            parts.push((delay, Err(dropped())));
        }
        Some(Fault::ErrorMidStream) => {
            parts.truncate(3);
            let error = json!({"error": {"message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error", "param": null, "code": null}});
            parts.push((delay, Ok(Bytes::from(format!("data: {error}\n\n")))));
        }
        _ => parts.push((delay, Ok(Bytes::from_static(b"data: [DONE]\n\n")))),
    }
    let mut response = (StatusCode::OK, timed_body(parts)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-request-id", HeaderValue::from_static("req_mock"));
    headers.insert("x-ratelimit-remaining-requests", HeaderValue::from_static("99"));
    response
}

fn error_answer(flavour: Flavour, fault: &Fault, key: &str) -> Response {
    match (fault, flavour) {
        (Fault::RateLimited { retry_after }, _) => {
            let message = match flavour {
                Flavour::Groq => {
                    "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_mock` service tier `on_demand` on tokens per minute (TPM): Limit 12000, Used 11972, Requested 4351. Please try again in 5.289s."
                }
                Flavour::OpenAi => {
                    "Rate limit reached for gpt-4o-mini in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."
                }
            };
            let kind = if flavour == Flavour::Groq { "tokens" } else { "requests" };
            let mut response = error_body(StatusCode::TOO_MANY_REQUESTS, message, kind, Some("rate_limit_exceeded"));
            if let Some(after) = retry_after {
                let headers = response.headers_mut();
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_str(&after.as_secs_f64().to_string()).expect("a number"),
                );
                if flavour == Flavour::OpenAi {
                    headers.insert(
                        "retry-after-ms",
                        HeaderValue::from_str(&after.as_millis().to_string()).expect("a number"),
                    );
                }
            }
            response
        }
        (Fault::QuotaExhausted, _) => error_body(
            StatusCode::TOO_MANY_REQUESTS,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            Some("insufficient_quota"),
        ),
        (Fault::AuthFailure, Flavour::OpenAi) => {
            let masked: String = key
                .chars()
                .take(3)
                .chain("****".chars())
                .chain(key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev())
                .collect();
            let message = format!(
                "Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."
            );
            error_body(StatusCode::UNAUTHORIZED, &message, "invalid_request_error", Some("invalid_api_key"))
        }
        (Fault::AuthFailure, Flavour::Groq) => {
            error_body(StatusCode::UNAUTHORIZED, "Invalid API Key", "invalid_request_error", Some("invalid_api_key"))
        }
        _ => error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
    }
}

fn error_body(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Builds the chunks of one streamed answer.
struct Stream {
    flavour: Flavour,
    id: String,
    model: Value,
    created: i64,
    include_usage: bool,
    prompt_tokens: u32,
}

impl Stream {
    fn new(flavour: Flavour, request: &Value, include_usage: bool) -> Self {
        let characters: usize = request["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["content"].as_str().unwrap_or_default().len())
            .sum();
        Self {
            flavour,
            id: format!("chatcmpl-{:032x}", rand::random::<u128>()),
            model: request["model"].clone(),
            created: chrono::Utc::now().timestamp(),
            include_usage,
            prompt_tokens: u32::try_from(characters / 4).unwrap_or(u32::MAX).max(1),
        }
    }

    /// The JSON of every event before `[DONE]`, and the usage reported.
    fn events(&self, reply: &Reply, groq_usage_chunk: bool) -> (Vec<Value>, (u32, u32, u32)) {
        let mut deltas = vec![json!({"role": "assistant", "content": ""})];
        let finish = match reply {
            Reply::Text(text) => {
                deltas.extend(text.split_inclusive(' ').map(|token| json!({"content": token})));
                "stop"
            }
            Reply::ToolCalls(calls) => {
                deltas[0] = json!({"role": "assistant", "content": null});
                for (index, (name, arguments)) in calls.iter().enumerate() {
                    deltas.push(
                        json!({"tool_calls": [{"index": index, "id": format!("call_mock_{index}"), "type": "function",
                        "function": {"name": name, "arguments": ""}}]}),
                    );
                    let characters: Vec<char> = arguments.chars().collect();
                    for piece in characters.chunks(5) {
                        let piece: String = piece.iter().collect();
                        deltas.push(json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}));
                    }
                }
                "tool_calls"
            }
        };
        let completion = u32::try_from(deltas.len() - 1).unwrap_or(u32::MAX);
        let usage = (self.prompt_tokens, completion, self.prompt_tokens + completion);
        let usage_json = json!({"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.2,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}});
        let mut events: Vec<Value> =
            deltas.into_iter().map(|delta| self.chunk(json!([self.choice(delta, None)]))).collect();
        events.push(self.chunk(json!([self.choice(json!({}), Some(finish))])));
        if self.flavour == Flavour::Groq {
            events[0]["x_groq"] = json!({"id": "req_mock"});
            let last = events.len() - 1;
            events[last]["x_groq"] = json!({"id": "req_mock", "usage": {"queue_time": 0.012, "prompt_tokens": usage.0,
                "prompt_time": 0.004, "completion_tokens": usage.1, "completion_time": 0.02, "total_tokens": usage.2,
                "total_time": 0.024}});
        }
        let usage_chunk = self.include_usage && (self.flavour == Flavour::OpenAi || groq_usage_chunk);
        if usage_chunk {
            let mut last = self.chunk(json!([]));
            last["usage"] = usage_json;
            events.push(last);
        }
        (events, usage)
    }

    fn chunk(&self, choices: Value) -> Value {
        let mut chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "system_fingerprint": "fp_mock", "choices": choices});
        if self.flavour == Flavour::OpenAi {
            chunk["service_tier"] = json!("default");
        }
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn choice(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
    }
}
