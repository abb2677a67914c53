//! A mock Sarvam AI: speech-to-text over REST and WebSocket, text-to-speech over REST and
//! WebSocket (providers.md §1), with the key checked on every request.
//!
//! It refuses what Sarvam's official SDK (`sarvamai` 0.1.39) says the API refuses, with
//! Sarvam's 422 error shape: retired or unknown models, modes and languages, speakers of
//! another model, sample rates the transport does not take, the old `target_language_code`
//! field, and a WebSocket `speech_sample_rate` that is not an integer.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Fault, Faults, FormPart, Server, dropped, multipart, timed_body, tone};

/// `TextToSpeechSpeaker` of `sarvamai` 0.1.39, one per line: every model's speakers together.
const SPEAKERS: &str = include_str!("sarvam_speakers.txt");
/// The SDK's per-model lists (`text_to_speech.convert`'s documentation); bulbul:v4-flash takes
/// the personas, `<name>_<language>_<style>`.
const V2_SPEAKERS: &[&str] = &["anushka", "manisha", "vidya", "arya", "abhilash", "karun", "hitesh"];
const V3_SPEAKERS: &[&str] = &[
    "shubh", "aditya", "ritu", "priya", "neha", "rahul", "pooja", "rohan", "simran", "kavya", "amit", "dev", "ishita",
    "shreya", "ratan", "varun", "manan", "sumit", "roopa", "kabir", "aayan", "ashutosh", "advait", "anand", "tanya",
    "tarun", "sunny", "mani", "gokul", "vijay", "shruti", "suhani", "mohit", "kavitha", "rehan", "soham", "rupali",
];
const STT_MODELS: &[&str] = &["saaras:v3", "saaras:v4"];
const STT_MODES: &[&str] = &["transcribe", "translate", "verbatim", "translit", "codemix"];
/// `SpeechToTextLanguage`.
const STT_LANGUAGES: &[&str] = &[
    "unknown", "hi-IN", "bn-IN", "kn-IN", "ml-IN", "mr-IN", "od-IN", "pa-IN", "ta-IN", "te-IN", "en-IN", "gu-IN",
    "as-IN", "ur-IN", "ne-IN", "kok-IN", "ks-IN", "sd-IN", "sa-IN", "sat-IN", "mni-IN", "brx-IN", "mai-IN", "doi-IN",
];
/// `TextToSpeechLanguage`.
const TTS_LANGUAGES: &[&str] =
    &["bn-IN", "en-IN", "gu-IN", "hi-IN", "kn-IN", "ml-IN", "mr-IN", "od-IN", "pa-IN", "ta-IN", "te-IN"];
const TTS_MODELS: &[&str] = &["bulbul:v2", "bulbul:v3", "bulbul:v4-flash"];

/// What is wrong with a synthesis request's fields, as the API would say it.
fn check_synthesis(model: &str, fields: &Value, websocket: bool) -> Result<(), String> {
    if !TTS_MODELS.contains(&model) {
        return Err(format!("model: Input should be {}", TTS_MODELS.join(", ")));
    }
    if fields.get("target_language_code").is_some() && fields.get("language_code").is_none() {
        return Err("language_code: Field required (target_language_code is no longer accepted)".into());
    }
    let language = fields["language_code"].as_str().ok_or("language_code: Field required")?;
    if !TTS_LANGUAGES.contains(&language) {
        return Err(format!("language_code: Input should be {}", TTS_LANGUAGES.join(", ")));
    }
    if let Some(speaker) = fields.get("speaker") {
        let speaker = speaker.as_str().unwrap_or_default();
        let fits = match model {
            "bulbul:v2" => V2_SPEAKERS.contains(&speaker),
            "bulbul:v3" => V3_SPEAKERS.contains(&speaker),
            _ => speaker.contains('_') && SPEAKERS.lines().any(|listed| listed == speaker),
        };
        if !fits {
            return Err(format!("speaker: `{speaker}` is not compatible with {model}"));
        }
    } else if websocket {
        return Err("speaker: Field required".into());
    }
    if let Some(rate) = fields.get("speech_sample_rate") {
        let rate = rate.as_u64().ok_or("speech_sample_rate: Input should be a valid integer")?;
        let mut rates = vec![8_000, 16_000, 22_050, 24_000];
        if !websocket && model != "bulbul:v2" {
            rates.extend([32_000, 44_100, 48_000]);
        }
        if !rates.contains(&rate) {
            return Err(format!("speech_sample_rate: {rate} is not supported by {model} here"));
        }
    }
    if let Some(pace) = fields.get("pace").and_then(Value::as_f64) {
        let (low, high) = if model == "bulbul:v2" { (0.3, 3.0) } else { (0.5, 2.0) };
        if !(low..=high).contains(&pace) {
            return Err(format!("pace: {pace} is outside {low} to {high} for {model}"));
        }
    }
    Ok(())
}

/// What is wrong with a transcription's model, mode and language.
fn check_transcription(model: &str, mode: Option<&str>, language: &str) -> Result<(), String> {
    if !STT_MODELS.contains(&model) {
        return Err(format!("model: Input should be {}", STT_MODELS.join(" or ")));
    }
    if mode.is_some_and(|mode| !STT_MODES.contains(&mode)) {
        return Err(format!("mode: Input should be {}", STT_MODES.join(", ")));
    }
    if !STT_LANGUAGES.contains(&language) {
        return Err(format!("language_code: `{language}` is not supported"));
    }
    Ok(())
}

/// Every recorded request to the mock, faulted or not.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub endpoint: &'static str,
    pub at: Instant,
    pub fault: Option<Fault>,
}

/// A transcription request over REST.
#[derive(Debug, Clone)]
pub struct SttRequest {
    /// The form's text fields.
    pub fields: Value,
    pub model: String,
    pub language_code: String,
    pub mode: Option<String>,
    pub file_name: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub audio_seconds: f64,
}

/// One utterance received over the WebSocket (audio up to a flush).
#[derive(Debug, Clone)]
pub struct SttUtterance {
    /// Which connection, counted from 1.
    pub connection: usize,
    pub query: HashMap<String, String>,
    pub audio_seconds: f64,
}

/// A synthesis answered (over REST, or a flushed text over the WebSocket).
#[derive(Debug, Clone)]
pub struct TtsRequest {
    pub transport: &'static str,
    /// The WebSocket's query parameters; empty over REST.
    pub query: HashMap<String, String>,
    /// The REST body, or the WebSocket's config message data.
    pub body: Value,
    pub text: String,
    /// Which WebSocket connection, counted from 1.
    pub connection: Option<usize>,
    pub sample_rate: u32,
    /// The audio the mock produced for it.
    pub produced_seconds: f64,
}

struct Script {
    key: String,
    faults: Faults,
    transcripts: Mutex<VecDeque<String>>,
    latency: Mutex<Duration>,
    tts_audio: Mutex<Duration>,
    /// When set, the WebSocket closes a segment by itself after this much audio, as Sarvam's
    /// voice detection does, and answers a flush with nothing when no audio came since.
    self_segment: Mutex<Option<Duration>>,
    attempts: Mutex<Vec<Attempt>>,
    stt_requests: Mutex<Vec<SttRequest>>,
    stt_utterances: Mutex<Vec<SttUtterance>>,
    tts_requests: Mutex<Vec<TtsRequest>>,
    stt_connections: AtomicUsize,
    tts_connections: AtomicUsize,
    /// Every JSON message received over the WebSockets, with the socket's endpoint.
    messages: Mutex<Vec<(&'static str, Value)>>,
}

pub struct MockSarvam {
    server: Server,
    script: Arc<Script>,
}

impl MockSarvam {
    /// A mock that accepts only `key`.
    pub async fn start(key: &str) -> Self {
        let script = Arc::new(Script {
            key: key.to_owned(),
            faults: Faults::default(),
            transcripts: Mutex::default(),
            latency: Mutex::default(),
            tts_audio: Mutex::new(Duration::from_millis(500)),
            self_segment: Mutex::default(),
            attempts: Mutex::default(),
            stt_requests: Mutex::default(),
            stt_utterances: Mutex::default(),
            tts_requests: Mutex::default(),
            stt_connections: AtomicUsize::new(0),
            tts_connections: AtomicUsize::new(0),
            messages: Mutex::default(),
        });
        let app = Router::new()
            .route("/speech-to-text", post(stt_rest))
            .route("/speech-to-text/ws", any(stt_ws))
            .route("/text-to-speech", post(tts_rest))
            .route("/text-to-speech/ws", any(tts_ws))
            .with_state(script.clone());
        Self { server: Server::start(app).await, script }
    }

    pub fn base_url(&self) -> url::Url {
        self.server.url("")
    }

    /// Transcripts to answer, in order; once used up, answers are "transcript N".
    pub fn stt_answers<S: Into<String>>(&self, answers: impl IntoIterator<Item = S>) {
        self.script.transcripts.lock().expect("not poisoned").extend(answers.into_iter().map(Into::into));
    }

    /// Delay before every answer's first byte.
    pub fn latency(&self, delay: Duration) {
        *self.script.latency.lock().expect("not poisoned") = delay;
    }

    /// Duration of the audio every synthesis answers.
    pub fn tts_audio(&self, duration: Duration) {
        *self.script.tts_audio.lock().expect("not poisoned") = duration;
    }

    pub fn self_segment_after(&self, audio: Duration) {
        *self.script.self_segment.lock().expect("not poisoned") = Some(audio);
    }

    /// Plays `fault` for the next `times` requests it applies to.
    pub fn fault_next(&self, fault: Fault, times: usize) {
        self.script.faults.push(fault, times);
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.script.attempts.lock().expect("not poisoned").clone()
    }

    pub fn stt_requests(&self) -> Vec<SttRequest> {
        self.script.stt_requests.lock().expect("not poisoned").clone()
    }

    pub fn stt_utterances(&self) -> Vec<SttUtterance> {
        self.script.stt_utterances.lock().expect("not poisoned").clone()
    }

    pub fn tts_requests(&self) -> Vec<TtsRequest> {
        self.script.tts_requests.lock().expect("not poisoned").clone()
    }

    /// Every JSON message received over the WebSockets (`stt-ws`, `tts-ws`), in order.
    pub fn messages(&self) -> Vec<(&'static str, Value)> {
        self.script.messages.lock().expect("not poisoned").clone()
    }

    pub fn stt_connections(&self) -> usize {
        self.script.stt_connections.load(Ordering::SeqCst)
    }

    pub fn tts_connections(&self) -> usize {
        self.script.tts_connections.load(Ordering::SeqCst)
    }
}

impl Script {
    /// Records the request and decides what happens to it: `Err` is a fault to answer with its
    /// error status in place of the request.
    fn admit(
        &self,
        endpoint: &'static str,
        headers: &HeaderMap,
        applies: impl Fn(&Fault) -> bool,
    ) -> Result<Option<Fault>, Fault> {
        let key_ok = headers.get("api-subscription-key").and_then(|v| v.to_str().ok()) == Some(self.key.as_str());
        let fault = if key_ok { self.faults.take(applies) } else { Some(Fault::AuthFailure) };
        self.attempts.lock().expect("not poisoned").push(Attempt {
            endpoint,
            at: Instant::now(),
            fault: fault.clone(),
        });
        match fault {
            Some(fault) if fault.is_status() => Err(fault),
            other => Ok(other),
        }
    }

    fn next_transcript(&self) -> String {
        let mut queue = self.transcripts.lock().expect("not poisoned");
        queue
            .pop_front()
            .unwrap_or_else(|| format!("transcript {}", self.stt_utterances.lock().expect("not poisoned").len() + 1))
    }

    async fn wait(&self, fault: Option<&Fault>) {
        let latency = *self.latency.lock().expect("not poisoned");
        let slow = match fault {
            Some(Fault::Slow(delay)) => *delay,
            _ => Duration::ZERO,
        };
        tokio::time::sleep(latency + slow).await;
    }
}

/// Sarvam's error answers (docs.sarvam.ai errors page).
fn status_answer(fault: &Fault) -> Response {
    let (status, message, code) = match fault {
        Fault::RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded. Please slow down your requests.",
            "rate_limit_exceeded_error",
        ),
        Fault::QuotaExhausted => (
            StatusCode::TOO_MANY_REQUESTS,
            "Insufficient credits. Please top up your account.",
            "insufficient_quota_error",
        ),
        Fault::AuthFailure => {
            (StatusCode::FORBIDDEN, "Invalid API key. Please check your API key.", "invalid_api_key_error")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error", "internal_server_error"),
    };
    let body = json!({"error": {"message": message, "code": code}}).to_string();
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Fault::RateLimited { retry_after: Some(after) } = fault {
        let seconds = HeaderValue::from_str(&after.as_secs_f64().to_string()).expect("a number");
        response.headers_mut().insert(header::RETRY_AFTER, seconds);
    }
    response
}

fn json_answer(body: &Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// A 200 whose body breaks off partway.
fn dropped_answer(body: &Value) -> Response {
    let text = body.to_string();
    let half = Bytes::from(text.as_bytes()[..text.len() / 2].to_vec());
    let parts = vec![(Duration::ZERO, Ok(half)), (Duration::from_millis(20), Err(dropped()))];
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], timed_body(parts)).into_response()
}

fn request_id() -> String {
    format!("20250101_{:032x}", rand::random::<u128>())
}

// ---- speech-to-text over REST

async fn stt_rest(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = match script.admit("stt-rest", &headers, |f| !matches!(f, Fault::ErrorMidStream)) {
        Ok(fault) => fault,
        Err(fault) => return status_answer(&fault),
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(form) = multipart(content_type, &body) else {
        return invalid("the body is not multipart/form-data");
    };
    let text = |name: &str| form.get(name).map(|part| String::from_utf8_lossy(&part.content).into_owned());
    let Some(FormPart { file_name: Some(file_name), content: file }) = form.get("file") else {
        return invalid("file is required");
    };
    let Ok(reader) = hound::WavReader::new(Cursor::new(file.clone())) else { return invalid("the file is not audio") };
    let spec = reader.spec();
    let audio_seconds = f64::from(reader.duration()) / f64::from(spec.sample_rate);
    let language_code = text("language_code").unwrap_or_else(|| "unknown".into());
    let model = text("model").unwrap_or_else(|| "saaras:v3".into());
    if let Err(why) = check_transcription(&model, text("mode").as_deref(), &language_code) {
        return unprocessable(&why);
    }
    let fields: serde_json::Map<String, Value> =
        form.keys().filter(|k| *k != "file").map(|k| (k.clone(), json!(text(k)))).collect();
    script.stt_requests.lock().expect("not poisoned").push(SttRequest {
        fields: Value::Object(fields),
        model: text("model").unwrap_or_default(),
        language_code: language_code.clone(),
        mode: text("mode"),
        file_name: file_name.clone(),
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        audio_seconds,
    });
    script.wait(fault.as_ref()).await;
    let detected = language_code == "unknown";
    let dropping = fault == Some(Fault::DropConnection);
    let answer = json!({
        "request_id": request_id(),
        "transcript": if dropping { "never delivered".to_owned() } else { script.next_transcript() },
        "timestamps": null,
        "diarized_transcript": null,
        "language_code": if detected { "hi-IN" } else { language_code.as_str() },
        "language_probability": if detected { json!(0.97) } else { Value::Null },
    });
    if dropping {
        return dropped_answer(&answer);
    }
    json_answer(&answer)
}

fn invalid(message: &str) -> Response {
    let body = json!({"error": {"message": message, "code": "invalid_request_error"}}).to_string();
    (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

// ---- speech-to-text over the WebSocket

async fn stt_ws(
    State(script): State<Arc<Script>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(fault) = script.admit("stt-ws", &headers, Fault::is_status) {
        return status_answer(&fault);
    }
    let param = |name: &str| query.get(name).map(String::as_str);
    let model = param("model").unwrap_or("saaras:v3");
    if let Err(why) = check_transcription(model, param("mode"), param("language-code").unwrap_or("missing")) {
        return unprocessable(&why);
    }
    if !matches!(param("sample_rate"), None | Some("16000" | "8000")) {
        return unprocessable("sample_rate: Input should be 16000 or 8000");
    }
    if !matches!(param("input_audio_codec"), None | Some("wav" | "pcm_s16le" | "pcm_l16" | "pcm_raw")) {
        return unprocessable("input_audio_codec: Input should be wav, pcm_s16le, pcm_l16 or pcm_raw");
    }
    let connection = script.stt_connections.fetch_add(1, Ordering::SeqCst) + 1;
    upgrade.on_upgrade(move |socket| stt_session(script, socket, query, connection))
}

async fn stt_session(script: Arc<Script>, mut socket: WebSocket, query: HashMap<String, String>, connection: usize) {
    let rate: f64 = query.get("sample_rate").and_then(|r| r.parse().ok()).unwrap_or(16_000.0);
    let language = query.get("language-code").cloned().unwrap_or_else(|| "unknown".into());
    let mut samples = 0_usize;
    let mut unsegmented = 0_usize;
    let mut fault = None;
    let mut speaking = false;
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else { continue };
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        script.messages.lock().expect("not poisoned").push(("stt-ws", message.clone()));
        if let Some(audio) = message.get("audio") {
            let bytes = STANDARD.decode(audio["data"].as_str().unwrap_or_default()).unwrap_or_default();
            let declared = audio["sample_rate"].as_u64().or_else(|| audio["sample_rate"].as_str()?.parse().ok());
            if audio["encoding"] != "audio/wav" || declared != Some(rate as u64) {
                let _ = socket
                    .send(error_message("unsupported audio encoding or sample rate", "invalid_request_error"))
                    .await;
                continue;
            }
            samples += bytes.len() / 2;
            unsegmented += bytes.len() / 2;
            if !speaking {
                speaking = true;
                fault = script.faults.take(|f| !f.is_status());
                let _ = socket.send(event("START_SPEECH")).await;
                if fault == Some(Fault::ErrorMidStream) {
                    let _ = socket.send(error_message("Internal server error", "internal_server_error")).await;
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: 1011, reason: "internal error".into() })))
                        .await;
                    return;
                }
            }
            let segment = *script.self_segment.lock().expect("not poisoned");
            if segment.is_some_and(|after| unsegmented as f64 / rate >= after.as_secs_f64()) {
                unsegmented = 0;
                let _ = socket.send(event("END_SPEECH")).await;
                let _ = socket.send(transcript(&script.next_transcript(), &language, samples as f64 / rate)).await;
            }
            continue;
        }
        if message["type"] != "flush" {
            continue;
        }
        script.stt_utterances.lock().expect("not poisoned").push(SttUtterance {
            connection,
            query: query.clone(),
            audio_seconds: samples as f64 / rate,
        });
        if fault == Some(Fault::DropConnection) {
            return;
        }
        script.wait(fault.as_ref()).await;
        if speaking {
            let _ = socket.send(event("END_SPEECH")).await;
        }
        if unsegmented > 0 || script.self_segment.lock().expect("not poisoned").is_none() {
            let _ = socket.send(transcript(&script.next_transcript(), &language, samples as f64 / rate)).await;
        }
        (samples, unsegmented, speaking, fault) = (0, 0, false, None);
    }
}

fn event(signal: &str) -> Message {
    let now = chrono::Utc::now();
    let data = json!({"event_type": "vad", "timestamp": now.to_rfc3339(), "signal_type": signal,
        "occured_at": now.timestamp_micros() as f64 / 1e6});
    Message::Text(json!({"type": "events", "data": data}).to_string().into())
}

fn transcript(text: &str, language: &str, seconds: f64) -> Message {
    let data = json!({"request_id": request_id(), "transcript": text, "timestamps": null, "diarized_transcript": null,
        "language_code": language, "language_probability": null,
        "metrics": {"audio_duration": seconds, "processing_latency": 0.05}});
    Message::Text(json!({"type": "data", "data": data}).to_string().into())
}

fn error_message(message: &str, code: &str) -> Message {
    Message::Text(json!({"type": "error", "data": {"error": message, "code": code}}).to_string().into())
}

// ---- text-to-speech over REST

async fn tts_rest(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = match script.admit("tts-rest", &headers, |f| !matches!(f, Fault::ErrorMidStream)) {
        Ok(fault) => fault,
        Err(fault) => return status_answer(&fault),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else { return invalid("the body is not JSON") };
    let text = request["text"].as_str().unwrap_or_default().to_owned();
    if text.is_empty() {
        return unprocessable("text: Field required");
    }
    let model = request["model"].as_str().unwrap_or("bulbul:v3");
    if let Err(why) = check_synthesis(model, &request, false) {
        return unprocessable(&why);
    }
    let limit = if model == "bulbul:v2" { 1_500 } else { 2_500 };
    if text.chars().count() > limit {
        return invalid(&format!("text must be at most {limit} characters"));
    }
    let rate = sample_rate(&request["speech_sample_rate"]);
    let samples = tone(*script.tts_audio.lock().expect("not poisoned"), rate);
    script.tts_requests.lock().expect("not poisoned").push(TtsRequest {
        transport: "rest",
        query: HashMap::new(),
        body: request.clone(),
        text,
        connection: None,
        sample_rate: rate,
        produced_seconds: samples.len() as f64 / f64::from(rate),
    });
    script.wait(fault.as_ref()).await;
    let answer = json!({"request_id": request_id(), "audios": [STANDARD.encode(wav(&samples, rate))]});
    if fault == Some(Fault::DropConnection) {
        return dropped_answer(&answer);
    }
    json_answer(&answer)
}

/// Sarvam's refusal of a request its validation rejects (`ErrorMessage` of the SDK).
fn unprocessable(message: &str) -> Response {
    let body = json!({"error": {"message": message, "code": "unprocessable_entity_error", "request_id": request_id()}})
        .to_string();
    (StatusCode::UNPROCESSABLE_ENTITY, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The rate asked for (checked to be a supported integer); else the API's default, 22050.
fn sample_rate(value: &Value) -> u32 {
    value.as_u64().and_then(|r| u32::try_from(r).ok()).unwrap_or(22_050)
}

fn wav(samples: &[i16], rate: u32) -> Vec<u8> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut out = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut out, spec).expect("an in-memory WAV");
    for sample in samples {
        writer.write_sample(*sample).expect("an in-memory WAV");
    }
    writer.finalize().expect("an in-memory WAV");
    out.into_inner()
}

// ---- text-to-speech over the WebSocket

/// Audio messages a synthesis is streamed in.
const TTS_PIECES: usize = 4;

async fn tts_ws(
    State(script): State<Arc<Script>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(fault) = script.admit("tts-ws", &headers, Fault::is_status) {
        return status_answer(&fault);
    }
    if query.get("model").is_some_and(|model| !TTS_MODELS.contains(&model.as_str())) {
        return unprocessable(&format!("model: Input should be {}", TTS_MODELS.join(", ")));
    }
    let connection = script.tts_connections.fetch_add(1, Ordering::SeqCst) + 1;
    upgrade.on_upgrade(move |socket| tts_session(script, socket, query, connection))
}

async fn tts_session(script: Arc<Script>, mut socket: WebSocket, query: HashMap<String, String>, connection: usize) {
    let model = query.get("model").cloned().unwrap_or_else(|| "bulbul:v2".into());
    let completion = query.get("send_completion_event").is_none_or(|v| v == "true");
    let mut config: Option<Value> = None;
    let mut text = String::new();
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(raw) = message else { continue };
        let Ok(message) = serde_json::from_str::<Value>(raw.as_str()) else { continue };
        script.messages.lock().expect("not poisoned").push(("tts-ws", message.clone()));
        match message["type"].as_str().unwrap_or_default() {
            "config" => {
                let data = &message["data"];
                if let Err(why) = check_synthesis(&model, data, true) {
                    let _ = socket.send(tts_error(&why, 422)).await;
                    continue;
                }
                config = Some(data.clone());
            }
            "text" => text.push_str(message["data"]["text"].as_str().unwrap_or_default()),
            "flush" => {
                let Some(config) = &config else {
                    let _ = socket.send(tts_error("send a config message first", 400)).await;
                    continue;
                };
                let codec = config["output_audio_codec"].as_str().unwrap_or("mp3");
                if codec != "linear16" && codec != "wav" {
                    let _ = socket.send(tts_error("the mock streams linear16 or wav only", 400)).await;
                    continue;
                }
                let rate = sample_rate(&config["speech_sample_rate"]);
                let samples = if text.is_empty() {
                    Vec::new()
                } else {
                    tone(*script.tts_audio.lock().expect("not poisoned"), rate)
                };
                script.tts_requests.lock().expect("not poisoned").push(TtsRequest {
                    transport: "ws",
                    query: query.clone(),
                    body: config.clone(),
                    text: std::mem::take(&mut text),
                    connection: Some(connection),
                    sample_rate: rate,
                    produced_seconds: samples.len() as f64 / f64::from(rate),
                });
                let fault = script.faults.take(|f| !f.is_status());
                script.wait(fault.as_ref()).await;
                let piece = samples.len().div_ceil(TTS_PIECES).max(1);
                for (i, chunk) in samples.chunks(piece).enumerate() {
                    if i == 1 && fault == Some(Fault::ErrorMidStream) {
                        let _ = socket.send(tts_error("Internal Server Error", 500)).await;
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame { code: 1011, reason: "internal error".into() })))
                            .await;
                        return;
                    }
                    if i == 1 && fault == Some(Fault::DropConnection) {
                        return;
                    }
                    let bytes = if codec == "wav" {
                        wav(chunk, rate)
                    } else {
                        chunk.iter().flat_map(|s| s.to_le_bytes()).collect()
                    };
                    let data = json!({"content_type": format!("audio/{codec}"), "audio": STANDARD.encode(bytes), "request_id": request_id()});
                    let _ = socket.send(Message::Text(json!({"type": "audio", "data": data}).to_string().into())).await;
                }
                if completion {
                    let data = json!({"event_type": "final", "message": "Audio generation complete", "timestamp": chrono::Utc::now().to_rfc3339()});
                    let _ = socket.send(Message::Text(json!({"type": "event", "data": data}).to_string().into())).await;
                }
            }
            _ => {}
        }
    }
}

fn tts_error(message: &str, code: u16) -> Message {
    let data = json!({"message": message, "code": code, "details": {}, "request_id": request_id()});
    Message::Text(json!({"type": "error", "data": data}).to_string().into())
}
