//! Whole conversations, end to end through the dev server, with each new provider: a Hindi and
//! an English call listening with Deepgram, speaking with ElevenLabs, and on OpenAI's speech;
//! a fallback chain serving a call through its providers' failures without an apology; and the
//! call record's usage and cost.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::agent::{Caller, Stage};
use support::mocks::Fault;
use support::mocks::openai::Reply;

const LIMIT: Duration = Duration::from_secs(30);
const SARAH: &str = "EXAVITQu4vr4xnSDxMaL";

/// A profile directory holding `profiles` (id, TOML), and the default one the worker falls
/// back on.
fn profiles(dir: &Path, profiles: &[(&str, String)]) {
    let default = "system_prompt = \"Be brief.\"\ngreeting = \"Hello!\"\n";
    std::fs::write(dir.join("default.toml"), default).expect("written");
    for (id, text) in profiles {
        std::fs::write(dir.join(format!("{id}.toml")), text).expect("written");
    }
}

fn profile(language: &str, voice: &str, greeting: &str, sections: &str) -> String {
    format!(
        "system_prompt = \"Help the caller.\"\nlanguage = \"{language}\"\nvoice = \"{voice}\"\ngreeting = \"{greeting}\"\n{sections}"
    )
}

struct Call {
    stage: Stage,
    caller: Caller,
    dir: tempfile::TempDir,
}

/// Starts a stage offering `id` (written as `text`) and calls it; returns once greeted.
async fn call(id: &str, text: String) -> Call {
    let dir = tempfile::tempdir().expect("a profile directory");
    profiles(dir.path(), &[(id, text)]);
    let stage = Stage::start_with_profiles(support::worker::profiles_in(dir.path())).await;
    let caller = stage.call(id, &format!(r#"{{"agentId":"{id}"}}"#)).await;
    Call { stage, caller, dir }
}

impl Call {
    /// The caller says one sentence; the agent's answer as the caller read it.
    async fn turn(&mut self) -> String {
        self.caller.say(&support::audio::speech_clip(0.9, 2.6)).await;
        self.caller.agent_said(2, LIMIT).await
    }

    async fn listening(&self) {
        self.caller
            .until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening"))
            .await;
    }

    async fn record(self) -> Value {
        drop(self.caller);
        self.stage.call_record(LIMIT).await.body
    }
}

fn usage_of<'a>(record: &'a Value, kind: &str, provider: &str) -> &'a Value {
    record["usage"]["providers"]
        .as_array()
        .and_then(|lines| lines.iter().find(|l| l["kind"] == kind && l["provider"] == provider))
        .unwrap_or_else(|| panic!("no {kind} usage of {provider} in {}", record["usage"]))
}

// ---- Deepgram

async fn deepgram(language: &str, question: &str, answer: &str, greeting: &str) {
    let text = profile(language, "shubh", greeting, "[stt]\nprovider = \"deepgram\"\n");
    let mut call = call("listener", text).await;
    call.stage.deepgram.transcripts([question]);
    call.stage.llm.replies([Reply::Text(answer.into())]);
    assert_eq!(call.caller.agent_said(1, LIMIT).await, greeting);
    assert_eq!(call.turn().await, answer);
    assert_eq!(call.caller.finals(false), [question], "the caller reads Deepgram's transcript");
    call.listening().await;
    let utterances = call.stage.deepgram.utterances();
    assert_eq!(utterances.len(), 1, "{utterances:?}");
    let code = if language == "hi-IN" { "hi" } else { "en-IN" };
    assert_eq!(utterances[0].query.get("language").map(String::as_str), Some(code));
    assert!(call.stage.sarvam.stt_utterances().is_empty(), "Sarvam was not asked");
    let chat = call.stage.llm.records();
    assert_eq!(
        chat[0].body["messages"].as_array().and_then(|m| m.last()).map(|m| m["content"].clone()),
        Some(question.into())
    );
    let record = call.record().await;
    let usage = usage_of(&record, "stt", "deepgram");
    assert_eq!(usage["model"], "nova-3");
    assert!(usage["audio_seconds"].as_f64().is_some_and(|s| s > 1.0), "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hindi_call_is_heard_by_deepgram() {
    deepgram(
        "hi-IN",
        "क्या कल सुबह अपॉइंटमेंट मिल सकता है?",
        "जी हाँ, कल सुबह दस बजे का समय खाली है।",
        "नमस्ते! बताइए, मैं क्या मदद करूँ?",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_english_call_is_heard_by_deepgram() {
    deepgram(
        "en-IN",
        "Can I book a table for two tonight?",
        "Yes, we have a table for two at eight tonight.",
        "Hello! How can I help?",
    )
    .await;
}

// ---- ElevenLabs

async fn elevenlabs(language: &str, question: &str, answer: &str, greeting: &str) {
    let text = profile(language, SARAH, greeting, "[tts]\nprovider = \"elevenlabs\"\n");
    let mut call = call("speaker", text).await;
    call.stage.sarvam.stt_answers([question]);
    call.stage.llm.replies([Reply::Text(answer.into())]);
    assert_eq!(call.caller.agent_said(1, LIMIT).await, greeting);
    assert_eq!(call.turn().await, answer);
    call.listening().await;
    let streams = call.stage.elevenlabs.streams();
    let said: Vec<String> = streams.iter().flat_map(|s| s.generations.clone()).collect();
    assert!(said.contains(&greeting.to_owned()), "the greeting in ElevenLabs' voice: {said:?}");
    assert!(said.contains(&answer.to_owned()), "the answer too: {said:?}");
    let code = if language == "hi-IN" { "hi" } else { "en" };
    assert!(streams.iter().all(|s| s.voice == SARAH && s.query.get("language_code").map(String::as_str) == Some(code)));
    assert!(call.stage.sarvam.tts_requests().is_empty(), "Sarvam did not speak");
    call.caller.until("ElevenLabs' audio", LIMIT, |h| h.agent_speech_seconds() > 1.0).await;
    let record = call.record().await;
    let usage = usage_of(&record, "tts", "elevenlabs");
    assert_eq!(usage["model"], "eleven_flash_v2_5");
    assert!(usage["characters"].as_u64().is_some_and(|c| c >= answer.chars().count() as u64), "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hindi_call_is_spoken_by_elevenlabs() {
    elevenlabs("hi-IN", "आप कितने बजे खुलते हैं?", "हम सुबह नौ बजे खुलते हैं।", "नमस्ते, मैं आपकी क्या मदद कर सकती हूँ?").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_english_call_is_spoken_by_elevenlabs() {
    elevenlabs(
        "en-IN",
        "What time do you open?",
        "We open at nine in the morning.",
        "Hello, how can I help you today?",
    )
    .await;
}

// ---- OpenAI speech

async fn openai(language: &str, question: &str, answer: &str, greeting: &str) {
    let sections = "[stt]\nprovider = \"openai\"\n[llm]\nprovider = \"openai\"\n[tts]\nprovider = \"openai\"\n";
    let mut call = call("openai", profile(language, "coral", greeting, sections)).await;
    call.stage.openai.transcripts([question]);
    call.stage.openai.replies([Reply::Text(answer.into())]);
    assert_eq!(call.caller.agent_said(1, LIMIT).await, greeting);
    assert_eq!(call.turn().await, answer);
    assert_eq!(call.caller.finals(false), [question]);
    call.listening().await;
    let audio = call.stage.openai.audio_records();
    let transcriptions: Vec<_> = audio.iter().filter(|r| r.endpoint == "transcriptions").collect();
    assert_eq!(transcriptions.len(), 1, "{audio:?}");
    let code = if language == "hi-IN" { "hi" } else { "en" };
    assert_eq!(transcriptions[0].fields["language"], code);
    let spoken: Vec<&str> =
        audio.iter().filter(|r| r.endpoint == "speech").filter_map(|r| r.fields["input"].as_str()).collect();
    assert!(spoken.contains(&greeting) && spoken.contains(&answer), "{spoken:?}");
    assert_eq!(call.stage.openai.records()[0].body["model"], "gpt-4.1-mini", "OpenAI's chat model");
    assert!(call.stage.sarvam.attempts().is_empty() && call.stage.llm.records().is_empty(), "neither Sarvam nor Groq");
    let record = call.record().await;
    for kind in ["stt", "llm", "tts"] {
        assert!(usage_of(&record, kind, "openai")["requests"].as_u64().is_some_and(|n| n >= 1), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hindi_call_runs_on_openai_speech() {
    openai(
        "hi-IN",
        "मेरी पॉलिसी कब खत्म होती है?",
        "आपकी पॉलिसी अगले महीने की दस तारीख को खत्म होती है।",
        "नमस्ते, मैं नेहा बोल रही हूँ।",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_english_call_runs_on_openai_speech() {
    openai("en-IN", "When does my policy end?", "Your policy ends on the tenth of next month.", "Hello, this is Neha.")
        .await;
}

// ---- fallback chains

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_first_providers_fail_the_next_serve_the_call_without_an_apology() {
    // Sarvam's speech over REST, so that every sentence is a request its faults can fail.
    let sections = "stt = [\"sarvam\", \"deepgram\"]\nllm = [\"groq\", \"openai\"]\n\
        [[tts]]\nprovider = \"sarvam\"\nstreaming = false\n[[tts]]\nprovider = \"elevenlabs\"\nvoice = \"EXAVITQu4vr4xnSDxMaL\"\n";
    let mut call = call("chain", profile("en-IN", "ritu", "Hello! How can I help?", sections)).await;
    let (question, answer) = ("What time do you open?", "We open at nine in the morning.");
    assert_eq!(call.caller.agent_said(1, LIMIT).await, "Hello! How can I help?", "greeted by the first provider");
    let stage = &call.stage;
    // Each first provider fails for good (its retries included); the next serves.
    stage.sarvam.fault_next(Fault::ServerError, 30);
    stage.llm.fault_next(Fault::ServerError, 3);
    stage.deepgram.transcripts([question]);
    stage.openai.replies([Reply::Text(answer.into())]);
    assert_eq!(call.turn().await, answer, "answered, not apologised");
    assert_eq!(call.caller.finals(false), [question], "Deepgram heard the same words");
    call.listening().await;
    let apology = support::worker::profiles_in(call.dir.path()).get("chain").await.expect("profile").apology.clone();
    assert!(!call.caller.finals(true).contains(&apology), "no apology");
    let stage = &call.stage;
    assert_eq!(stage.openai.records()[0].body["model"], "gpt-4.1-mini", "OpenAI asked for its own model");
    let said: Vec<String> = stage.elevenlabs.streams().iter().flat_map(|s| s.generations.clone()).collect();
    assert!(said.contains(&answer.to_owned()), "ElevenLabs spoke the answer: {said:?}");
    assert!(stage.deepgram.utterances()[0].audio_seconds > 1.0, "the whole utterance went to Deepgram");
    let record = call.record().await;
    assert_eq!(record["record_version"], 2);
    assert!(usage_of(&record, "stt", "sarvam")["failures"].as_u64().is_some_and(|n| n >= 1));
    assert_eq!(usage_of(&record, "stt", "deepgram")["requests"], 1);
    assert_eq!(usage_of(&record, "llm", "groq")["failures"], 1);
    assert_eq!(usage_of(&record, "llm", "openai")["requests"], 1);
    assert!(usage_of(&record, "tts", "elevenlabs")["requests"].as_u64().is_some_and(|n| n >= 1));
}

// ---- usage and cost

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_record_carries_usage_per_provider_and_model_and_its_estimated_cost() {
    let sections = "[stt]\nprice = 0.01\n[llm]\nprice = [1.0, 2.0]\n";
    let mut call = call("priced", profile("en-IN", "shubh", "Hello!", sections)).await;
    call.stage.sarvam.stt_answers(["What time do you open?"]);
    call.stage.llm.replies([Reply::Text("We open at nine.".into())]);
    call.caller.agent_said(1, LIMIT).await;
    call.turn().await;
    call.listening().await;
    let chat = call.stage.llm.records();
    let (prompt, completion, _) = chat[0].usage.expect("the mock reported usage");
    let record = call.record().await;
    assert_eq!(record["record_version"], 2);
    let usage = &record["usage"];
    assert_eq!(usage["currency"], "USD");
    let stt = usage_of(&record, "stt", "sarvam");
    assert_eq!((stt["model"].as_str(), stt["price_source"].as_str()), (Some("saaras:v3"), Some("profile")));
    let seconds = stt["audio_seconds"].as_f64().expect("seconds");
    assert!((stt["cost_usd"].as_f64().expect("cost") - seconds / 60.0 * 0.01).abs() < 1e-5, "{stt}");
    let llm = usage_of(&record, "llm", "groq");
    assert_eq!(
        (llm["prompt_tokens"].as_u64(), llm["completion_tokens"].as_u64()),
        (Some(u64::from(prompt)), Some(u64::from(completion)))
    );
    let expected = (f64::from(prompt) + 2.0 * f64::from(completion)) / 1e6;
    assert!((llm["cost_usd"].as_f64().expect("cost") - expected).abs() < 1e-5, "{llm}");
    let tts = usage_of(&record, "tts", "sarvam");
    assert_eq!((tts["model"].as_str(), tts["price_source"].as_str()), (Some("bulbul:v3"), Some("list_price")));
    assert!(tts["characters"].as_u64().is_some_and(|c| c >= "Hello!We open at nine.".len() as u64), "{tts}");
    let total: f64 = usage["providers"].as_array().expect("lines").iter().filter_map(|l| l["cost_usd"].as_f64()).sum();
    assert!((usage["estimated_cost_usd"].as_f64().expect("total") - total).abs() < 1e-5, "{usage}");
}
