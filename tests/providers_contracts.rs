//! The requests our providers send, checked against the providers' official Python SDKs
//! (`sarvamai`, `deepgram-sdk`, `elevenlabs`, `openai`, pinned in tests/contracts): each
//! provider talks to its mock, the mock keeps what arrived, and tests/contracts/check.py
//! validates it with the SDK's own types.

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::mocks::deepgram::MockDeepgram;
use support::mocks::elevenlabs::MockElevenLabs;
use support::mocks::openai::{Flavour, MockOpenAi};
use support::mocks::sarvam::MockSarvam;
use tokio::io::AsyncWriteExt;
use voice_agent::config::Secret;
use voice_agent::providers::llm::{ChatMessage, ChatModel, ChatRequest, ToolSpec};
use voice_agent::providers::registry::{self, Access, Options};
use voice_agent::providers::stt::SpeechToText;
use voice_agent::providers::tts::{SpeechRequest, TextToSpeech};
use voice_agent::providers::{ProviderError, RetryPolicy};

const KEY: &str = "contract-test-key";

fn access(base_url: url::Url) -> Access {
    Access {
        key: Secret::new(KEY),
        base_url,
        http: reqwest::Client::new(),
        timeout: Duration::from_secs(2),
        retry: RetryPolicy::default(),
    }
}

fn options(value: Value) -> Options {
    value.as_object().cloned().expect("an object")
}

fn stt(provider: &str, base_url: url::Url, written: Value) -> Arc<dyn SpeechToText> {
    let stt = registry::stt(provider).expect("registered");
    let resolved = stt.resolve(&options(written)).expect("valid options");
    stt.build(&access(base_url), &resolved).expect("built")
}

fn tts(provider: &str, base_url: url::Url, written: Value, voice: &str) -> Arc<dyn TextToSpeech> {
    let tts = registry::tts(provider).expect("registered");
    let (resolved, _) = tts.resolve(&options(written), Some(voice), "hi-IN", "").expect("valid options");
    tts.build(&access(base_url), &resolved).expect("built")
}

async fn transcribe(stt: &dyn SpeechToText, language: &str) -> Result<(), ProviderError> {
    let mut utterance = stt.start(language).await?;
    let tone: Vec<i16> = (0..12_800).map(|i| if i % 32 < 16 { 4_000 } else { -4_000 }).collect();
    for piece in tone.chunks(320) {
        utterance.push(piece).await?;
    }
    utterance.finish().await.map(|_| ())
}

async fn speak(tts: &dyn TextToSpeech, voice: &str) -> Result<(), ProviderError> {
    let request = SpeechRequest {
        text: "नमस्ते, कैसे हैं?".into(), language: "hi-IN".into(), voice: voice.into()
    };
    let mut stream = tts.synthesize(request).await?;
    while let Some(frame) = stream.next().await {
        frame?;
    }
    Ok(())
}

/// Runs the SDK check on `checks`; its exit status and output.
async fn check(checks: Vec<Value>) -> (bool, String) {
    let python = support::repo_path("tests/contracts/.venv/bin/python");
    assert!(python.exists(), "the providers' SDKs are missing: run scripts/setup.sh");
    let mut child = tokio::process::Command::new(python)
        .arg(support::repo_path("tests/contracts/check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let document = json!({"checks": checks}).to_string();
    child.stdin.take().expect("stdin").write_all(document.as_bytes()).await.expect("written");
    let output = child.wait_with_output().await.expect("it ends");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), printed)
}

fn messages_of(all: &[(&'static str, Value)], endpoint: &str) -> Vec<Value> {
    all.iter().filter(|(at, _)| *at == endpoint).map(|(_, message)| message.clone()).collect()
}

#[tokio::test]
async fn every_request_our_providers_send_passes_the_official_sdks_checks() {
    let mut checks = Vec::new();

    // Sarvam: both transports of both kinds, every text-to-speech model.
    let sarvam = MockSarvam::start(KEY).await;
    for streaming in [false, true] {
        let stt = stt("sarvam", sarvam.base_url(), json!({"model": "saaras:v4", "streaming": streaming}));
        transcribe(&*stt, "hi-IN").await.expect("transcribed");
    }
    for (model, voice) in [("bulbul:v2", "manisha"), ("bulbul:v3", "shubh"), ("bulbul:v4-flash", "ritu_hi_banking")] {
        for streaming in [false, true] {
            let written = json!({"model": model, "streaming": streaming, "pace": 1.1});
            speak(&*tts("sarvam", sarvam.base_url(), written, voice), voice).await.expect("spoken");
        }
    }
    for request in sarvam.stt_requests() {
        checks.push(json!({"check": "sarvam_stt_rest", "fields": request.fields}));
    }
    let messages = sarvam.messages();
    let utterance = &sarvam.stt_utterances()[0];
    checks.push(
        json!({"check": "sarvam_stt_ws", "query": utterance.query, "messages": messages_of(&messages, "stt-ws")}),
    );
    for request in sarvam.tts_requests().into_iter().filter(|r| r.transport == "rest") {
        checks.push(json!({"check": "sarvam_tts_rest", "body": request.body}));
    }
    let tts_ws = messages_of(&messages, "tts-ws");
    assert_eq!(tts_ws.iter().filter(|m| m["type"] == "config").count(), 3, "{tts_ws:?}");
    for request in sarvam.tts_requests().into_iter().filter(|r| r.transport == "ws") {
        checks.push(json!({"check": "sarvam_tts_ws", "query": request.query, "messages": []}));
    }
    checks.push(json!({"check": "sarvam_tts_ws", "query": {}, "messages": tts_ws}));
    checks.push(sarvam_voices());

    // Deepgram: a call of two utterances, its stream closed with the call.
    let deepgram = MockDeepgram::start(KEY).await;
    let listener = stt("deepgram", deepgram.base_url(), json!({"keyterms": ["Sharma"]}));
    transcribe(&*listener, "hi-IN").await.expect("transcribed");
    transcribe(&*listener, "hi-IN").await.expect("transcribed");
    drop(listener);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while deepgram.controls()[0].close_streams == 0 {
        assert!(std::time::Instant::now() < deadline, "the stream was closed with the call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let query = &deepgram.utterances()[0].query;
    checks.push(json!({"check": "deepgram_listen", "query": query, "messages": deepgram.controls()[0].messages}));

    // ElevenLabs: a sentence on its own stream.
    let elevenlabs = MockElevenLabs::start(KEY).await;
    let sarah = "EXAVITQu4vr4xnSDxMaL";
    speak(&*tts("elevenlabs", elevenlabs.base_url(), json!({}), sarah), sarah).await.expect("spoken");
    let stream = &elevenlabs.streams()[0];
    checks.push(json!({"check": "elevenlabs_stream_input", "query": stream.query, "messages": elevenlabs.messages()}));

    // OpenAI: transcription, speech, and chat (with Groq's too, reasoning effort and tools).
    let openai = MockOpenAi::start(Flavour::OpenAi, KEY).await;
    transcribe(&*stt("openai", openai.base_url(), json!({"prompt": "Sharma"})), "hi-IN").await.expect("transcribed");
    let written = json!({"instructions": "Warm.", "speed": 1.1});
    speak(&*tts("openai", openai.base_url(), written, "coral"), "coral").await.expect("spoken");
    for record in openai.audio_records() {
        let check = if record.endpoint == "speech" { "openai_speech" } else { "openai_transcription" };
        let field = if record.endpoint == "speech" { "body" } else { "fields" };
        checks.push(json!({"check": check, field: record.fields}));
    }
    let groq = MockOpenAi::start(Flavour::Groq, KEY).await;
    for (provider, mock) in [("openai", &openai), ("groq", &groq)] {
        let chat = registry::chat(provider).expect("registered");
        let resolved = chat.resolve(&Options::new(), chat.default_model()).expect("valid");
        let model: Arc<dyn ChatModel> = chat.build(&access(mock.base_url()), &resolved).expect("built");
        let request = ChatRequest {
            model: chat.default_model().into(),
            messages: vec![ChatMessage::system("Be brief."), ChatMessage::user("नमस्ते")],
            temperature: 0.5,
            max_tokens: 100,
            tools: vec![ToolSpec {
                name: "end_call".into(),
                description: "Ends the call".into(),
                parameters: json!({"type": "object"}),
            }],
        };
        let mut answer = model.stream(request).await.expect("answered");
        while let Some(delta) = answer.next().await {
            delta.expect("a delta");
        }
        checks.push(json!({"check": "openai_chat", "body": mock.records()[0].body}));
    }
    assert_eq!(groq.records()[0].body["reasoning_effort"], "low", "gpt-oss thinks briefly");

    let count = checks.len();
    let (passed, printed) = check(checks).await;
    assert!(passed, "our requests do not match the SDKs:\n{printed}");
    assert!(printed.contains(&format!("ok: {count} requests")), "{printed}");
}

/// Every voice our Sarvam catalog offers per model (in any language), and the mock's list.
fn sarvam_voices() -> Value {
    let sarvam = registry::tts("sarvam").expect("registered");
    let mut models = serde_json::Map::new();
    for model in ["bulbul:v2", "bulbul:v3", "bulbul:v4-flash"] {
        let written = options(json!({"model": model}));
        let mut ids: Vec<String> = voice_agent::providers::catalog::LANGUAGES
            .iter()
            .flat_map(|language| sarvam.voices(&written, language.code))
            .map(|voice| voice.id)
            .collect();
        ids.sort();
        ids.dedup();
        models.insert(model.into(), json!(ids));
    }
    let mock: Vec<&str> = include_str!("support/mocks/sarvam_speakers.txt").lines().collect();
    json!({"check": "sarvam_voices", "models": models, "mock": mock})
}

#[tokio::test]
async fn the_check_refuses_what_the_sdks_refuse() {
    let checks = vec![
        json!({"check": "sarvam_tts_rest", "body": {"text": "hi", "target_language_code": "hi-IN", "speaker": "shubh", "model": "bulbul:v3"}}),
        json!({"check": "sarvam_tts_ws", "query": {"model": "bulbul:v3"}, "messages": [
            {"type": "config", "data": {"language_code": "hi-IN", "speaker": "shubh", "speech_sample_rate": "24000"}}]}),
        json!({"check": "sarvam_stt_rest", "fields": {"model": "saarika:v2.5", "language_code": "hi-IN"}}),
        json!({"check": "deepgram_listen", "query": {"model": "nova-3", "interim": "true"}, "messages": [{"type": "keepalive"}]}),
        json!({"check": "elevenlabs_stream_input", "query": {"output_format": "pcm_24001"}, "messages": [{"text": "Hello"}]}),
        json!({"check": "openai_speech", "body": {"model": "gpt-4o-mini-tts", "input": "hi", "voice": "shubh"}}),
        json!({"check": "sarvam_voices", "models": {"bulbul:v3": ["shubh", "arya"]}, "mock": []}),
    ];
    let (passed, printed) = check(checks).await;
    assert!(!passed, "{printed}");
    for expected in [
        "`target_language_code` is not a field the SDK knows",
        "`language_code` is required",
        "speech_sample_rate is not an integer",
        "model 'saarika:v2.5' is not one of the SDK's",
        "`interim` is not a field the SDK knows",
        "message {'type': 'keepalive'} is not one the SDK sends",
        "output_format 'pcm_24001'",
        "voice 'shubh' is not one of the SDK's",
        "bulbul:v3: missing ['aayan'",
        "not the SDK's ['arya']",
    ] {
        assert!(printed.contains(expected), "missing `{expected}` in:\n{printed}");
    }
}
