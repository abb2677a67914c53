//! Sarvam speech-to-text and text-to-speech, over REST and WebSocket, against a mock Sarvam
//! that speaks the documented wire formats and plays faults on demand.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::mocks::Fault;
use support::mocks::sarvam::MockSarvam;
use voice_agent::audio::AudioFrame;
use voice_agent::config::Secret;
use voice_agent::providers::registry::{self, Access, Options};
use voice_agent::providers::stt::{SpeechToText, Transcript};
use voice_agent::providers::tts::{SpeechRequest, TextToSpeech};
use voice_agent::providers::{ProviderError, RetryPolicy};

const KEY: &str = "sarvam-test-key-0123456789";
const TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    Rest,
    Streaming,
}

const TRANSPORTS: [Transport; 2] = [Transport::Rest, Transport::Streaming];

fn retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(2),
    }
}

fn access(mock: &MockSarvam, key: &str) -> Access {
    Access {
        key: Secret::new(key),
        base_url: mock.base_url(),
        http: reqwest::Client::new(),
        timeout: TIMEOUT,
        retry: retry(),
    }
}

fn options(value: Value) -> Options {
    value.as_object().cloned().expect("an object")
}

/// Sarvam's speech-to-text as the registry builds it for a profile's `[stt]` options.
fn stt_with(mock: &MockSarvam, written: Value, key: &str) -> Arc<dyn SpeechToText> {
    let provider = registry::stt("sarvam").expect("registered");
    provider.build(&access(mock, key), &options(written)).expect("built")
}

fn stt(mock: &MockSarvam, transport: Transport, key: &str) -> Arc<dyn SpeechToText> {
    stt_with(mock, json!({"model": "saaras:v3", "streaming": transport == Transport::Streaming}), key)
}

fn tts_with(mock: &MockSarvam, written: Value, key: &str) -> Arc<dyn TextToSpeech> {
    let provider = registry::tts("sarvam").expect("registered");
    provider.build(&access(mock, key), &options(written)).expect("built")
}

/// bulbul:v2 with all of its voice settings.
fn tts(mock: &MockSarvam, transport: Transport, key: &str) -> Arc<dyn TextToSpeech> {
    let streaming = transport == Transport::Streaming;
    let written = json!({"model": "bulbul:v2", "pace": 1.1, "pitch": 0.1, "loudness": 1.2, "streaming": streaming});
    tts_with(mock, written, key)
}

/// `seconds` of a 300 Hz tone at 16 kHz.
fn speech(seconds: f64) -> Vec<i16> {
    let count = (seconds * 16_000.0).round() as usize;
    (0..count).map(|i| ((i as f64 * 300.0 * std::f64::consts::TAU / 16_000.0).sin() * 6_000.0) as i16).collect()
}

/// One utterance, pushed in 20 ms pieces as the pipeline does.
async fn transcribe(stt: &dyn SpeechToText, audio: &[i16]) -> Result<Transcript, ProviderError> {
    let mut utterance = stt.start("hi-IN").await?;
    for piece in audio.chunks(320) {
        utterance.push(piece).await?;
    }
    utterance.finish().await
}

fn sentence(text: &str) -> SpeechRequest {
    SpeechRequest { text: text.into(), language: "hi-IN".into(), voice: "anushka".into() }
}

/// All audio of a synthesis, or its first error.
async fn synthesize(tts: &dyn TextToSpeech, text: &str) -> Result<Vec<AudioFrame>, ProviderError> {
    let mut stream = tts.synthesize(sentence(text)).await?;
    let mut frames = Vec::new();
    while let Some(frame) = stream.next().await {
        frames.push(frame?);
    }
    Ok(frames)
}

fn seconds(frames: &[AudioFrame]) -> f64 {
    frames.iter().map(|f| f.duration().as_secs_f64()).sum()
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!((actual - expected).abs() <= expected * 0.01, "{what}: {actual} s, expected {expected} s ± 1%");
}

// ---- speech-to-text

#[tokio::test]
async fn stt_rest_uploads_the_utterance_as_a_wav_file() {
    let mock = MockSarvam::start(KEY).await;
    mock.stt_answers(["नमस्ते"]);
    let transcript = transcribe(&*stt(&mock, Transport::Rest, KEY), &speech(1.5)).await.expect("a transcript");
    assert_eq!(transcript.text, "नमस्ते");
    assert_eq!(transcript.language.as_deref(), Some("hi-IN"));
    let requests = mock.stt_requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_close(request.audio_seconds, 1.5, "uploaded audio");
    assert_eq!((request.sample_rate, request.channels), (16_000, 1));
    assert_eq!(request.file_name, "audio.wav");
    assert_eq!((request.model.as_str(), request.language_code.as_str()), ("saaras:v3", "hi-IN"));
    assert_eq!(request.mode.as_deref(), Some("transcribe"));
}

#[tokio::test]
async fn stt_streaming_sends_audio_as_it_comes_and_flushes() {
    let mock = MockSarvam::start(KEY).await;
    mock.stt_answers(["नमस्ते", "धन्यवाद"]);
    let stt = stt(&mock, Transport::Streaming, KEY);
    let first = transcribe(&*stt, &speech(1.5)).await.expect("a transcript");
    assert_eq!(first.text, "नमस्ते");
    assert_eq!(first.language.as_deref(), Some("hi-IN"));
    let second = transcribe(&*stt, &speech(0.73)).await.expect("a transcript");
    assert_eq!(second.text, "धन्यवाद");
    let utterances = mock.stt_utterances();
    assert_eq!(utterances.len(), 2);
    assert_close(utterances[0].audio_seconds, 1.5, "first utterance");
    assert_close(utterances[1].audio_seconds, 0.73, "second utterance");
    assert_eq!(mock.stt_connections(), 1, "the connection is reused across utterances");
    let query = &utterances[0].query;
    for (name, value) in [
        ("language-code", "hi-IN"),
        ("model", "saaras:v3"),
        ("mode", "transcribe"),
        ("sample_rate", "16000"),
        ("vad_signals", "true"),
        ("flush_signal", "true"),
        ("input_audio_codec", "pcm_s16le"),
    ] {
        assert_eq!(query.get(name).map(String::as_str), Some(value), "query parameter {name}");
    }
}

#[tokio::test]
async fn stt_streaming_hides_the_connection_behind_speech() {
    let mock = MockSarvam::start(KEY).await;
    mock.latency(Duration::from_millis(50));
    let stt = stt(&mock, Transport::Streaming, KEY);
    let started = Instant::now();
    let mut utterance = stt.start("hi-IN").await.expect("started");
    assert!(started.elapsed() < Duration::from_millis(100), "start does not wait for the handshake");
    utterance.push(&speech(0.2)).await.expect("pushed");
    let transcript = utterance.finish().await.expect("a transcript");
    assert!(transcript.latency >= Duration::from_millis(50), "latency counts from finish: {:?}", transcript.latency);
    assert!(transcript.latency < Duration::from_millis(500), "{:?}", transcript.latency);
}

#[tokio::test]
async fn stt_rest_sends_only_the_last_30_seconds() {
    let mock = MockSarvam::start(KEY).await;
    let stt = stt(&mock, Transport::Rest, KEY);
    let mut utterance = stt.start("hi-IN").await.expect("started");
    let second = speech(1.0);
    for _ in 0..70 {
        utterance.push(&second).await.expect("pushed");
    }
    utterance.finish().await.expect("a transcript");
    assert_close(mock.stt_requests()[0].audio_seconds, 30.0, "uploaded audio");
}

#[tokio::test]
async fn stt_empty_utterances_cost_nothing() {
    let mock = MockSarvam::start(KEY).await;
    for transport in TRANSPORTS {
        let stt = stt(&mock, transport, KEY);
        let utterance = stt.start("hi-IN").await.expect("started");
        let transcript = utterance.finish().await.expect("an empty transcript");
        assert_eq!(transcript.text, "", "{transport:?}");
    }
    assert!(mock.stt_requests().is_empty() && mock.stt_utterances().is_empty());
}

#[tokio::test]
async fn stt_retries_transient_failures() {
    let faults = [
        Fault::RateLimited { retry_after: None },
        Fault::ServerError,
        Fault::DropConnection,
        Fault::ErrorMidStream,
        Fault::Slow(Duration::from_millis(800)),
    ];
    for transport in TRANSPORTS {
        for fault in faults.clone() {
            if transport == Transport::Rest && fault == Fault::ErrorMidStream {
                continue;
            }
            if transport == Transport::Streaming && matches!(fault, Fault::Slow(_)) {
                continue;
            }
            let mock = MockSarvam::start(KEY).await;
            mock.stt_answers(["फिर से"]);
            mock.fault_next(fault.clone(), 1);
            let transcript = transcribe(&*stt(&mock, transport, KEY), &speech(1.0)).await;
            let transcript = transcript.unwrap_or_else(|e| panic!("{transport:?} after {fault:?}: {e}"));
            assert_eq!(transcript.text, "फिर से", "{transport:?} after {fault:?}");
            assert_eq!(mock.attempts().len(), 2, "{transport:?} after {fault:?}: {:?}", mock.attempts());
        }
    }
}

#[tokio::test]
async fn stt_streaming_waits_for_a_slow_transcript_within_the_timeout() {
    let mock = MockSarvam::start(KEY).await;
    mock.fault_next(Fault::Slow(Duration::from_millis(200)), 1);
    let stt = stt(&mock, Transport::Streaming, KEY);
    let transcript = transcribe(&*stt, &speech(0.5)).await.expect("a transcript");
    assert!(transcript.latency >= Duration::from_millis(200), "{:?}", transcript.latency);
    mock.fault_next(Fault::Slow(Duration::from_millis(900)), 1);
    let error = transcribe(&*stt, &speech(0.5)).await.expect_err("too slow");
    assert!(matches!(error, ProviderError::Timeout { after, .. } if after == TIMEOUT), "{error:?}");
}

#[tokio::test]
async fn stt_honours_retry_after() {
    let after = Duration::from_millis(200);
    for transport in TRANSPORTS {
        let mock = MockSarvam::start(KEY).await;
        mock.fault_next(Fault::RateLimited { retry_after: Some(after) }, 1);
        transcribe(&*stt(&mock, transport, KEY), &speech(0.5)).await.expect("a transcript after the wait");
        let attempts = mock.attempts();
        assert_eq!(attempts.len(), 2);
        let waited = attempts[1].at - attempts[0].at;
        assert!(waited >= after, "{transport:?} retried after {waited:?}");
    }
}

#[tokio::test]
async fn stt_final_failures_fail_fast_without_the_key() {
    let cases = [
        (Some(Fault::QuotaExhausted), KEY, "quota"),
        (Some(Fault::AuthFailure), KEY, "auth"),
        (None, "wrong-key-0123456789", "auth"),
    ];
    for transport in TRANSPORTS {
        for (fault, key, expected) in cases.clone() {
            let mock = MockSarvam::start(KEY).await;
            if let Some(fault) = fault.clone() {
                mock.fault_next(fault, 3);
            }
            let error = transcribe(&*stt(&mock, transport, key), &speech(0.5)).await.expect_err("a final failure");
            let variant_ok = match expected {
                "quota" => matches!(error, ProviderError::QuotaExhausted { .. }),
                _ => matches!(error, ProviderError::Auth { .. }),
            };
            assert!(variant_ok, "{transport:?} {fault:?}: {error:?}");
            assert!(!error.retryable());
            assert_eq!(mock.attempts().len(), 1, "{transport:?} {fault:?} is not retried");
            let shown = error.to_string();
            assert!(!shown.contains(key) && !shown.contains(KEY), "{shown}");
        }
    }
}

#[tokio::test]
async fn stt_streaming_joins_segments_sarvam_closed_on_its_own() {
    let mock = MockSarvam::start(KEY).await;
    mock.self_segment_after(Duration::from_millis(200));
    mock.stt_answers(["एक", "दो", "तीन", "चार", "पाँच"]);
    let stt = stt(&mock, Transport::Streaming, KEY);
    let transcript = transcribe_in_real_time(&*stt, &speech(0.5)).await.expect("a transcript");
    assert_eq!(transcript.text, "एक दो तीन", "two segments and the flushed rest");
    let transcript = transcribe_in_real_time(&*stt, &speech(0.4)).await.expect("a transcript");
    assert_eq!(transcript.text, "चार पाँच", "the flush finds nothing left");
    assert!(transcript.latency >= Duration::from_millis(300), "waits a moment for a last segment");
    assert_eq!(mock.stt_connections(), 2, "a socket that segmented on its own is not reused");
}

/// One utterance pushed at the pace a caller speaks it, so Sarvam's answers interleave.
async fn transcribe_in_real_time(stt: &dyn SpeechToText, audio: &[i16]) -> Result<Transcript, ProviderError> {
    let mut utterance = stt.start("hi-IN").await?;
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    for piece in audio.chunks(320) {
        clock.tick().await;
        utterance.push(piece).await?;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    utterance.finish().await
}

// ---- text-to-speech

#[tokio::test]
async fn tts_audio_is_what_sarvam_produced() {
    for transport in TRANSPORTS {
        let mock = MockSarvam::start(KEY).await;
        mock.tts_audio(Duration::from_millis(730));
        let frames = synthesize(&*tts(&mock, transport, KEY), "नमस्ते, मैं आपकी कैसे मदद कर सकती हूँ?").await.expect("audio");
        let requests = mock.tts_requests();
        assert_eq!(requests.len(), 1);
        assert!(frames.iter().all(|f| f.sample_rate == 24_000), "{transport:?}");
        assert!((seconds(&frames) - requests[0].produced_seconds).abs() < 1.0 / 24_000.0, "{transport:?}");
        assert_close(seconds(&frames), 0.73, "audio");
        let body = &requests[0].body;
        assert_eq!(requests[0].text, "नमस्ते, मैं आपकी कैसे मदद कर सकती हूँ?");
        assert_eq!(body["language_code"], "hi-IN");
        assert!(body.get("target_language_code").is_none(), "the old name");
        assert_eq!(body["speaker"], "anushka");
        assert_eq!(body["pace"].as_f64().map(|p| (p * 100.0).round()), Some(110.0));
        assert!(body["pitch"].is_number() && body["loudness"].is_number(), "bulbul:v2 fields");
        match transport {
            Transport::Rest => {
                assert_eq!(body["model"], "bulbul:v2");
                assert_eq!(body["speech_sample_rate"], 24_000);
            }
            Transport::Streaming => {
                assert_eq!(body["output_audio_codec"], "linear16");
                assert_eq!(body["speech_sample_rate"], 24_000, "an integer");
                assert!(frames.len() > 1, "streamed in pieces");
            }
        }
    }
}

#[tokio::test]
async fn tts_streaming_reuses_its_socket_even_after_a_barge_in() {
    let mock = MockSarvam::start(KEY).await;
    let tts = tts(&mock, Transport::Streaming, KEY);
    for text in ["पहला वाक्य।", "दूसरा वाक्य।"] {
        synthesize(&*tts, text).await.expect("audio");
    }
    let mut stream = tts.synthesize(sentence("यह वाक्य बीच में रुक जाएगा।")).await.expect("audio starts");
    stream.next().await.expect("a first piece").expect("audio");
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let frames = synthesize(&*tts, "चौथा वाक्य।").await.expect("audio");
    assert_close(seconds(&frames), 0.5, "the fourth sentence's audio, nothing left from the third");
    assert_eq!(mock.tts_connections(), 1);
    assert_eq!(mock.tts_requests().len(), 4);
}

#[tokio::test]
async fn tts_splits_text_over_the_model_limit() {
    let text = "यह एक लंबा वाक्य है जो बार बार दोहराया जाता है। ".repeat(80);
    for transport in TRANSPORTS {
        let mock = MockSarvam::start(KEY).await;
        mock.tts_audio(Duration::from_millis(100));
        let frames = synthesize(&*tts(&mock, transport, KEY), &text).await.expect("audio");
        let requests = mock.tts_requests();
        let sent = requests.iter().map(|r| r.text.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
        assert!(
            sent.join(" ") == text.split_whitespace().collect::<Vec<_>>().join(" "),
            "{transport:?}: the text arrives whole"
        );
        if transport == Transport::Rest {
            assert_eq!(requests.len(), 3, "{} characters in pieces of at most 1500", text.chars().count());
            assert!(requests.iter().all(|r| r.text.chars().count() <= 1_500));
            assert_close(seconds(&frames), 0.3, "three answers");
        }
    }
}

#[tokio::test]
async fn tts_retries_failures_before_audio() {
    let faults = [
        Fault::RateLimited { retry_after: None },
        Fault::ServerError,
        Fault::Slow(Duration::from_millis(800)),
        Fault::DropConnection,
    ];
    for transport in TRANSPORTS {
        for fault in faults.clone() {
            if transport == Transport::Streaming && fault == Fault::DropConnection {
                continue;
            }
            let mock = MockSarvam::start(KEY).await;
            mock.fault_next(fault.clone(), 1);
            let frames = synthesize(&*tts(&mock, transport, KEY), "फिर से।").await;
            let frames = frames.unwrap_or_else(|e| panic!("{transport:?} after {fault:?}: {e}"));
            assert_close(seconds(&frames), 0.5, "audio");
            assert_eq!(mock.attempts().len().max(mock.tts_connections()), 2, "{transport:?} after {fault:?}");
        }
    }
}

#[tokio::test]
async fn tts_streaming_failures_after_audio_end_the_stream() {
    for fault in [Fault::ErrorMidStream, Fault::DropConnection] {
        let mock = MockSarvam::start(KEY).await;
        mock.fault_next(fault.clone(), 1);
        let tts = tts(&mock, Transport::Streaming, KEY);
        let mut stream = tts.synthesize(sentence("आधा वाक्य।")).await.expect("audio starts");
        let mut audio = 0;
        let error = loop {
            match stream.next().await {
                Some(Ok(frame)) => audio += frame.samples.len(),
                Some(Err(error)) => break error,
                None => panic!("{fault:?}: the stream ended without an error"),
            }
        };
        assert!(audio > 0, "{fault:?}: audio came first");
        match fault {
            Fault::ErrorMidStream => assert!(matches!(error, ProviderError::Server { status: 500, .. }), "{error:?}"),
            _ => assert!(matches!(error, ProviderError::Network { .. }), "{error:?}"),
        }
        assert!(stream.next().await.is_none(), "nothing after the error");
        assert_eq!(mock.tts_requests().len(), 1, "{fault:?}: never retried once audio was handed over");
        synthesize(&*tts, "अगला वाक्य।").await.expect("the next sentence on a new socket");
        assert_eq!(mock.tts_connections(), 2);
    }
}

#[tokio::test]
async fn tts_honours_retry_after() {
    let after = Duration::from_millis(200);
    for transport in TRANSPORTS {
        let mock = MockSarvam::start(KEY).await;
        mock.fault_next(Fault::RateLimited { retry_after: Some(after) }, 1);
        synthesize(&*tts(&mock, transport, KEY), "रुकिए।").await.expect("audio after the wait");
        let attempts = mock.attempts();
        assert_eq!(attempts.len(), 2);
        let waited = attempts[1].at - attempts[0].at;
        assert!(waited >= after, "{transport:?} retried after {waited:?}");
    }
}

#[tokio::test]
async fn tts_final_failures_fail_fast_without_the_key() {
    let cases = [
        (Some(Fault::QuotaExhausted), KEY, "quota"),
        (Some(Fault::AuthFailure), KEY, "auth"),
        (None, "wrong-key-0123456789", "auth"),
    ];
    for transport in TRANSPORTS {
        for (fault, key, expected) in cases.clone() {
            let mock = MockSarvam::start(KEY).await;
            if let Some(fault) = fault.clone() {
                mock.fault_next(fault, 3);
            }
            let error = synthesize(&*tts(&mock, transport, key), "नमस्ते।").await.expect_err("a final failure");
            let variant_ok = match expected {
                "quota" => matches!(error, ProviderError::QuotaExhausted { .. }),
                _ => matches!(error, ProviderError::Auth { .. }),
            };
            assert!(variant_ok, "{transport:?} {fault:?}: {error:?}");
            assert_eq!(mock.attempts().len(), 1, "{transport:?} {fault:?} is not retried");
            let shown = error.to_string();
            assert!(!shown.contains(key) && !shown.contains(KEY), "{shown}");
        }
    }
}

// ---- what Sarvam's current API takes and refuses

#[tokio::test]
async fn every_current_model_and_its_voices_are_taken() {
    let mock = MockSarvam::start(KEY).await;
    for (model, voice) in [("bulbul:v2", "anushka"), ("bulbul:v3", "kavitha"), ("bulbul:v4-flash", "ritu_hi_banking")] {
        for transport in TRANSPORTS {
            let written = json!({"model": model, "streaming": transport == Transport::Streaming});
            let tts = tts_with(&mock, written, KEY);
            let request =
                SpeechRequest { text: "नमस्ते।".into(), language: "hi-IN".into(), voice: voice.into() };
            let mut stream = tts.synthesize(request).await.unwrap_or_else(|e| panic!("{model} {transport:?}: {e}"));
            while let Some(frame) = stream.next().await {
                frame.unwrap_or_else(|e| panic!("{model} {transport:?}: {e}"));
            }
        }
    }
    let bodies: Vec<Value> = mock.tts_requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies.len(), 6, "{bodies:?}");
    for transport in TRANSPORTS {
        let stt = stt_with(&mock, json!({"model": "saaras:v4", "streaming": transport == Transport::Streaming}), KEY);
        transcribe(&*stt, &speech(0.5)).await.unwrap_or_else(|e| panic!("saaras:v4 {transport:?}: {e}"));
    }
}

#[tokio::test]
async fn retired_models_and_wrong_voices_are_refused_as_sarvam_refuses_them() {
    let mock = MockSarvam::start(KEY).await;
    for transport in TRANSPORTS {
        let written = json!({"model": "saarika:v2.5", "streaming": transport == Transport::Streaming});
        let error = transcribe(&*stt_with(&mock, written, KEY), &speech(0.5)).await.expect_err("retired");
        assert!(matches!(error, ProviderError::Rejected { status: 422, .. }), "{transport:?}: {error:?}");
        assert!(error.to_string().contains("saaras:v3 or saaras:v4"), "{error}");

        let written = json!({"model": "bulbul:v3", "streaming": transport == Transport::Streaming});
        let error = synthesize(&*tts_with(&mock, written, KEY), "नमस्ते।").await.expect_err("a bulbul:v2 voice on v3");
        assert!(matches!(error, ProviderError::Rejected { status: 422, .. }), "{transport:?}: {error:?}");
        assert!(error.to_string().contains("not compatible with bulbul:v3"), "{error}");
    }
}

#[tokio::test]
async fn the_old_field_name_and_a_text_sample_rate_are_refused() {
    let mock = MockSarvam::start(KEY).await;
    let url = mock.base_url().join("text-to-speech").expect("a URL");
    let old = json!({"text": "नमस्ते", "target_language_code": "hi-IN", "speaker": "shubh", "model": "bulbul:v3"});
    let answer =
        reqwest::Client::new().post(url).header("api-subscription-key", KEY).json(&old).send().await.expect("sent");
    assert_eq!(answer.status(), 422);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "unprocessable_entity_error", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("language_code")), "{body}");
    assert!(body["error"]["request_id"].is_string(), "{body}");

    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let mut ws = mock.base_url().join("text-to-speech/ws?model=bulbul:v3").expect("a URL");
    ws.set_scheme("ws").expect("ws");
    let mut request = ws.as_str().into_client_request().expect("a request");
    request.headers_mut().insert("api-subscription-key", KEY.parse().expect("a header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("connects");
    let config = json!({"type": "config", "data": {"language_code": "hi-IN", "speaker": "shubh", "speech_sample_rate": "24000"}});
    futures_util::SinkExt::send(&mut socket, Message::text(config.to_string())).await.expect("sent");
    let answer = socket.next().await.expect("an answer").expect("a message");
    let answer: Value = serde_json::from_str(answer.to_text().expect("text")).expect("JSON");
    assert_eq!((answer["type"].as_str(), answer["data"]["code"].as_u64()), (Some("error"), Some(422)), "{answer}");
    assert!(answer["data"]["message"].as_str().is_some_and(|m| m.contains("valid integer")), "{answer}");
}

#[tokio::test]
async fn segments_sarvam_closes_on_its_own_are_words_heard_while_the_caller_speaks() {
    let mock = MockSarvam::start(KEY).await;
    mock.self_segment_after(Duration::from_millis(200));
    mock.stt_answers(["एक", "दो", "तीन"]);
    let stt = stt(&mock, Transport::Streaming, KEY);
    let mut utterance = stt.start("hi-IN").await.expect("started");
    let mut heard = Vec::new();
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    for piece in speech(0.5).chunks(320) {
        clock.tick().await;
        utterance.push(piece).await.expect("pushed");
        heard.extend(utterance.partial());
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while heard.last().map(String::as_str) != Some("एक दो") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        heard.extend(utterance.partial());
    }
    assert_eq!(heard, ["एक", "एक दो"], "each segment's words once, as they came");
    assert_eq!(utterance.finish().await.expect("a transcript").text, "एक दो तीन");
}
