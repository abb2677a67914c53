//! A mock Deepgram live transcription (`/v1/listen`, providers.md §4), as its official SDK
//! (`deepgram-sdk`, `listen.v1`) types it: `Results` with interim results, `speech_final`
//! after `endpointing` of silence, `UtteranceEnd`, `from_finalize` answers to `Finalize`,
//! `Metadata` and a 1000 close after `CloseStream`, a 1011 close after 10 s without audio or
//! `KeepAlive`. It refuses what Deepgram refuses: handshakes without `Authorization: Token`,
//! query parameters the SDK does not know or values it does not take, empty binary frames,
//! unknown text messages.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

use super::{Fault, Faults, Server};

/// The query parameters of the SDK's `listen.v1.connect`.
const PARAMETERS: &[&str] = &[
    "callback",
    "callback_method",
    "channels",
    "detect_entities",
    "diarize",
    "diarize_model",
    "dictation",
    "encoding",
    "endpointing",
    "extra",
    "interim_results",
    "keyterm",
    "keywords",
    "language",
    "language_hint",
    "mip_opt_out",
    "model",
    "multichannel",
    "numerals",
    "profanity_filter",
    "punctuate",
    "redact",
    "replace",
    "sample_rate",
    "search",
    "smart_format",
    "tag",
    "utterance_end_ms",
    "vad_events",
    "version",
];
/// `ListenV1Model`'s current models.
const MODELS: &[&str] = &["nova-3", "nova-3-general", "nova-3-medical", "nova-2", "nova-2-general", "nova-2-phonecall"];
/// `ListenV1Encoding`.
const ENCODINGS: &[&str] =
    &["linear16", "linear32", "flac", "alaw", "mulaw", "amr-nb", "amr-wb", "opus", "ogg-opus", "speex", "g729"];
/// Languages the mock's models take (Deepgram's codes).
const LANGUAGES: &[&str] = &["en", "en-US", "en-IN", "hi", "multi"];
/// Audio between two interim results.
const INTERIM_EVERY: Duration = Duration::from_millis(200);
/// A 20 ms frame below this peak is silence.
const SILENCE_PEAK: i16 = 300;

/// One utterance as the mock heard it: the audio from a stream's start or the last
/// `Finalize` up to the next.
#[derive(Debug, Clone)]
pub struct Utterance {
    /// Which connection, counted from 1.
    pub connection: usize,
    pub query: HashMap<String, String>,
    pub audio_seconds: f64,
}

/// What a connection received besides audio.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    pub keep_alives: usize,
    pub finalizes: usize,
    pub close_streams: usize,
    /// Every text message, as received.
    pub messages: Vec<Value>,
}

struct Script {
    key: String,
    faults: Faults,
    transcripts: Mutex<VecDeque<String>>,
    latency: Mutex<Duration>,
    utterances: Mutex<Vec<Utterance>>,
    controls: Mutex<Vec<Controls>>,
    handshakes: Mutex<Vec<(Instant, Option<Fault>)>>,
    connections: AtomicUsize,
    /// How long without audio or `KeepAlive` before the mock closes 1011 (Deepgram's is 10 s).
    idle_limit: Mutex<Duration>,
}

pub struct MockDeepgram {
    server: Server,
    script: Arc<Script>,
}

impl MockDeepgram {
    pub async fn start(key: &str) -> Self {
        let script = Arc::new(Script {
            key: key.to_owned(),
            faults: Faults::default(),
            transcripts: Mutex::default(),
            latency: Mutex::default(),
            utterances: Mutex::default(),
            controls: Mutex::default(),
            handshakes: Mutex::default(),
            connections: AtomicUsize::new(0),
            idle_limit: Mutex::new(Duration::from_secs(10)),
        });
        let app = Router::new().route("/v1/listen", any(listen)).with_state(script.clone());
        Self { server: Server::start(app).await, script }
    }

    /// The value of `DEEPGRAM_BASE_URL`.
    pub fn base_url(&self) -> url::Url {
        self.server.url("")
    }

    /// Transcripts, one per utterance, in order; once used up, "transcript N".
    pub fn transcripts<S: Into<String>>(&self, answers: impl IntoIterator<Item = S>) {
        self.script.transcripts.lock().expect("not poisoned").extend(answers.into_iter().map(Into::into));
    }

    /// Delay before answering a `Finalize`.
    pub fn latency(&self, delay: Duration) {
        *self.script.latency.lock().expect("not poisoned") = delay;
    }

    pub fn idle_limit(&self, limit: Duration) {
        *self.script.idle_limit.lock().expect("not poisoned") = limit;
    }

    /// Plays `fault` for the next `times` handshakes (status faults) or streams.
    pub fn fault_next(&self, fault: Fault, times: usize) {
        self.script.faults.push(fault, times);
    }

    pub fn utterances(&self) -> Vec<Utterance> {
        self.script.utterances.lock().expect("not poisoned").clone()
    }

    /// Per connection, in order.
    pub fn controls(&self) -> Vec<Controls> {
        self.script.controls.lock().expect("not poisoned").clone()
    }

    pub fn handshakes(&self) -> Vec<(Instant, Option<Fault>)> {
        self.script.handshakes.lock().expect("not poisoned").clone()
    }

    pub fn connections(&self) -> usize {
        self.script.connections.load(Ordering::SeqCst)
    }
}

/// Deepgram's refusal of a handshake: the message in the body and in `dg-error`.
fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"err_code": code, "err_msg": message, "request_id": request_id()}).to_string();
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    let headers = response.headers_mut();
    headers.insert("dg-error", HeaderValue::from_str(message).expect("a plain message"));
    headers.insert("dg-request-id", HeaderValue::from_str(&request_id()).expect("an id"));
    response
}

fn request_id() -> String {
    uuid()
}

fn uuid() -> String {
    let n = rand::random::<u128>();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        n >> 96,
        (n >> 80) & 0xffff,
        (n >> 64) & 0xffff,
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

/// What is wrong with a handshake's query, as Deepgram's 400 would say it.
fn check_query(query: &[(String, String)]) -> Result<(), String> {
    let value = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if let Some((unknown, _)) = query.iter().find(|(k, _)| !PARAMETERS.contains(&k.as_str())) {
        return Err(format!("unknown query parameter `{unknown}`"));
    }
    let model = value("model").ok_or("`model` is required")?;
    if !MODELS.contains(&model) {
        return Err(format!("No such model `{model}`"));
    }
    if let Some(language) = value("language").filter(|l| !LANGUAGES.contains(l)) {
        return Err(format!("No such model/language/tier combination found: {model}/{language}"));
    }
    if let Some(encoding) = value("encoding") {
        if !ENCODINGS.contains(&encoding) {
            return Err(format!("Invalid encoding `{encoding}`"));
        }
        if value("sample_rate").and_then(|r| r.parse::<u32>().ok()).is_none() {
            return Err("`sample_rate` is required with `encoding`".into());
        }
    }
    for flag in ["interim_results", "punctuate", "smart_format", "vad_events"] {
        if value(flag).is_some_and(|v| v != "true" && v != "false") {
            return Err(format!("`{flag}` must be true or false"));
        }
    }
    if value("endpointing").is_some_and(|v| v != "false" && v.parse::<u32>().is_err()) {
        return Err("`endpointing` must be a number of milliseconds or false".into());
    }
    if let Some(end) = value("utterance_end_ms") {
        if end.parse::<u32>().is_err() {
            return Err("`utterance_end_ms` must be a number of milliseconds".into());
        }
        if value("interim_results") != Some("true") {
            return Err("`utterance_end_ms` requires `interim_results=true`".into());
        }
    }
    if value("keyterm").is_some() && !model.starts_with("nova-3") {
        return Err("`keyterm` is only available with Nova-3".into());
    }
    Ok(())
}

async fn listen(
    State(script): State<Arc<Script>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Token "));
    let fault =
        if token == Some(script.key.as_str()) { script.faults.take(|_| true) } else { Some(Fault::AuthFailure) };
    script.handshakes.lock().expect("not poisoned").push((Instant::now(), fault.clone()));
    match &fault {
        Some(Fault::AuthFailure) => {
            return refusal(StatusCode::UNAUTHORIZED, "INVALID_AUTH", "Invalid credentials.");
        }
        Some(Fault::QuotaExhausted) => {
            return refusal(
                StatusCode::PAYMENT_REQUIRED,
                "ASR_PAYMENT_REQUIRED",
                "Project does not have enough credits",
            );
        }
        Some(Fault::RateLimited { retry_after }) => {
            let mut response = refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "Too many requests. Please try again later",
            );
            if let Some(after) = retry_after {
                let seconds = HeaderValue::from_str(&after.as_secs_f64().to_string()).expect("a number");
                response.headers_mut().insert(header::RETRY_AFTER, seconds);
            }
            return response;
        }
        Some(Fault::ServerError) => return refusal(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "Internal error"),
        _ => {}
    }
    if let Err(why) = check_query(&query) {
        return refusal(StatusCode::BAD_REQUEST, "Bad Request", &why);
    }
    let connection = script.connections.fetch_add(1, Ordering::SeqCst) + 1;
    script.controls.lock().expect("not poisoned").push(Controls::default());
    let query: HashMap<String, String> = query.into_iter().collect();
    upgrade.on_upgrade(move |socket| Session::new(script, query, connection, fault).run(socket))
}

/// One stream.
struct Session {
    script: Arc<Script>,
    query: HashMap<String, String>,
    connection: usize,
    fault: Option<Fault>,
    rate: f64,
    interim: bool,
    endpointing: Option<Duration>,
    utterance_end: Option<Duration>,
    /// Samples of the utterance so far.
    samples: usize,
    /// Samples at the last interim result.
    interim_at: usize,
    /// Silence since the last speech frame, and whether words are pending a final.
    silence: Duration,
    pending: bool,
    /// Silence since the last word, for `UtteranceEnd`.
    since_word: Option<Duration>,
    /// Stream time (s) of the utterance's start.
    offset: f64,
    /// The words already made final in this utterance.
    finalized: usize,
}

impl Session {
    fn new(script: Arc<Script>, query: HashMap<String, String>, connection: usize, fault: Option<Fault>) -> Self {
        let number = |name: &str| query.get(name).and_then(|v| v.parse::<u64>().ok());
        Self {
            rate: number("sample_rate").unwrap_or(16_000) as f64,
            interim: query.get("interim_results").is_some_and(|v| v == "true"),
            endpointing: match query.get("endpointing").map(String::as_str) {
                Some("false") => None,
                _ => Some(Duration::from_millis(number("endpointing").unwrap_or(10))),
            },
            utterance_end: number("utterance_end_ms").map(Duration::from_millis),
            script,
            query,
            connection,
            fault,
            samples: 0,
            interim_at: 0,
            silence: Duration::ZERO,
            pending: false,
            since_word: None,
            offset: 0.0,
            finalized: 0,
        }
    }

    fn controls(&self, count: impl FnOnce(&mut Controls)) {
        if let Some(controls) = self.script.controls.lock().expect("not poisoned").get_mut(self.connection - 1) {
            count(controls);
        }
    }

    fn words(&self) -> Vec<String> {
        let transcripts = self.script.transcripts.lock().expect("not poisoned");
        let next = transcripts.front().cloned().unwrap_or_else(|| {
            format!("transcript {}", self.script.utterances.lock().expect("not poisoned").len() + 1)
        });
        next.split_whitespace().map(str::to_owned).collect()
    }

    async fn run(mut self, mut socket: WebSocket) {
        let idle_limit = *self.script.idle_limit.lock().expect("not poisoned");
        let mut last_heard = Instant::now();
        loop {
            let message = tokio::select! {
                message = socket.recv() => message,
                () = tokio::time::sleep_until((last_heard + idle_limit).into()) => {
                    let reason = "Deepgram did not receive audio data or a text message within the timeout window. See https://dpgr.am/net0001";
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1011, reason: reason.into() }))).await;
                    return;
                }
            };
            let Some(Ok(message)) = message else { return };
            last_heard = Instant::now();
            match message {
                Message::Binary(bytes) => {
                    if bytes.is_empty() || bytes.len() % 2 != 0 {
                        let reason = "Deepgram could not decode the audio. See https://dpgr.am/data0000";
                        let _ =
                            socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: reason.into() }))).await;
                        return;
                    }
                    let samples: Vec<i16> = bytes.chunks_exact(2).map(|p| i16::from_le_bytes([p[0], p[1]])).collect();
                    if !self.audio(&mut socket, &samples).await {
                        return;
                    }
                }
                Message::Text(text) => {
                    let parsed: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    let received = parsed.clone();
                    self.controls(|c| c.messages.push(received));
                    match parsed["type"].as_str() {
                        Some("KeepAlive") => self.controls(|c| c.keep_alives += 1),
                        Some("Finalize") => {
                            self.controls(|c| c.finalizes += 1);
                            if !self.finalize(&mut socket).await {
                                return;
                            }
                        }
                        Some("CloseStream") => {
                            self.controls(|c| c.close_streams += 1);
                            let _ = socket.send(self.metadata()).await;
                            let _ =
                                socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                            return;
                        }
                        _ => {
                            let error = json!({"type": "Error", "variant": "SchemaError",
                                "description": "the server could not parse a client text message", "message": text.as_str()});
                            let _ = socket.send(Message::Text(error.to_string().into())).await;
                        }
                    }
                }
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    }

    /// Takes audio: interim results as it grows, a `speech_final` result after enough silence,
    /// `UtteranceEnd` after longer silence. False when the stream ends here (a fault).
    async fn audio(&mut self, socket: &mut WebSocket, samples: &[i16]) -> bool {
        if self.samples == 0 && self.fault == Some(Fault::ErrorMidStream) {
            let error = json!({"type": "Error", "variant": "InternalError", "description": "Internal server error"});
            let _ = socket.send(Message::Text(error.to_string().into())).await;
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1011, reason: "internal error".into() }))).await;
            return false;
        }
        if self.samples == 0 && self.fault == Some(Fault::DropConnection) {
            return false;
        }
        for frame in samples.chunks((self.rate / 50.0) as usize) {
            self.samples += frame.len();
            let length = Duration::from_secs_f64(frame.len() as f64 / self.rate);
            if frame.iter().any(|s| s.unsigned_abs() > SILENCE_PEAK as u16) {
                self.silence = Duration::ZERO;
                self.pending = true;
                self.since_word = Some(Duration::ZERO);
            } else {
                self.silence += length;
                if let Some(since) = self.since_word.as_mut() {
                    *since += length;
                }
            }
            if self.interim
                && self.pending
                && self.samples - self.interim_at >= (INTERIM_EVERY.as_secs_f64() * self.rate) as usize
            {
                self.interim_at = self.samples;
                let heard = self.heard_words();
                let _ = socket.send(self.results(&heard, false, false, false)).await;
            }
            if self.pending && self.endpointing.is_some_and(|after| self.silence >= after) {
                self.pending = false;
                let words = self.words();
                let text = words[self.finalized.min(words.len())..].join(" ");
                self.finalized = words.len();
                let _ = socket.send(self.results(&text, true, true, false)).await;
            }
            if let (Some(after), Some(since)) = (self.utterance_end, self.since_word)
                && since >= after
            {
                self.since_word = None;
                let end =
                    json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self.offset + self.seconds()});
                let _ = socket.send(Message::Text(end.to_string().into())).await;
            }
        }
        true
    }

    /// The words heard so far: a share of the scripted transcript as long as the audio is.
    fn heard_words(&self) -> String {
        let words = self.words();
        let share = (self.seconds() / 1.5).min(1.0);
        let count = ((words.len() as f64 * share).ceil() as usize).clamp(1, words.len().max(1));
        words[..count.min(words.len())].join(" ")
    }

    fn seconds(&self) -> f64 {
        self.samples as f64 / self.rate
    }

    /// Answers a `Finalize`: the words not yet final, `from_finalize`; the utterance is done.
    async fn finalize(&mut self, socket: &mut WebSocket) -> bool {
        let latency = *self.script.latency.lock().expect("not poisoned");
        let slow = if let Some(Fault::Slow(delay)) = self.fault { delay } else { Duration::ZERO };
        tokio::time::sleep(latency + slow).await;
        let words = self.words();
        let text = words[self.finalized.min(words.len())..].join(" ");
        let _ = socket.send(self.results(&text, true, false, true)).await;
        self.script.utterances.lock().expect("not poisoned").push(Utterance {
            connection: self.connection,
            query: self.query.clone(),
            audio_seconds: self.seconds(),
        });
        self.script.transcripts.lock().expect("not poisoned").pop_front();
        self.offset += self.seconds();
        (self.samples, self.interim_at, self.finalized, self.pending, self.since_word) = (0, 0, 0, false, None);
        self.silence = Duration::ZERO;
        self.fault = None;
        true
    }

    fn results(&self, text: &str, is_final: bool, speech_final: bool, from_finalize: bool) -> Message {
        let start = self.offset;
        let duration = self.seconds();
        let words: Vec<Value> = text
            .split_whitespace()
            .enumerate()
            .map(|(i, word)| {
                let at = start + i as f64 * 0.3;
                json!({"word": word.to_lowercase(), "start": at, "end": at + 0.25, "confidence": 0.98, "punctuated_word": word})
            })
            .collect();
        let results = json!({
            "type": "Results",
            "channel_index": [0, 1],
            "duration": duration,
            "start": start,
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.98, "words": words}]},
            "metadata": {"request_id": request_id(), "model_info": {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"},
                "model_uuid": uuid()},
        });
        Message::Text(results.to_string().into())
    }

    fn metadata(&self) -> Message {
        let metadata = json!({"type": "Metadata", "transaction_key": "deprecated", "request_id": request_id(),
            "sha256": "0".repeat(64), "created": chrono::Utc::now().to_rfc3339(), "duration": self.offset + self.seconds(),
            "channels": 1, "models": [uuid()], "model_info": {}});
        Message::Text(metadata.to_string().into())
    }
}
