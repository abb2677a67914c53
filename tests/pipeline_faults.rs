//! The voice agent when its providers fail, end to end through the dev server against the
//! provider mocks: what the caller notices. A failure the retries cover goes unnoticed but for a
//! delay; one they cannot cover gets the profile's apology (recorded at the start of the call, so
//! it plays even when speech synthesis is down), and the call always goes on.

mod support;

use std::time::Duration;

use serde_json::json;
use support::agent::{Caller, Stage};
use support::mocks::Fault;
use support::mocks::openai::Reply;
use voice_agent::audio::AudioFrame;
use voice_agent::providers::RetryPolicy;

const LIMIT: Duration = Duration::from_secs(30);
const QUESTION: &str = "What time do you open tomorrow?";
/// One sentence, with no comma early on: a stream cut after its first words has spoken nothing.
const ANSWER: &str = "We open at nine in the morning and close at six in the evening.";

/// One short turn of the caller: 1.7 s of the fixture, with no pause long enough to end a turn.
fn turn() -> AudioFrame {
    support::audio::speech_clip(0.9, 2.6)
}

/// Tries in all for one request, the first included.
fn attempts() -> usize {
    RetryPolicy::default().attempts as usize
}

/// What the default agent says when it cannot answer.
async fn apology() -> String {
    support::worker::profiles().get("default").await.expect("the default profile").apology.clone()
}

/// Waits until `check` holds for the mocks.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < LIMIT, "waited {LIMIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A caller in `room` who has heard the whole greeting, once the apology has been synthesised
/// ahead of need.
async fn greeted(stage: &Stage, room: &str) -> Caller {
    let caller = stage.call(room, "").await;
    caller.agent_said(1, LIMIT).await;
    let apology = apology().await;
    eventually("the apology's rehearsal", || stage.sarvam.tts_requests().iter().any(|r| r.text == apology)).await;
    caller
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_model_is_asked_again_after_its_retry_after_and_the_caller_gets_the_answer() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers([QUESTION]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    let retry_after = Duration::from_secs(1);
    stage.llm.fault_next(Fault::RateLimited { retry_after: Some(retry_after) }, 1);
    let mut caller = greeted(&stage, "llm-rate-limited").await;

    caller.say(&turn()).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, ANSWER, "the caller gets the real answer");
    assert_eq!(caller.finals(false), [QUESTION]);

    let records = stage.llm.records();
    assert_eq!(records.len(), 2, "one refusal, one answer");
    assert_eq!(records[0].fault, Some(Fault::RateLimited { retry_after: Some(retry_after) }));
    assert_eq!(records[1].fault, None);
    assert_eq!(records[1].body, records[0].body, "the same request was sent again");
    let waited = records[1].at.duration_since(records[0].at);
    assert!(waited >= retry_after, "asked again after {waited:?}, though the model asked for {retry_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_failing_on_every_attempt_gets_an_apology_and_the_call_goes_on() {
    let stage = Stage::start().await;
    let again = "Can you hear me now?";
    stage.sarvam.stt_answers([QUESTION, again]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    stage.llm.fault_next(Fault::ServerError, attempts());
    let mut caller = greeted(&stage, "llm-down").await;
    let apology = apology().await;

    caller.say(&turn()).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, apology, "the caller hears the apology");
    let records = stage.llm.records();
    assert_eq!(records.len(), attempts(), "every try was used");
    assert!(records.iter().all(|r| r.fault == Some(Fault::ServerError)));
    caller.listening_after(2, LIMIT).await;
    let jobs = stage.worker.snapshot().jobs;
    assert_eq!(jobs.len(), 1, "the call is not ended: {jobs:?}");

    caller.say(&turn()).await;
    assert_eq!(caller.agent_said(3, LIMIT).await, ANSWER, "the next turn is answered");
    assert_eq!(caller.finals(false), [QUESTION, again]);
    let records = stage.llm.records();
    assert_eq!(records.len(), attempts() + 1);
    let messages = records[attempts()].body["messages"].as_array().expect("messages").clone();
    assert_eq!(
        messages[messages.len() - 3..],
        [
            json!({"role": "user", "content": QUESTION}),
            json!({"role": "assistant", "content": apology}),
            json!({"role": "user", "content": again}),
        ],
        "the model knows the agent apologised and the caller asked again"
    );
    caller.listening_after(3, LIMIT).await;
}

/// The model's answer breaks after its first words: the agent apologises and does not ask again.
async fn a_broken_answer_is_not_asked_again(fault: Fault, room: &str) {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers([QUESTION]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    stage.llm.fault_next(fault.clone(), 1);
    let mut caller = greeted(&stage, room).await;
    let apology = apology().await;

    caller.say(&turn()).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, apology, "the caller hears the apology");
    caller.listening_after(2, LIMIT).await;
    let records = stage.llm.records();
    assert_eq!(records.len(), 1, "a stream that already produced text is not asked again");
    assert_eq!(records[0].fault, Some(fault));
    assert_eq!(caller.finals(true).len(), 2, "only the greeting and the apology were said");
    assert_eq!(stage.worker.snapshot().jobs.len(), 1, "the call is not ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_in_the_middle_of_the_models_answer_gets_an_apology() {
    a_broken_answer_is_not_asked_again(Fault::ErrorMidStream, "llm-error-mid-stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_in_the_middle_of_the_models_answer_gets_an_apology() {
    a_broken_answer_is_not_asked_again(Fault::DropConnection, "llm-dropped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_model_quota_is_not_retried_and_gets_an_apology() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers([QUESTION]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    stage.llm.fault_next(Fault::QuotaExhausted, 1);
    let mut caller = greeted(&stage, "llm-quota").await;

    caller.say(&turn()).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, apology().await, "the caller hears the apology");
    caller.listening_after(2, LIMIT).await;
    let records = stage.llm.records();
    assert_eq!(records.len(), 1, "a spent quota is not asked again");
    assert_eq!(records[0].fault, Some(Fault::QuotaExhausted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_slow_to_start_its_answer_still_answers() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers([QUESTION]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    stage.llm.fault_next(Fault::Slow(Duration::from_millis(1500)), 1);
    let mut caller = greeted(&stage, "llm-slow").await;

    caller.say(&turn()).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, ANSWER, "the caller gets the answer");
    let records = stage.llm.records();
    assert_eq!(records.len(), 1, "a slow answer within the timeout is waited for, not asked again");
    assert_eq!(records[0].fault, Some(Fault::Slow(Duration::from_millis(1500))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_to_text_failing_on_every_attempt_gets_an_apology_and_the_next_turn_is_heard() {
    let stage = Stage::start().await;
    let again = "Can you hear me now?";
    stage.sarvam.stt_answers([again]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    let mut caller = greeted(&stage, "stt-down").await;
    let apology = apology().await;
    let before = stage.sarvam.attempts().len();
    stage.sarvam.fault_next(Fault::ServerError, attempts());

    caller.say(&turn()).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, apology, "the agent asks the caller to repeat");
    caller.listening_after(2, LIMIT).await;
    let tries = stage.sarvam.attempts()[before..].to_vec();
    assert_eq!(tries.len(), attempts(), "every try was used: {tries:?}");
    assert!(tries.iter().all(|a| a.endpoint == "stt-ws" && a.fault == Some(Fault::ServerError)), "{tries:?}");
    assert!(caller.finals(false).is_empty(), "no words are made up for the caller");
    assert!(stage.llm.records().is_empty(), "the model is not asked about a turn nobody heard");

    caller.say(&turn()).await;
    assert_eq!(caller.agent_said(3, LIMIT).await, ANSWER, "the repeated turn is answered");
    assert_eq!(caller.finals(false), [again], "the repeated turn is transcribed");
    let records = stage.llm.records();
    assert_eq!(records.len(), 1);
    let messages = records[0].body["messages"].as_array().expect("messages").clone();
    let said = messages[messages.len() - 2]["content"].as_str().unwrap_or_default();
    assert!(said.ends_with(&apology), "the model knows the agent asked to repeat: {said:?}");
    assert_eq!(messages[messages.len() - 1], json!({"role": "user", "content": again}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_speech_to_text_key_is_not_retried_and_gets_an_apology() {
    let stage = Stage::start().await;
    let mut caller = greeted(&stage, "stt-auth").await;
    let before = stage.sarvam.attempts().len();
    stage.sarvam.fault_next(Fault::AuthFailure, 1);

    caller.say(&turn()).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, apology().await, "the agent asks the caller to repeat");
    caller.listening_after(2, LIMIT).await;
    let tries = stage.sarvam.attempts()[before..].to_vec();
    assert_eq!(tries.len(), 1, "a refused key is not tried again: {tries:?}");
    assert_eq!((tries[0].endpoint, tries[0].fault.clone()), ("stt-ws", Some(Fault::AuthFailure)));
    assert!(caller.finals(false).is_empty());
    assert_eq!(stage.worker.snapshot().jobs.len(), 1, "the call is not ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_to_text_failing_mid_utterance_is_retried_unnoticed_with_the_whole_utterance() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers([QUESTION]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    let mut caller = greeted(&stage, "stt-error-mid-stream").await;
    // Taken by the first audio of the caller's utterance: Sarvam sends an error and closes.
    stage.sarvam.fault_next(Fault::ErrorMidStream, 1);

    let speech = turn();
    caller.say(&speech).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, ANSWER, "the caller is answered, no apology");
    assert_eq!(caller.finals(false), [QUESTION]);
    let utterances = stage.sarvam.stt_utterances();
    assert_eq!(utterances.len(), 1, "{utterances:?}");
    assert_eq!(utterances[0].connection, 2, "transcribed on a new connection");
    let (sent, spoken) = (utterances[0].audio_seconds, support::audio::speech_span(&speech));
    // The speech with its 300 ms pre-roll and 100 ms tail, whole, on the new connection.
    assert!((sent - (spoken + 0.4)).abs() <= 0.3, "the retry sent {sent:.2} s for the {spoken:.2} s spoken");
}

/// The default profile with speech synthesis over REST: every sentence is a request of its own.
fn rest_synthesis_profiles(dir: &std::path::Path) -> std::sync::Arc<voice_agent::profiles::ProfileStore> {
    let text = std::fs::read_to_string(support::repo_path("profiles/default.toml")).expect("the default profile");
    let mut profile: toml::Table = text.parse().expect("TOML");
    let tts = profile.entry("tts").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    tts.as_table_mut().expect("a table").insert("streaming".into(), toml::Value::Boolean(false));
    std::fs::write(dir.join("default.toml"), toml::to_string(&profile).expect("TOML")).expect("written");
    support::worker::profiles_in(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_synthesis_failing_on_every_attempt_gets_the_apology_recorded_at_the_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let stage = Stage::start_with_profiles(rest_synthesis_profiles(dir.path())).await;
    stage.sarvam.stt_answers([QUESTION]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    // Time to queue the faults between the model being asked and its answer being synthesised.
    stage.llm.latency(Duration::from_secs(2));
    let mut caller = greeted(&stage, "tts-down").await;
    let apology = apology().await;
    assert!(stage.sarvam.tts_requests().iter().all(|r| r.transport == "rest"));

    caller.say(&turn()).await;
    eventually("the model to be asked", || !stage.llm.records().is_empty()).await;
    let before = stage.sarvam.attempts().len();
    stage.sarvam.fault_next(Fault::ServerError, attempts());
    assert_eq!(caller.agent_said(2, LIMIT).await, apology, "the caller hears the apology");
    caller.listening_after(2, LIMIT).await;

    let tries = stage.sarvam.attempts()[before..].to_vec();
    assert_eq!(tries.len(), attempts(), "every try was used, and nothing else was synthesised: {tries:?}");
    assert!(tries.iter().all(|a| a.endpoint == "tts-rest" && a.fault == Some(Fault::ServerError)), "{tries:?}");
    let rehearsals = stage.sarvam.tts_requests().iter().filter(|r| r.text == apology).count();
    assert_eq!(rehearsals, 1, "the apology played from the recording made at the start");
    assert_eq!(caller.finals(false), [QUESTION]);
    assert_eq!(stage.worker.snapshot().jobs.len(), 1, "the call is not ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_synthesis_breaking_mid_sentence_gets_the_apology_recorded_at_the_start() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers([QUESTION]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    stage.llm.latency(Duration::from_secs(2));
    let mut caller = greeted(&stage, "tts-breaks").await;
    let apology = apology().await;

    caller.say(&turn()).await;
    eventually("the model to be asked", || !stage.llm.records().is_empty()).await;
    let before = stage.sarvam.tts_requests().len();
    // Taken by the answer's synthesis: Sarvam sends the first piece of audio, then an error.
    stage.sarvam.fault_next(Fault::ErrorMidStream, 1);
    assert_eq!(caller.agent_said(2, LIMIT).await, apology, "the caller hears the apology");
    caller.listening_after(2, LIMIT).await;

    let after: Vec<String> = stage.sarvam.tts_requests()[before..].iter().map(|r| r.text.clone()).collect();
    assert_eq!(after, [ANSWER], "the broken sentence is not synthesised again, nor is the apology");
    assert_eq!(caller.finals(true).len(), 2, "the broken sentence is not shown as said");
    assert_eq!(stage.worker.snapshot().jobs.len(), 1, "the call is not ended");
}
