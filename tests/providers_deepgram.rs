//! Deepgram live transcription against a mock speaking its `/v1/listen` protocol: one stream
//! per call, interim words while the caller speaks, endpointing and utterance-end events,
//! `KeepAlive` between utterances, `Finalize` at each turn's end, `CloseStream` at the call's,
//! and the mock's faults.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::mocks::Fault;
use support::mocks::deepgram::MockDeepgram;
use voice_agent::config::Secret;
use voice_agent::providers::registry::{self, Access};
use voice_agent::providers::stt::{Endpoint, SpeechToText, Transcript};
use voice_agent::providers::{ProviderError, RetryPolicy};

const KEY: &str = "dg-test-key-0123456789";
const TIMEOUT: Duration = Duration::from_millis(800);

fn deepgram(mock: &MockDeepgram, written: Value, key: &str) -> Arc<dyn SpeechToText> {
    let access = Access {
        key: Secret::new(key),
        base_url: mock.base_url(),
        http: reqwest::Client::new(),
        timeout: TIMEOUT,
        retry: RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(2),
        },
    };
    let provider = registry::stt("deepgram").expect("registered");
    let options = provider.resolve(written.as_object().expect("an object")).expect("valid options");
    provider.build(&access, &options).expect("built")
}

/// `speech` seconds of a tone, then `silence` seconds of silence, at 16 kHz.
fn audio(speech: f64, silence: f64) -> Vec<i16> {
    let tone = (0..(speech * 16_000.0) as usize)
        .map(|i| ((i as f64 * 300.0 * std::f64::consts::TAU / 16_000.0).sin() * 6_000.0) as i16);
    tone.chain(std::iter::repeat_n(0, (silence * 16_000.0) as usize)).collect()
}

/// One utterance pushed in 20 ms pieces at the pace a caller speaks, collecting what the
/// provider heard meanwhile.
async fn speak(
    stt: &dyn SpeechToText,
    language: &str,
    samples: &[i16],
) -> Result<(Transcript, Vec<String>, Vec<Endpoint>), ProviderError> {
    let mut utterance = stt.start(language).await?;
    let (mut partials, mut endpoints) = (Vec::new(), Vec::new());
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    for piece in samples.chunks(320) {
        clock.tick().await;
        utterance.push(piece).await?;
        partials.extend(utterance.partial());
        endpoints.extend(utterance.endpoint());
    }
    let transcript = utterance.finish().await?;
    Ok((transcript, partials, endpoints))
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn words_come_while_the_caller_speaks_and_the_transcript_at_the_end() {
    let mock = MockDeepgram::start(KEY).await;
    mock.transcripts(["I would like to book a table for two"]);
    let stt = deepgram(&mock, json!({}), KEY);
    let (transcript, partials, endpoints) = speak(&*stt, "en-IN", &audio(1.2, 0.4)).await.expect("a transcript");
    assert_eq!(transcript.text, "I would like to book a table for two");
    assert!(partials.len() >= 3, "interim words as the caller spoke: {partials:?}");
    assert!(partials.windows(2).all(|pair| pair[1].len() >= pair[0].len()), "growing: {partials:?}");
    assert_eq!(partials.last().map(String::as_str), Some("I would like to book a table for two"));
    assert_eq!(endpoints, [Endpoint::Pause], "endpointing heard the pause after the words");

    let utterances = mock.utterances();
    assert_eq!(utterances.len(), 1);
    assert!((utterances[0].audio_seconds - 1.6).abs() < 0.05, "{utterances:?}");
    let query = &utterances[0].query;
    for (name, value) in [
        ("model", "nova-3"),
        ("language", "en-IN"),
        ("encoding", "linear16"),
        ("sample_rate", "16000"),
        ("channels", "1"),
        ("interim_results", "true"),
        ("endpointing", "300"),
        ("utterance_end_ms", "1000"),
        ("smart_format", "true"),
    ] {
        assert_eq!(query.get(name).map(String::as_str), Some(value), "query parameter {name}");
    }
    assert_eq!(mock.controls()[0].finalizes, 1, "the turn's end is a Finalize");
}

#[tokio::test]
async fn one_stream_serves_the_call_kept_alive_between_utterances_and_closed_with_the_call() {
    let mock = MockDeepgram::start(KEY).await;
    mock.idle_limit(Duration::from_secs(5));
    mock.transcripts(["नमस्ते", "मुझे कल का अपॉइंटमेंट चाहिए"]);
    let stt = deepgram(&mock, json!({"model": "nova-2"}), KEY);
    let (first, ..) = speak(&*stt, "hi-IN", &audio(0.6, 0.1)).await.expect("a transcript");
    assert_eq!(first.text, "नमस्ते");
    // Longer than Deepgram keeps a silent stream: KeepAlive holds it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (second, ..) = speak(&*stt, "hi-IN", &audio(1.0, 0.1)).await.expect("a transcript");
    assert_eq!(second.text, "मुझे कल का अपॉइंटमेंट चाहिए");
    assert_eq!(mock.connections(), 1, "one stream for the call");
    assert!(mock.controls()[0].keep_alives >= 1, "{:?}", mock.controls());
    assert_eq!(mock.utterances()[0].query.get("language").map(String::as_str), Some("hi"), "Deepgram's code");
    drop(stt);
    until("CloseStream", || mock.controls()[0].close_streams == 1).await;
}

#[tokio::test]
async fn an_utterance_given_up_does_not_leak_into_the_next() {
    let mock = MockDeepgram::start(KEY).await;
    mock.transcripts(["the real question"]);
    let stt = deepgram(&mock, json!({}), KEY);
    let mut cough = stt.start("en-IN").await.expect("started");
    cough.push(&audio(0.3, 0.0)).await.expect("pushed");
    drop(cough);
    let (transcript, ..) = speak(&*stt, "en-IN", &audio(0.8, 0.1)).await.expect("a transcript");
    assert_eq!(transcript.text, "the real question");
    assert_eq!(mock.connections(), 2, "the abandoned stream was closed, a new one opened");
    until("the abandoned stream's CloseStream", || mock.controls()[0].close_streams == 1).await;
    assert_eq!(mock.controls()[0].finalizes, 0, "nothing of the cough was asked for");
    let utterances = mock.utterances();
    assert_eq!(utterances.len(), 1);
    assert_eq!(utterances[0].connection, 2);
    assert!((utterances[0].audio_seconds - 0.9).abs() < 0.05, "only the question's audio: {utterances:?}");
}

#[tokio::test]
async fn utterance_end_is_reported_after_a_long_silence() {
    let mock = MockDeepgram::start(KEY).await;
    let stt = deepgram(&mock, json!({"utterance_end_ms": 1000}), KEY);
    let (_, _, endpoints) = speak(&*stt, "en-IN", &audio(0.5, 1.3)).await.expect("a transcript");
    assert_eq!(endpoints, [Endpoint::Pause, Endpoint::UtteranceEnd]);
}

#[tokio::test]
async fn failures_are_retried_with_the_utterances_audio_on_a_new_stream() {
    for fault in
        [Fault::RateLimited { retry_after: None }, Fault::ServerError, Fault::DropConnection, Fault::ErrorMidStream]
    {
        let mock = MockDeepgram::start(KEY).await;
        mock.transcripts(["once more"]);
        mock.fault_next(fault.clone(), 1);
        let stt = deepgram(&mock, json!({}), KEY);
        let (transcript, ..) =
            speak(&*stt, "en-IN", &audio(0.6, 0.1)).await.unwrap_or_else(|e| panic!("after {fault:?}: {e}"));
        assert_eq!(transcript.text, "once more", "after {fault:?}");
        assert_eq!(mock.handshakes().len(), 2, "after {fault:?}");
        assert!((mock.utterances()[0].audio_seconds - 0.7).abs() < 0.05, "the whole utterance again after {fault:?}");
    }
}

#[tokio::test]
async fn refused_keys_and_spent_credit_fail_at_once_without_the_key() {
    for (fault, key) in [(None, "wrong-key-0123456789"), (Some(Fault::QuotaExhausted), KEY)] {
        let mock = MockDeepgram::start(KEY).await;
        if let Some(fault) = fault.clone() {
            mock.fault_next(fault, 3);
        }
        let stt = deepgram(&mock, json!({}), key);
        let error = speak(&*stt, "en-IN", &audio(0.3, 0.0)).await.expect_err("a final failure");
        assert!(!error.retryable(), "{fault:?}: {error:?}");
        assert_eq!(mock.handshakes().len(), 1, "{fault:?} is not retried");
        let shown = error.to_string();
        assert!(!shown.contains(key), "{shown}");
        if fault.is_none() {
            assert!(shown.contains("Invalid credentials") && shown.contains("DEEPGRAM_API_KEY"), "{shown}");
        }
    }
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let mock = MockDeepgram::start(KEY).await;
    mock.latency(Duration::from_millis(1_500));
    let stt = deepgram(&mock, json!({"endpointing_ms": 5000}), KEY);
    let error = speak(&*stt, "en-IN", &audio(0.3, 0.0)).await.expect_err("too slow");
    assert!(matches!(error, ProviderError::Timeout { provider: "deepgram", .. }), "{error:?}");
}

#[test]
fn options_are_checked_by_deepgram() {
    let provider = registry::stt("deepgram").expect("registered");
    let problems = provider
        .resolve(json!({"model": "nova-1", "utterance_end_ms": 500, "keyterm": ["x"]}).as_object().expect("an object"))
        .expect_err("three mistakes")
        .join("\n");
    for expected in [
        "model: `nova-1` is not one of nova-3, nova-2",
        "utterance_end_ms: 500 is not a whole number from 1000",
        "keyterm: deepgram has no such option",
    ] {
        assert!(problems.contains(expected), "missing `{expected}` in:\n{problems}");
    }
}
