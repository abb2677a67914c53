//! Post-call analysis in whole calls: after the caller leaves, the model (the profile's cheaper
//! analysis model) is asked for the analysis as a function call, and the call record carries it,
//! or says why it does not.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::agent::Stage;
use support::mocks::openai::Reply;

const LIMIT: Duration = Duration::from_secs(30);
const METADATA: &str = r#"{"agentId":"analysed"}"#;
const SAID: &str = "I can't come this week, please call me back on Monday.";
const ANSWER: &str = "Of course, we will call you back on Monday.";

const PROFILE: &str = r#"
name = "Aria"
language = "en-IN"
voice = "anushka"
greeting = "Hello! How can I help?"
system_prompt = "You book appointments for a clinic."

[analysis]
summary = true
sentiment = true
outcomes = ["booked", "callback", "not_interested"]
model = "llama-3.1-8b-instant"
instructions = "Write the summary in one sentence."
timeout_secs = 4

[analysis.fields.callback_day]
type = "string"
description = "The day the caller wants to be called back."
"#;

async fn stage(profiles: &tempfile::TempDir) -> Stage {
    std::fs::write(profiles.path().join("analysed.toml"), PROFILE).expect("profile written");
    let default = std::fs::read(support::repo_path("profiles/default.toml")).expect("the default profile");
    std::fs::write(profiles.path().join("default.toml"), default).expect("written");
    Stage::start_with_profiles(support::worker::profiles_in(profiles.path())).await
}

/// One turn, answered, then the caller hangs up.
async fn call_and_hang_up(stage: &Stage, room: &str) {
    let mut caller = stage.call(room, METADATA).await;
    caller.agent_said(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, ANSWER);
    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    caller.room.disconnect().await;
}

/// The requests that asked for the analysis.
fn analysis_requests(stage: &Stage) -> Vec<Value> {
    stage
        .llm
        .records()
        .into_iter()
        .map(|r| r.body)
        .filter(|body| body["tools"][0]["function"]["name"] == "record_analysis")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_carries_the_analysis_the_profile_asked_for() {
    let profiles = tempfile::tempdir().expect("a profiles directory");
    let stage = stage(&profiles).await;
    stage.sarvam.stt_answers([SAID]);
    let analysis = json!({
        "summary": "The caller cannot come this week and asked to be called back on Monday.",
        "sentiment": "neutral",
        "outcome": "callback",
        "callback_day": "Monday",
    });
    stage.llm.replies([
        Reply::Text(ANSWER.into()),
        Reply::ToolCalls(vec![("record_analysis".into(), analysis.to_string())]),
    ]);
    call_and_hang_up(&stage, "analysed").await;

    let record = stage.call_record(LIMIT).await;
    assert_eq!(record.body["analysis"], analysis);
    assert!(record.body.get("analysis_error").is_none(), "{}", record.body);
    assert_eq!(record.body["end_reason"], "caller_left");

    let asked = analysis_requests(&stage);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["model"], "llama-3.1-8b-instant", "the profile's cheaper model");
    let parameters = &asked[0]["tools"][0]["function"]["parameters"];
    assert_eq!(parameters["properties"]["outcome"]["enum"], json!(["booked", "callback", "not_interested"]));
    assert_eq!(parameters["properties"]["sentiment"]["enum"], json!(["positive", "neutral", "negative"]));
    assert_eq!(parameters["properties"]["callback_day"]["type"], "string");
    let system = asked[0]["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(system.ends_with("Write the summary in one sentence."), "the profile's instructions: {system}");
    let transcript = asked[0]["messages"][1]["content"].as_str().unwrap_or_default();
    assert!(transcript.contains(&format!("Caller: {SAID}\nAgent: {ANSWER}")), "{transcript}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_answers_invalid_json_leaves_the_record_without_analysis_saying_why() {
    let profiles = tempfile::tempdir().expect("a profiles directory");
    let stage = stage(&profiles).await;
    stage.sarvam.stt_answers([SAID]);
    let broken = r#"{"summary": "The caller asked for a call back", "sentiment": "#;
    stage.llm.replies([
        Reply::Text(ANSWER.into()),
        Reply::ToolCalls(vec![("record_analysis".into(), broken.into())]),
        Reply::ToolCalls(vec![("record_analysis".into(), broken.into())]),
    ]);
    call_and_hang_up(&stage, "analysis-broken").await;

    let record = stage.call_record(LIMIT).await;
    assert!(record.body.get("analysis").is_none(), "{}", record.body);
    let why = record.body["analysis_error"].as_str().expect("the record says why");
    assert!(why.contains("not valid JSON"), "{why}");
    assert_eq!(record.body["transcript"].as_array().map(Vec::len), Some(3), "the record is whole otherwise");

    let asked = analysis_requests(&stage);
    assert_eq!(asked.len(), 2, "asked once more, then given up");
    let retry = asked[1]["messages"].as_array().and_then(|m| m.last()).expect("a message");
    assert!(
        retry["content"].as_str().is_some_and(|c| c.contains("could not be used") && c.contains("JSON")),
        "{retry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_analysis_delays_the_record_only_by_the_profiles_bound() {
    let profiles = tempfile::tempdir().expect("a profiles directory");
    let stage = stage(&profiles).await;
    stage.sarvam.stt_answers([SAID]);
    stage.llm.replies([Reply::Text(ANSWER.into())]);
    let mut caller = stage.call("analysis-slow", METADATA).await;
    caller.agent_said(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, ANSWER);
    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    stage.llm.latency(Duration::from_secs(20));
    let left = Instant::now();
    caller.room.disconnect().await;

    let record = stage.call_record(LIMIT).await;
    assert!(left.elapsed() < Duration::from_secs(15), "held for the 4 s bound, not the model's 20 s");
    assert!(record.body.get("analysis").is_none());
    let why = record.body["analysis_error"].as_str().expect("the record says why");
    assert!(why.contains("no analysis within 4 s"), "{why}");
}
