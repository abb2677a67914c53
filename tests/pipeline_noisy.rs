//! A handful of the noisy-room suite's conditions end to end, as phone and SDK callers send them
//! (raw microphone audio, no browser noise suppression): the caller sits in noise for 5 s while
//! the agent greets, says one sentence, and stays in the noise. The greeting is heard whole,
//! the sentence is answered once and whole, and the noise starts nothing. The whole grid runs
//! through the conversation core on a virtual clock (`pipeline::core` unit tests).

mod support;

use std::time::Duration;

use support::agent::Stage;
use support::mocks::openai::Reply;
use support::noise::{self, NoiseKind, SpeechLevel};
use voice_agent::audio::AudioFrame;

const LIMIT: Duration = Duration::from_secs(40);
const QUESTION: &str = "What time do you open tomorrow?";
const ANSWER: &str = "We open at nine in the morning.";

/// One sentence of the fixture under `kind` noise at `snr_db`, with 5 s of noise before it and
/// 3 s after.
fn noisy_call(kind: NoiseKind, snr_db: f64) -> AudioFrame {
    let sentence = noise::speech_corpus()
        .iter()
        .filter(|sentence| sentence.source.starts_with("fixture/"))
        .max_by_key(|sentence| sentence.samples.len())
        .expect("the fixture is in the corpus");
    let caller = noise::caller("fixture", &[&[sentence]], SpeechLevel::Normal);
    AudioFrame { samples: noise::noisy(&caller, kind, snr_db, 7), sample_rate: noise::RATE }
}

async fn answered_once_in(kind: NoiseKind, snr_db: f64) {
    let stage = Stage::start().await;
    // Should the detector cut the sentence in two, the second part adds no words.
    stage.sarvam.stt_answers([QUESTION, "", "", ""]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    let mut caller = stage.call(&format!("noisy-{}", kind.name()), "").await;
    caller.say(&noisy_call(kind, snr_db)).await;

    let greeting = caller.agent_said(1, LIMIT).await;
    assert_eq!(greeting, "Hello! I'm Aria. How can I help you today?", "the greeting is said whole over the noise");
    assert_eq!(caller.agent_said(2, LIMIT).await, ANSWER, "the sentence is answered, whole");
    caller.finish_saying().await;
    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    let heard = caller.settled_speech_seconds(LIMIT).await;

    let requests = stage.llm.records();
    assert_eq!(requests.len(), 1, "one answer: noise started no other turn");
    let last = requests[0].body["messages"].as_array().and_then(|m| m.last().cloned()).expect("messages");
    assert_eq!(last["content"], QUESTION);
    assert_eq!(caller.finals(false), [QUESTION], "one caller turn");
    let produced: f64 =
        stage.sarvam.tts_requests().iter().filter(|r| !r.text.starts_with("Sorry")).map(|r| r.produced_seconds).sum();
    // Nothing cut short; a little more than produced is the codec's decay and its concealment of
    // packets a loaded machine sends late, never another speech.
    assert!(
        heard >= produced - 0.1 && heard <= produced * 1.2 + 0.2,
        "noise cut nothing: heard {heard:.2} s of {produced:.2} s"
    );
    let speaking = caller.heard(|h| h.states.iter().filter(|s| *s == "speaking").count());
    assert_eq!(speaking, 2, "the agent spoke twice, never paused into a new speech");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pink_noise_at_5_db() {
    answered_once_in(NoiseKind::Pink, 5.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mains_hum_at_5_db() {
    answered_once_in(NoiseKind::Hum50, 5.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn street_noise_at_10_db() {
    answered_once_in(NoiseKind::Street, 10.0).await;
}
