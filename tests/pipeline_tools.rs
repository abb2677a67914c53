//! A profile's webhook tools and prompt variables in whole calls: the worker on the dev server
//! with the provider mocks, its tools answered by webhooks that behave as n8n does.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::agent::Stage;
use support::mocks::openai::Reply;
use support::mocks::tool_hooks::{Hook, MockToolHooks};
use voice_agent::config::Secret;

const LIMIT: Duration = Duration::from_secs(30);
const SECRET: &str = "whsec_pipeline_tools";
const METADATA: &str = r#"{"agentId":"tools-test","variables":{"plan":"gold"}}"#;
/// The Hindi filler, said while a tool without its own filler is slow.
const FILLER: &str = "एक मिनट, अभी देखकर बताते हैं।";
const BOOKING_FILLER: &str = "बुकिंग कर रहे हैं, एक पल।";

const PROFILE: &str = r#"
name = "Sunita"
language = "hi-IN"
voice = "manisha"
greeting = "नमस्ते {{caller_name}}! मैं {{agent_name}} हूँ।"
system_prompt = """
You are {{agent_name}}, a clinic receptionist. Today is {{weekday}}, {{today}}. The caller is {{caller_name}}, \
a {{plan}} member. The clinic is on floor {{floor}}.{{referral_code}}
"""
filler_after_ms = 300

[variables]
floor = "2"

[[lead_fields]]
name = "phone"
kind = "phone"

[[tools]]
name = "check_availability"
description = "Free appointment slots of a day."
webhook = "/webhook/availability"
timeout_ms = 4000
[tools.parameters]
type = "object"
required = ["date"]
[tools.parameters.properties.date]
type = "string"
description = "The day, YYYY-MM-DD."

[[tools]]
name = "book_slot"
description = "Books a slot."
webhook = "/webhook/book"
side_effects = true
filler = "बुकिंग कर रहे हैं, एक पल।"
[tools.parameters]
type = "object"
required = ["date", "time"]
[tools.parameters.properties.date]
type = "string"
[tools.parameters.properties.time]
type = "string"
"#;

struct ToolStage {
    stage: Stage,
    hooks: MockToolHooks,
    _profiles: tempfile::TempDir,
}

async fn stage() -> ToolStage {
    let profiles = tempfile::tempdir().expect("a profiles directory");
    std::fs::write(profiles.path().join("tools-test.toml"), PROFILE).expect("profile written");
    let default = std::fs::read(support::repo_path("profiles/default.toml")).expect("the default profile");
    std::fs::write(profiles.path().join("default.toml"), default).expect("written");
    let hooks = MockToolHooks::start().await;
    let store = support::worker::profiles_in(profiles.path());
    let stage = Stage::start_with_tools(store, Some(hooks.base_url()), Some(Secret::new(SECRET))).await;
    ToolStage { stage, hooks, _profiles: profiles }
}

fn tool_results(body: &Value) -> Vec<Value> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "tool")
        .map(|m| serde_json::from_str(m["content"].as_str().expect("text")).expect("tool results are JSON"))
        .collect()
}

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_lookup_is_covered_by_the_filler_and_its_answer_reaches_the_model() {
    let ToolStage { stage, hooks, .. } = stage().await;
    stage.sarvam.stt_answers(["क्या सोमवार को कोई समय खाली है?"]);
    let answer = "सोमवार को साढ़े दस बजे का समय खाली है।";
    stage.llm.replies([
        Reply::ToolCalls(vec![("check_availability".into(), r#"{"date":"2026-11-23"}"#.into())]),
        Reply::Text(answer.into()),
    ]);
    let free = Hook::Json(StatusCode::OK, r#"{"date":"2026-11-23","free":["10:30"]}"#.into());
    hooks.answer("availability", [Hook::Slow(Duration::from_millis(1_500), Box::new(free))]);
    let zone = chrono_tz::Asia::Kolkata;
    let today_before = chrono::Utc::now().with_timezone(&zone).format("%A, %Y-%m-%d").to_string();

    let mut caller = stage.call("tools-slow", METADATA).await;
    assert_eq!(caller.agent_said(1, LIMIT).await, "नमस्ते Caller! मैं Sunita हूँ।", "the greeting's placeholders");
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    assert_eq!(
        caller.agent_said(2, LIMIT).await,
        format!("{FILLER} {answer}"),
        "the slow tool is covered once, in the call's language, then answered"
    );
    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;

    let asked = stage.llm.records();
    let system = asked[0].body["messages"][0]["content"].as_str().expect("a system prompt").to_owned();
    let today_after = chrono::Utc::now().with_timezone(&zone).format("%A, %Y-%m-%d").to_string();
    assert!(
        system.contains(&format!("Today is {today_before}.")) || system.contains(&format!("Today is {today_after}.")),
        "today in the profile's time zone: {system}"
    );
    assert!(system.contains("The caller is Caller, a gold member. The clinic is on floor 2."), "{system}");
    assert!(!system.contains("{{"), "a placeholder without a value is left empty: {system}");
    let offered: Vec<&str> = asked[0].body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(offered, ["capture_lead", "end_call", "check_availability", "book_slot"]);
    assert_eq!(tool_results(&asked[1].body), [json!({"date": "2026-11-23", "free": ["10:30"]})]);

    let sent = hooks.requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    let call_id = body["call_id"].as_str().expect("a call id").to_owned();
    assert!(call_id.starts_with("AJ_"), "{body}");
    assert_eq!(body["agent_id"], "tools-test");
    assert_eq!(body["tool"], "check_availability");
    assert_eq!(body["arguments"], json!({"date": "2026-11-23"}));
    assert_eq!(body["caller"], json!({"identity": "caller", "name": "Caller"}));
    assert_eq!(body["lead"], json!({}));
    assert_eq!(sent[0].header("idempotency-key"), Some(format!("{call_id}:call_mock_0").as_str()));
    assert_eq!(sent[0].header("x-signature-256"), Some(signature(&sent[0].body).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_of_one_answer_run_together_and_a_booking_speaks_its_own_words() {
    let ToolStage { stage, hooks, .. } = stage().await;
    stage.sarvam.stt_answers(["सोमवार साढ़े दस बजे बुक कर दीजिए।"]);
    let answer = "और कुछ मदद कर सकती हूँ?";
    stage.llm.replies([
        Reply::ToolCalls(vec![
            ("check_availability".into(), r#"{"date":"2026-11-23"}"#.into()),
            ("book_slot".into(), r#"{"date":"2026-11-23","time":"10:30"}"#.into()),
        ]),
        Reply::Text(answer.into()),
    ]);
    let said = "आपकी बुकिंग सोमवार साढ़े दस बजे की हो गई है।";
    let wait = Duration::from_millis(1_200);
    let free = Hook::Json(StatusCode::OK, r#"{"free":["10:30"]}"#.into());
    let booked = Hook::Json(StatusCode::OK, format!(r#"{{"booked":true,"booking_id":"BK-7","say":"{said}"}}"#));
    hooks.answer("availability", [Hook::Slow(wait, Box::new(free))]);
    hooks.answer("book", [Hook::Slow(wait, Box::new(booked))]);

    let mut caller = stage.call("tools-together", METADATA).await;
    caller.agent_said(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    assert_eq!(
        caller.agent_said(2, LIMIT).await,
        format!("{BOOKING_FILLER} {said} {answer}"),
        "the booking's own filler once, the booking's words, then the model's answer"
    );

    let sent = hooks.requests();
    assert_eq!(sent.len(), 2, "one request per call of the round");
    let last_arrival = sent.iter().map(|r| r.at).max().expect("two");
    let first_answer = ["availability", "book"].iter().flat_map(|p| hooks.answered(p)).min().expect("answered");
    assert!(last_arrival < first_answer, "both tools were running before either answered");

    let results = tool_results(&stage.llm.records()[1].body);
    assert_eq!(results[0], json!({"free": ["10:30"]}));
    assert_eq!(results[1]["said_to_caller"], said, "the model knows what the caller heard");
    assert_eq!(results[1]["result"], json!({"booked": true, "booking_id": "BK-7"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_answers_too_early_is_explained_to_the_model_and_the_call_goes_on() {
    let ToolStage { stage, hooks, .. } = stage().await;
    stage.sarvam.stt_answers(["कल का समय बताइए।"]);
    let answer = "माफ़ कीजिए, अभी समय देख नहीं पा रही हूँ। क्या मैं आपको वापस फ़ोन करवाऊँ?";
    stage.llm.replies([
        Reply::ToolCalls(vec![("check_availability".into(), r#"{"date":"2026-11-24"}"#.into())]),
        Reply::Text(answer.into()),
    ]);
    hooks.answer("availability", [Hook::WorkflowStarted]);
    let mut caller = stage.call("tools-failing", METADATA).await;
    caller.agent_said(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, answer, "the tool answered at once: no filler");
    let result = &tool_results(&stage.llm.records()[1].body)[0];
    assert_eq!(result["ok"], false);
    assert!(result["error"].as_str().is_some_and(|e| e.contains("Workflow was started")), "{result}");

    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    caller.room.disconnect().await;
    let record = stage.call_record(LIMIT).await;
    assert_eq!(record.body["end_reason"], "caller_left", "the failure did not end the call");
    assert!(record.body.get("analysis").is_none() && record.body.get("analysis_error").is_none(), "none asked for");
}
