//! OpenAI's `/models`, `/audio/transcriptions` and `/audio/speech`, refusing what the official
//! SDK's types (`openai` on PyPI: `AudioModel`, `SpeechModel`, `SpeechCreateParams`,
//! `TranscriptionCreateParams`) say the API refuses, with OpenAI's error shape.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::{Fault, dropped, multipart, timed_body, tone};
use super::{Script, error_answer, error_body};

/// What the mocks list at `GET /models` unless told otherwise.
pub const MODELS_OPENAI: &[&str] = &["gpt-4.1-mini", "gpt-4.1", "gpt-4o-mini", "gpt-5-mini", "whisper-1"];
pub const MODELS_GROQ: &[&str] = &["openai/gpt-oss-120b", "openai/gpt-oss-20b", "llama-3.1-8b-instant"];

/// `AudioModel`.
const TRANSCRIPTION_MODELS: &[&str] = &[
    "whisper-1",
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize",
];
/// `SpeechModel`.
const SPEECH_MODELS: &[&str] = &["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"];
/// The built-in voices of `SpeechCreateParams.voice`.
const VOICES: &[&str] =
    &["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar", "fable", "onyx", "nova"];
const PCM_RATE: u32 = 24_000;

/// One audio request as the mock received it.
#[derive(Debug, Clone)]
pub struct AudioRecord {
    pub endpoint: &'static str,
    pub at: Instant,
    pub fault: Option<Fault>,
    /// The JSON body (speech) or the form's text fields (transcriptions).
    pub fields: Value,
    /// Seconds of the uploaded file, for transcriptions.
    pub audio_seconds: f64,
}

fn invalid(message: &str, param: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}});
    (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The fault for this request, or the refusal of a missing or wrong key (recorded as a
/// request to `endpoint` without fields).
fn admit(script: &Script, headers: &HeaderMap, endpoint: &'static str) -> Result<Option<Fault>, Box<Response>> {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let fault =
        if bearer == Some(script.key.as_str()) { script.faults.take(|_| true) } else { Some(Fault::AuthFailure) };
    match fault {
        Some(fault) if fault.is_status() => {
            let record = AudioRecord {
                endpoint,
                at: Instant::now(),
                fault: Some(fault.clone()),
                fields: Value::Null,
                audio_seconds: 0.0,
            };
            script.audio_records.lock().expect("not poisoned").push(record);
            Err(Box::new(error_answer(script.flavour, &fault, bearer.unwrap_or_default())))
        }
        other => Ok(other),
    }
}

pub(super) async fn models(State(script): State<Arc<Script>>, headers: HeaderMap) -> Response {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(script.key.as_str()) {
        return error_answer(script.flavour, &Fault::AuthFailure, bearer.unwrap_or_default());
    }
    let created = chrono::Utc::now().timestamp();
    let data: Vec<Value> = script
        .models
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "mock"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

pub(super) async fn transcriptions(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = match admit(&script, &headers, "transcriptions") {
        Ok(fault) => fault,
        Err(refused) => return *refused,
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(form) = multipart(content_type, &body) else {
        return invalid("the body is not multipart/form-data", "file");
    };
    let text = |name: &str| form.get(name).map(|part| String::from_utf8_lossy(&part.content).into_owned());
    let Some(file) = form.get("file").filter(|f| f.file_name.is_some()) else {
        return invalid("you must provide a file", "file");
    };
    let Ok(reader) = hound::WavReader::new(Cursor::new(file.content.clone())) else {
        return invalid(
            "Invalid file format. Supported formats: flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm",
            "file",
        );
    };
    let audio_seconds = f64::from(reader.duration()) / f64::from(reader.spec().sample_rate);
    let model = text("model").unwrap_or_default();
    let fields: serde_json::Map<String, Value> =
        form.keys().filter(|k| *k != "file").map(|k| (k.clone(), json!(text(k)))).collect();
    script.audio_records.lock().expect("not poisoned").push(AudioRecord {
        endpoint: "transcriptions",
        at: Instant::now(),
        fault: fault.clone(),
        fields: Value::Object(fields),
        audio_seconds,
    });
    if !TRANSCRIPTION_MODELS.contains(&model.as_str()) {
        return invalid(&format!("Invalid model {model}; use one of {}", TRANSCRIPTION_MODELS.join(", ")), "model");
    }
    if let Some(language) = text("language").filter(|l| l.len() != 2 || !l.chars().all(|c| c.is_ascii_lowercase())) {
        return invalid(
            &format!("Invalid language '{language}'. Language parameter must be specified in ISO-639-1 format."),
            "language",
        );
    }
    let format = text("response_format").unwrap_or_else(|| "json".into());
    let gpt = model.starts_with("gpt-");
    if gpt && !matches!(format.as_str(), "json" | "text") {
        return invalid(
            &format!("response_format '{format}' is not compatible with model '{model}'"),
            "response_format",
        );
    }
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    let transcript = script.transcripts.lock().expect("not poisoned").pop_front().unwrap_or_else(|| {
        let done = script
            .audio_records
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|r| r.endpoint == "transcriptions")
            .count();
        format!("transcript {done}")
    });
    let usage = if gpt {
        json!({"type": "tokens", "input_tokens": (audio_seconds * 10.0) as u64, "output_tokens": 12, "total_tokens": (audio_seconds * 10.0) as u64 + 12})
    } else {
        json!({"type": "duration", "seconds": audio_seconds.ceil()})
    };
    Json(json!({"text": transcript, "usage": usage})).into_response()
}

pub(super) async fn speech(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = match admit(&script, &headers, "speech") {
        Ok(fault) => fault,
        Err(refused) => return *refused,
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return invalid("We could not parse the JSON body", "input");
    };
    script.audio_records.lock().expect("not poisoned").push(AudioRecord {
        endpoint: "speech",
        at: Instant::now(),
        fault: fault.clone(),
        fields: request.clone(),
        audio_seconds: 0.0,
    });
    let model = request["model"].as_str().unwrap_or_default();
    if !SPEECH_MODELS.contains(&model) {
        return invalid(&format!("Invalid model {model}; use one of {}", SPEECH_MODELS.join(", ")), "model");
    }
    let input = request["input"].as_str().unwrap_or_default();
    if input.is_empty() || input.chars().count() > 4_096 {
        return invalid("input must be 1 to 4096 characters", "input");
    }
    let voice_ok = match &request["voice"] {
        Value::String(voice) => VOICES.contains(&voice.as_str()),
        Value::Object(custom) => custom.get("id").is_some_and(Value::is_string),
        _ => false,
    };
    if !voice_ok {
        return invalid(&format!("Invalid voice {}; use one of {}", request["voice"], VOICES.join(", ")), "voice");
    }
    let format = request["response_format"].as_str().unwrap_or("mp3");
    if format != "pcm" {
        return error_body(StatusCode::BAD_REQUEST, "the mock answers pcm only", "invalid_request_error", None);
    }
    if let Some(speed) = request.get("speed").and_then(Value::as_f64).filter(|s| !(0.25..=4.0).contains(s)) {
        return invalid(&format!("speed {speed} is outside 0.25 to 4.0"), "speed");
    }
    if request.get("instructions").is_some() && model.starts_with("tts-1") {
        return invalid("instructions are not supported by tts-1 and tts-1-hd", "instructions");
    }
    let samples = tone(*script.speech_audio.lock().expect("not poisoned"), PCM_RATE);
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let latency = match fault {
        Some(Fault::Slow(delay)) => delay,
        _ => Duration::ZERO,
    };
    // Chunked as OpenAI streams it; an odd cut splits a sample, as real chunks may.
    let mut parts: Vec<_> =
        bytes.chunks(4_801).map(|chunk| (Duration::ZERO, Ok(Bytes::copy_from_slice(chunk)))).collect();
    parts[0].0 = latency;
    if fault == Some(Fault::DropConnection) || fault == Some(Fault::ErrorMidStream) {
        parts.truncate(1);
        parts.push((Duration::from_millis(20), Err(dropped())));
    }
    let mut response = (StatusCode::OK, timed_body(parts)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, "audio/pcm".parse().expect("a header value"));
    response
}
