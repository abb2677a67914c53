//! A mock ElevenLabs input-streaming WebSocket (`/v1/text-to-speech/{voice_id}/stream-input`,
//! providers.md §5b), as its official SDK (`elevenlabs`: `InitializeConnection`, `SendText`,
//! `AudioOutput`, `FinalOutput`) types it: audio as base64 in the asked `output_format` with
//! character alignment, generated on `flush` or at the end of input (`{"text": ""}`), then
//! `{"isFinal": true}` and a 1000 close. It refuses what ElevenLabs refuses: a missing or wrong
//! `xi-api-key`, unknown models and output formats, a first message that is not the single
//! space, text chunks not ending in a space, and malformed voice ids.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Fault, Faults, Server, tone};

/// Models that take text over this socket.
const MODELS: &[&str] =
    &["eleven_flash_v2_5", "eleven_turbo_v2_5", "eleven_multilingual_v2", "eleven_flash_v2", "eleven_turbo_v2"];
/// `TextToSpeechOutputFormatEnum`'s raw PCM formats (the mock makes no MP3).
const PCM_FORMATS: &[(&str, u32)] =
    &[("pcm_8000", 8_000), ("pcm_16000", 16_000), ("pcm_22050", 22_050), ("pcm_24000", 24_000), ("pcm_44100", 44_100)];
/// `InitializeConnection` and `SendText` fields.
const INIT_FIELDS: &[&str] = &[
    "text",
    "voice_settings",
    "generation_config",
    "pronunciation_dictionary_locators",
    "xi-api-key",
    "authorization",
];
const TEXT_FIELDS: &[&str] = &["text", "try_trigger_generation", "voice_settings", "generator_config", "flush"];
const VOICE_SETTINGS: &[&str] = &["stability", "similarity_boost", "style", "use_speaker_boost", "speed"];
/// Audio messages one generation is sent in.
const PIECES: usize = 4;

/// One stream as the mock received it.
#[derive(Debug, Clone)]
pub struct Stream {
    pub voice: String,
    pub query: HashMap<String, String>,
    /// The first message.
    pub initialise: Value,
    /// The texts generated, one per flush or end of input.
    pub generations: Vec<String>,
}

struct Script {
    key: String,
    faults: Faults,
    audio: Mutex<Duration>,
    streams: Mutex<Vec<Stream>>,
    /// Every message received on any stream, in order.
    messages: Mutex<Vec<Value>>,
    handshakes: Mutex<Vec<(Instant, Option<Fault>)>>,
    connections: AtomicUsize,
}

pub struct MockElevenLabs {
    server: Server,
    script: Arc<Script>,
}

impl MockElevenLabs {
    pub async fn start(key: &str) -> Self {
        let script = Arc::new(Script {
            key: key.to_owned(),
            faults: Faults::default(),
            audio: Mutex::new(Duration::from_millis(500)),
            streams: Mutex::default(),
            messages: Mutex::default(),
            handshakes: Mutex::default(),
            connections: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/text-to-speech/{voice}/stream-input", any(stream_input))
            .with_state(script.clone());
        Self { server: Server::start(app).await, script }
    }

    /// The value of `ELEVENLABS_BASE_URL`.
    pub fn base_url(&self) -> url::Url {
        self.server.url("")
    }

    /// Duration of the audio each generation answers.
    pub fn audio(&self, duration: Duration) {
        *self.script.audio.lock().expect("not poisoned") = duration;
    }

    pub fn fault_next(&self, fault: Fault, times: usize) {
        self.script.faults.push(fault, times);
    }

    /// Streams that received any text, in order of connection.
    pub fn streams(&self) -> Vec<Stream> {
        self.script.streams.lock().expect("not poisoned").clone()
    }

    /// Every message received on any stream, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.script.messages.lock().expect("not poisoned").clone()
    }

    pub fn handshakes(&self) -> Vec<(Instant, Option<Fault>)> {
        self.script.handshakes.lock().expect("not poisoned").clone()
    }

    pub fn connections(&self) -> usize {
        self.script.connections.load(Ordering::SeqCst)
    }
}

/// ElevenLabs' refusal: FastAPI's `{"detail": ...}`.
fn refusal(status: StatusCode, detail: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], json!({"detail": detail}).to_string()).into_response()
}

fn status_answer(fault: &Fault) -> Response {
    match fault {
        Fault::AuthFailure => {
            refusal(StatusCode::UNAUTHORIZED, json!({"status": "invalid_api_key", "message": "Invalid API key"}))
        }
        Fault::QuotaExhausted => refusal(
            StatusCode::UNAUTHORIZED,
            json!({"status": "quota_exceeded", "message": "This request exceeds your quota. You have 0 credits remaining."}),
        ),
        Fault::RateLimited { retry_after } => {
            let mut response = refusal(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"status": "too_many_concurrent_requests", "message": "Too many concurrent requests."}),
            );
            if let Some(after) = retry_after {
                let seconds = HeaderValue::from_str(&after.as_secs_f64().to_string()).expect("a number");
                response.headers_mut().insert(header::RETRY_AFTER, seconds);
            }
            response
        }
        _ => {
            refusal(StatusCode::INTERNAL_SERVER_ERROR, json!({"status": "internal_error", "message": "Internal error"}))
        }
    }
}

/// What is wrong with a handshake, as a 422 would say it.
fn check_handshake(voice: &str, query: &HashMap<String, String>) -> Result<u32, Value> {
    let loc =
        |field: &str| json!([{"loc": ["query", field], "msg": format!("invalid {field}"), "type": "value_error"}]);
    if voice.len() != 20 || !voice.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(
            json!([{"loc": ["path", "voice_id"], "msg": "voice_id is not a valid voice id", "type": "value_error"}]),
        );
    }
    let model = query.get("model_id").map(String::as_str).unwrap_or("eleven_multilingual_v2");
    if !MODELS.contains(&model) {
        return Err(loc("model_id"));
    }
    if query.contains_key("language_code") && !model.ends_with("v2_5") {
        return Err(
            json!([{"loc": ["query", "language_code"], "msg": format!("{model} does not support language_code"), "type": "value_error"}]),
        );
    }
    if query.get("inactivity_timeout").is_some_and(|t| t.parse::<u32>().map_or(true, |t| t > 180)) {
        return Err(loc("inactivity_timeout"));
    }
    let format = query.get("output_format").map(String::as_str).unwrap_or("mp3_44100_128");
    PCM_FORMATS.iter().find(|(name, _)| *name == format).map(|(_, rate)| *rate).ok_or_else(|| loc("output_format"))
}

async fn stream_input(
    State(script): State<Arc<Script>>,
    Path(voice): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let key = headers.get("xi-api-key").and_then(|v| v.to_str().ok());
    let fault = if key == Some(script.key.as_str()) { script.faults.take(|_| true) } else { Some(Fault::AuthFailure) };
    script.handshakes.lock().expect("not poisoned").push((Instant::now(), fault.clone()));
    if let Some(fault) = fault.as_ref().filter(|f| f.is_status()) {
        return status_answer(fault);
    }
    let rate = match check_handshake(&voice, &query) {
        Ok(rate) => rate,
        Err(detail) => return refusal(StatusCode::UNPROCESSABLE_ENTITY, detail),
    };
    script.connections.fetch_add(1, Ordering::SeqCst);
    upgrade.on_upgrade(move |socket| session(script, socket, voice, query, rate, fault))
}

async fn session(
    script: Arc<Script>,
    mut socket: WebSocket,
    voice: String,
    query: HashMap<String, String>,
    rate: u32,
    mut fault: Option<Fault>,
) {
    let mut initialise: Option<Value> = None;
    let mut buffer = String::new();
    let mut index = None;
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else { continue };
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
            return refuse(&mut socket, "the message is not JSON").await;
        };
        script.messages.lock().expect("not poisoned").push(message.clone());
        let Some(fields) = message.as_object() else {
            return refuse(&mut socket, "the message is not an object").await;
        };
        let Some(text) = fields.get("text").and_then(Value::as_str) else {
            return refuse(&mut socket, "text: Field required").await;
        };
        if initialise.is_none() {
            if text != " " || fields.keys().any(|k| !INIT_FIELDS.contains(&k.as_str())) {
                return refuse(&mut socket, "the first message must initialise the connection with text \" \"").await;
            }
            if let Some(settings) = fields.get("voice_settings").and_then(Value::as_object)
                && settings.keys().any(|k| !VOICE_SETTINGS.contains(&k.as_str()))
            {
                return refuse(&mut socket, "voice_settings: unknown field").await;
            }
            initialise = Some(message.clone());
            continue;
        }
        if fields.keys().any(|k| !TEXT_FIELDS.contains(&k.as_str())) {
            return refuse(&mut socket, "unknown field in a text message").await;
        }
        let end = text.is_empty();
        if !end && !text.ends_with(' ') {
            return refuse(&mut socket, "text should always end with a single space").await;
        }
        buffer.push_str(text);
        if !(end || fields.get("flush").and_then(Value::as_bool) == Some(true)) {
            continue;
        }
        let said = std::mem::take(&mut buffer).trim().to_owned();
        if !said.is_empty() {
            let at = *index.get_or_insert_with(|| {
                let mut streams = script.streams.lock().expect("not poisoned");
                streams.push(Stream {
                    voice: voice.clone(),
                    query: query.clone(),
                    initialise: initialise.clone().unwrap_or_default(),
                    generations: Vec::new(),
                });
                streams.len() - 1
            });
            script.streams.lock().expect("not poisoned")[at].generations.push(said.clone());
            if !generate(&script, &mut socket, &said, rate, fault.take()).await {
                return;
            }
        }
        if end {
            let _ = socket.send(Message::Text(json!({"isFinal": true}).to_string().into())).await;
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
            return;
        }
    }
}

/// Sends the audio of `text` in pieces with their alignment; false when a fault ended the stream.
async fn generate(script: &Script, socket: &mut WebSocket, text: &str, rate: u32, fault: Option<Fault>) -> bool {
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    let samples = tone(*script.audio.lock().expect("not poisoned"), rate);
    let chars: Vec<char> = text.chars().collect();
    let per_piece = samples.len().div_ceil(PIECES).max(1);
    let chars_per_piece = chars.len().div_ceil(PIECES).max(1);
    let total_ms = samples.len() as f64 * 1000.0 / f64::from(rate);
    for (i, piece) in samples.chunks(per_piece).enumerate() {
        if i == 1 && fault == Some(Fault::ErrorMidStream) {
            let error =
                json!({"message": "An internal server error occurred", "error": "internal_error", "code": 1011});
            let _ = socket.send(Message::Text(error.to_string().into())).await;
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1011, reason: "internal error".into() }))).await;
            return false;
        }
        if i == 1 && fault == Some(Fault::DropConnection) {
            return false;
        }
        let bytes: Vec<u8> = piece.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mine: Vec<String> =
            chars.iter().skip(i * chars_per_piece).take(chars_per_piece).map(|c| c.to_string()).collect();
        let step = total_ms / chars.len().max(1) as f64;
        let starts: Vec<u64> = (0..mine.len()).map(|j| (((i * chars_per_piece + j) as f64) * step) as u64).collect();
        let durations: Vec<u64> = vec![step as u64; mine.len()];
        let alignment = json!({"chars": mine, "charStartTimesMs": starts, "charDurationsMs": durations});
        let audio = json!({"audio": STANDARD.encode(bytes), "isFinal": null, "normalizedAlignment": alignment, "alignment": alignment});
        let _ = socket.send(Message::Text(audio.to_string().into())).await;
    }
    true
}

/// ElevenLabs' answer to a bad message: an error message, then a 1008 close.
async fn refuse(socket: &mut WebSocket, why: &str) {
    let error = json!({"message": why, "error": "invalid_request", "code": 1008});
    let _ = socket.send(Message::Text(error.to_string().into())).await;
    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: why.into() }))).await;
}
