//! ElevenLabs' input-streaming text-to-speech against a mock speaking its WebSocket protocol:
//! a stream per sentence, initialised with the voice settings, the sentence flushed and the
//! input ended, PCM handed on as it arrives, the next stream opened ahead, and the mock's faults.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::mocks::Fault;
use support::mocks::elevenlabs::MockElevenLabs;
use voice_agent::audio::AudioFrame;
use voice_agent::config::Secret;
use voice_agent::providers::registry::{self, Access};
use voice_agent::providers::tts::{SpeechRequest, TextToSpeech};
use voice_agent::providers::{ProviderError, RetryPolicy};

const KEY: &str = "el-test-key-0123456789";
const SARAH: &str = "EXAVITQu4vr4xnSDxMaL";

fn elevenlabs(mock: &MockElevenLabs, written: Value, key: &str) -> Arc<dyn TextToSpeech> {
    let access = Access {
        key: Secret::new(key),
        base_url: mock.base_url(),
        http: reqwest::Client::new(),
        timeout: Duration::from_millis(800),
        retry: RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(2),
        },
    };
    let provider = registry::tts("elevenlabs").expect("registered");
    let options = written.as_object().expect("an object");
    let (options, _) = provider.resolve(options, Some(SARAH), "hi-IN", "").expect("valid options");
    provider.build(&access, &options).expect("built")
}

fn sentence(text: &str, language: &str) -> SpeechRequest {
    SpeechRequest { text: text.into(), language: language.into(), voice: SARAH.into() }
}

async fn synthesize(tts: &dyn TextToSpeech, request: SpeechRequest) -> Result<Vec<AudioFrame>, ProviderError> {
    let mut stream = tts.synthesize(request).await?;
    let mut frames = Vec::new();
    while let Some(frame) = stream.next().await {
        frames.push(frame?);
    }
    Ok(frames)
}

fn seconds(frames: &[AudioFrame]) -> f64 {
    frames.iter().map(|f| f.duration().as_secs_f64()).sum()
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_sentence_is_flushed_and_its_pcm_streamed() {
    let mock = MockElevenLabs::start(KEY).await;
    mock.audio(Duration::from_millis(640));
    let tts = elevenlabs(&mock, json!({"speed": 1.1}), KEY);
    let frames = synthesize(&*tts, sentence("नमस्ते, मैं आपकी क्या मदद कर सकती हूँ?", "hi-IN")).await.expect("audio");
    assert!(frames.len() > 1, "in pieces as they came");
    assert!(frames.iter().all(|f| f.sample_rate == 24_000));
    assert!((seconds(&frames) - 0.64).abs() < 0.005, "{}", seconds(&frames));
    let streams = mock.streams();
    assert_eq!(streams.len(), 1);
    let stream = &streams[0];
    assert_eq!(stream.voice, SARAH);
    assert_eq!(stream.generations, ["नमस्ते, मैं आपकी क्या मदद कर सकती हूँ?"]);
    assert_eq!(stream.query.get("model_id").map(String::as_str), Some("eleven_flash_v2_5"));
    assert_eq!(stream.query.get("output_format").map(String::as_str), Some("pcm_24000"));
    assert_eq!(stream.query.get("language_code").map(String::as_str), Some("hi"));
    assert_eq!(stream.initialise["text"], " ");
    assert_eq!(stream.initialise["voice_settings"]["speed"], 1.1);
}

#[tokio::test]
async fn the_next_sentences_stream_is_opened_while_one_plays() {
    let mock = MockElevenLabs::start(KEY).await;
    let tts = elevenlabs(&mock, json!({"model": "eleven_multilingual_v2"}), KEY);
    synthesize(&*tts, sentence("First sentence.", "en-IN")).await.expect("audio");
    until("a stream opened ahead", || mock.connections() == 2).await;
    synthesize(&*tts, sentence("Second sentence.", "en-IN")).await.expect("audio");
    let streams = mock.streams();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[1].generations, ["Second sentence."]);
    until("another stream opened ahead", || mock.connections() == 3).await;
    assert!(!streams[0].query.contains_key("language_code"), "multilingual v2 detects the language");
}

#[tokio::test]
async fn failures_before_audio_are_retried_and_after_it_end_the_sentence() {
    for fault in
        [Fault::RateLimited { retry_after: None }, Fault::ServerError, Fault::Slow(Duration::from_millis(1_200))]
    {
        let mock = MockElevenLabs::start(KEY).await;
        mock.fault_next(fault.clone(), 1);
        let tts = elevenlabs(&mock, json!({}), KEY);
        let frames =
            synthesize(&*tts, sentence("Once more.", "en-IN")).await.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert!((seconds(&frames) - 0.5).abs() < 0.005, "{fault:?}");
    }
    for fault in [Fault::ErrorMidStream, Fault::DropConnection] {
        let mock = MockElevenLabs::start(KEY).await;
        mock.fault_next(fault.clone(), 1);
        let tts = elevenlabs(&mock, json!({}), KEY);
        let mut stream = tts.synthesize(sentence("Half a sentence.", "en-IN")).await.expect("audio starts");
        let mut audio = 0;
        let error = loop {
            match stream.next().await {
                Some(Ok(frame)) => audio += frame.samples.len(),
                Some(Err(error)) => break error,
                None => panic!("{fault:?}: ended without an error"),
            }
        };
        assert!(audio > 0, "{fault:?}");
        assert!(error.retryable(), "{fault:?}: {error:?}");
        assert!(stream.next().await.is_none());
        assert_eq!(mock.streams()[0].generations.len(), 1, "{fault:?}: never said twice");
    }
}

#[tokio::test]
async fn a_refused_key_or_spent_quota_fails_at_once() {
    for (fault, key) in [(None, "wrong-key-0123456789"), (Some(Fault::QuotaExhausted), KEY)] {
        let mock = MockElevenLabs::start(KEY).await;
        if let Some(fault) = fault.clone() {
            mock.fault_next(fault, 3);
        }
        let tts = elevenlabs(&mock, json!({}), key);
        let error = synthesize(&*tts, sentence("Hello.", "en-IN")).await.expect_err("a final failure");
        match fault {
            None => assert!(matches!(error, ProviderError::Auth { .. }), "{error:?}"),
            Some(_) => assert!(matches!(error, ProviderError::QuotaExhausted { .. }), "{error:?}"),
        }
        assert_eq!(mock.handshakes().len(), 1, "not retried");
        assert!(!error.to_string().contains(key));
    }
}

#[tokio::test]
async fn the_mock_refuses_what_elevenlabs_refuses() {
    let mock = MockElevenLabs::start(KEY).await;
    let tts = elevenlabs(&mock, json!({}), KEY);
    let request = SpeechRequest { voice: "Sarah".into(), ..sentence("Hello.", "en-IN") };
    let error = synthesize(&*tts, request).await.expect_err("a name is not a voice id");
    assert!(matches!(error, ProviderError::Rejected { status: 422, .. }), "{error:?}");
}
