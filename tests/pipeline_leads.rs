//! Lead capture and call records end to end: the model's functions run during the call, and
//! when the call ends its record reaches n8n with everything a workflow needs.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::agent::Stage;
use support::mocks::openai::Reply;

const LIMIT: Duration = Duration::from_secs(30);
const REAL_ESTATE: &str = r#"{"agentId":"realestate-en"}"#;

fn tool_messages(body: &Value) -> Vec<Value> {
    body["messages"].as_array().map(|m| m.iter().filter(|m| m["role"] == "tool").cloned().collect()).unwrap_or_default()
}

fn tool_result(message: &Value) -> Value {
    serde_json::from_str(message["content"].as_str().expect("a tool result is text")).expect("tool results are JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_the_caller_gives_become_the_lead_in_the_call_record() {
    let stage = Stage::start().await;
    let said = "I'm Asha Rao, my number is 98765 43210.";
    stage.sarvam.stt_answers([said]);
    let answer = "Thank you, Asha. Which of our projects interests you?";
    stage.llm.replies([
        Reply::ToolCalls(vec![("capture_lead".into(), r#"{"name":"Asha Rao","phone":"98765 43210"}"#.into())]),
        Reply::Text(answer.into()),
    ]);
    let mut caller = stage.call("lead", REAL_ESTATE).await;
    let greeting = caller.agent_said(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, answer, "the model's answer after the function ran is spoken");

    let asked = stage.llm.records();
    assert_eq!(asked.len(), 2, "the model is asked again with the function's result");
    let offered: Vec<&str> = asked[0].body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(offered, ["capture_lead", "end_call"]);
    let properties = &asked[0].body["tools"][0]["function"]["parameters"]["properties"];
    assert!(properties["site_visit_time"].is_object(), "the profile's lead fields are the parameters: {properties}");
    let results = tool_messages(&asked[1].body);
    assert_eq!(results.len(), 1);
    assert_eq!(tool_result(&results[0])["ok"], true, "{}", results[0]);
    let calls = &asked[1].body["messages"];
    let call_message = calls.as_array().and_then(|m| m.iter().find(|m| m["tool_calls"].is_array())).expect("a call");
    assert_eq!(call_message["tool_calls"][0]["id"], results[0]["tool_call_id"], "the result answers the call");

    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    caller.room.disconnect().await;
    let record = stage.call_record(LIMIT).await;
    assert_eq!(record.body["agent_id"], "realestate-en");
    assert_eq!(record.body["room"], "lead");
    assert_eq!(record.body["language"], "en-IN");
    assert_eq!(record.body["end_reason"], "caller_left");
    assert_eq!(record.body["caller"], json!({"identity": "caller", "name": "Caller"}));
    assert_eq!(record.body["lead"], json!({"name": "Asha Rao", "phone": "9876543210"}));
    assert_eq!(record.body["lead_missing"], json!([]), "both required fields were captured");
    let transcript: Vec<(String, String)> = record.body["transcript"]
        .as_array()
        .expect("a transcript")
        .iter()
        .map(|l| (l["speaker"].as_str().unwrap_or("").to_owned(), l["text"].as_str().unwrap_or("").to_owned()))
        .collect();
    let expected = [("agent", greeting.as_str()), ("caller", said), ("agent", answer)];
    assert_eq!(transcript, expected.map(|(s, t)| (s.to_owned(), t.to_owned())));
    assert_eq!(record.body["latency"]["answered_turns"], 1);
    assert!(record.body["latency"]["voice_to_voice_ms"]["p50"].as_u64().is_some(), "{}", record.body["latency"]);
    assert!(record.body["duration_seconds"].as_f64().is_some_and(|d| d > 1.0));
    let call_id = record.body["call_id"].as_str().expect("a call id");
    assert!(call_id.starts_with("AJ_"), "the call id is the job id: {call_id}");
    assert_eq!(record.idempotency_key.as_deref(), Some(call_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misheard_phone_number_goes_back_to_the_model_and_the_call_goes_on() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers(["My number is nine eight seven six five."]);
    let answer = "Sorry, I missed some digits. Could you repeat your number?";
    stage.llm.replies([
        Reply::ToolCalls(vec![("capture_lead".into(), r#"{"phone":"98765","budget":"90 lakh"}"#.into())]),
        Reply::Text(answer.into()),
    ]);
    let mut caller = stage.call("misheard", REAL_ESTATE).await;
    caller.agent_said(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, answer);

    let asked = stage.llm.records();
    let result = tool_result(&tool_messages(&asked[1].body)[0]);
    assert_eq!(result["ok"], false);
    let problem = result["errors"][0]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("5 digits") && problem.contains("repeat"), "the model learns what was wrong: {result}");
    assert_eq!(result["saved"], json!({"budget": "90 lakh"}), "the valid field is kept");

    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    caller.room.disconnect().await;
    let record = stage.call_record(LIMIT).await;
    assert_eq!(record.body["lead"], json!({"budget": "90 lakh"}));
    assert_eq!(record.body["lead_missing"], json!(["name", "phone"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_says_goodbye_then_leaves_and_the_record_says_so() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers(["That's all, thank you."]);
    let goodbye = "You're welcome. Have a lovely day, goodbye!";
    stage.llm.replies([
        Reply::ToolCalls(vec![("end_call".into(), r#"{"reason":"the caller is done"}"#.into())]),
        Reply::Text(goodbye.into()),
    ]);
    let mut caller = stage.call("goodbye", "").await;
    caller.agent_said(1, LIMIT).await;
    // One short phrase: a longer one with pauses could, on a stalled machine, end as two turns,
    // and the second would rightly cancel the goodbye before it is spoken.
    caller.say(&support::audio::speech_clip(0.9, 2.6)).await;
    caller.until("the agent to leave", LIMIT, |h| h.agent_left.is_some()).await;
    // The transcript's last packets travel on the data channel and may land after the leave.
    caller
        .until("the goodbye's transcript", LIMIT, |h| h.segments.iter().any(|s| s.is_final && s.text == goodbye))
        .await;
    let (last_audio, left) = caller.heard(|h| {
        let loud = h.audio.iter().rev().find(|(_, s)| s.iter().any(|v| v.unsigned_abs() > 100)).map(|(at, _)| *at);
        (loud.expect("the agent was heard"), h.agent_left.expect("waited for above"))
    });
    assert!(left >= last_audio, "the agent left only after its goodbye had played");

    let record = stage.call_record(LIMIT).await;
    assert_eq!(record.body["end_reason"], "agent_ended");
    let last = record.body["transcript"].as_array().and_then(|t| t.last().cloned()).expect("a transcript");
    assert_eq!(last, json!({"speaker": "agent", "text": goodbye, "at": last["at"], "interrupted": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_caller_cut_off_is_marked_interrupted_in_the_record() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers(["Tell me about the flats.", "Just the prices, please."]);
    let long = "We have two projects. Skyline Greens in Bangalore has two and three bedroom flats. \
                Skyline Heights in Pune has the same, with a clubhouse, a pool and a park. \
                Both are ready to move in next year, and site visits run every day.";
    stage.llm.replies([Reply::Text(long.into()), Reply::Text("Prices start at ninety lakh.".into())]);
    let mut caller = stage.call("cut-off", REAL_ESTATE).await;
    caller.agent_said(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 2.6)).await;
    let greeting = caller.settled_speech_seconds(LIMIT).await;
    caller.until("the agent to speak", LIMIT, |h| h.states.last().is_some_and(|s| s == "speaking")).await;
    caller.until("a second of the answer", LIMIT, |h| h.agent_speech_seconds() > greeting + 1.5).await;
    caller.say(&support::audio::speech_clip(0.9, 2.6)).await;
    assert_eq!(caller.agent_said(3, LIMIT).await, "Prices start at ninety lakh.");
    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    caller.room.disconnect().await;

    let record = stage.call_record(LIMIT).await;
    let agent: Vec<&Value> = record.body["transcript"]
        .as_array()
        .expect("a transcript")
        .iter()
        .filter(|l| l["speaker"] == "agent")
        .collect();
    assert_eq!(agent.len(), 3, "{:#?}", record.body["transcript"]);
    assert_eq!(agent[1]["interrupted"], true);
    let heard = agent[1]["text"].as_str().unwrap_or_default();
    assert!(!heard.is_empty() && long.starts_with(heard) && heard.len() < long.len(), "only what was heard: {heard}");
    assert_eq!(agent[2]["interrupted"], false);
    assert_eq!(record.body["latency"]["interrupted_turns"], 1);
}
