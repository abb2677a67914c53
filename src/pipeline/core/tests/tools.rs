//! Function calls: built-in lead capture and hang-up, tools the shell runs, rounds and their
//! limit, fillers, and barge-in while a tool runs.

use serde_json::Value;

use super::*;

fn tool(name: &str, side_effects: bool, filler: Option<&str>) -> ExternalTool {
    ExternalTool {
        spec: ToolSpec {
            name: name.into(),
            description: format!("{name} for tests"),
            parameters: serde_json::json!({"type": "object"}),
        },
        side_effects,
        filler: filler.map(str::to_owned),
    }
}

fn output(result: &str) -> ToolOutput {
    ToolOutput { result: result.into(), say: None, end_call: false }
}

/// The messages of the latest request after the caller's last words.
fn after_user(call: &Call) -> Vec<ChatMessage> {
    let messages = &call.requests.last().expect("asked").messages;
    let user = messages.iter().rposition(|m| m.role == crate::providers::llm::Role::User).expect("a user message");
    messages[user + 1..].to_vec()
}

#[test]
fn a_lead_is_captured_and_the_model_is_asked_again_with_the_result() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("I'm Asha.")]);
    call.replies([Reply::Calls("", vec![("capture_lead", r#"{"name":"Asha"}"#)]), Reply::Text("Thank you, Asha.")]);
    call.speak(600);
    call.silence(3_000);
    assert_eq!(call.core.lead().captured().get("name").map(String::as_str), Some("Asha"));
    assert_eq!(call.requests.len(), 2);
    let exchange = after_user(&call);
    assert_eq!(exchange[0].tool_calls[0].name, "capture_lead");
    assert_eq!(exchange[1].role, crate::providers::llm::Role::Tool);
    let result: Value = serde_json::from_str(&exchange[1].content).expect("JSON");
    assert_eq!(result["ok"], true);
    assert_eq!(call.captions().last().map(String::as_str), Some("Thank you, Asha."));
    assert_eq!(call.turns().len(), 1, "one turn, whatever the rounds");
}

#[test]
fn the_rounds_stop_at_the_limit() {
    let mut config = config();
    config.max_tool_rounds = 3;
    let mut call = Call::after_greeting(config);
    call.transcripts([Ok("Loop forever.")]);
    let looping = || Reply::Calls("", vec![("capture_lead", r#"{"name":"A"}"#)]);
    call.replies([looping(), looping(), looping(), looping(), looping()]);
    call.speak(600);
    call.silence(3_000);
    assert_eq!(call.requests.len(), 3);
    assert_eq!(call.states().last(), Some(&AgentState::Listening), "the answer ended");
}

#[test]
fn end_call_hangs_up_after_the_goodbye_is_heard() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("That's all, bye.")]);
    call.replies([Reply::Calls("Goodbye and take care.", vec![("end_call", "{}")]), Reply::Text("")]);
    call.speak(600);
    call.silence(600);
    assert_eq!(call.hung_up, None, "not before the goodbye played");
    call.wait(3_000);
    assert_eq!(call.hung_up, Some(EndReason::AgentEnded));
    assert_eq!(call.captions().last().map(String::as_str), Some("Goodbye and take care."));
}

#[test]
fn a_caller_who_cuts_the_goodbye_off_keeps_the_call() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("That's all, bye."), Ok("Wait, one more thing.")]);
    call.replies([
        Reply::Calls("Goodbye and take care, it was lovely to talk with you today.", vec![("end_call", "{}")]),
        Reply::Text(""),
        Reply::Text("Of course."),
    ]);
    call.speak(600);
    call.silence(1_000);
    call.speak(1_000);
    call.silence(3_000);
    assert_eq!(call.hung_up, None);
    assert_eq!(call.captions().last().map(String::as_str), Some("Of course."));
}

#[test]
fn tools_of_one_round_run_together_and_a_slow_one_gets_the_filler_once() {
    let mut config = config();
    config.tools = vec![tool("check_slots", false, Some("Let me check the calendar.")), tool("weather", false, None)];
    let mut call = Call::after_greeting(config);
    call.transcripts([Ok("Any slots tomorrow?")]);
    call.replies([
        Reply::Calls("", vec![("check_slots", r#"{"day":"tomorrow"}"#), ("weather", "{}")]),
        Reply::Text("Ten or eleven."),
    ]);
    call.tool_results([(ms(2_000), output(r#"{"slots":["10:00","11:00"]}"#)), (ms(50), output(r#"{"sunny":true}"#))]);
    call.speak(600);
    call.silence(600);
    let calls = call.count(|o| matches!(o, Output::CallTool { .. }));
    assert_eq!(calls, 2, "both run at once");
    call.silence(4_000);
    let fillers = call
        .count(|o| matches!(o, Output::StartJob { work: Job::Say(text), .. } if text == "Let me check the calendar."));
    assert_eq!(fillers, 1);
    let exchange = after_user(&call);
    assert_eq!(exchange.len(), 3, "the calls, then both results in order: {exchange:?}");
    assert!(exchange[1].content.contains("slots") && exchange[2].content.contains("sunny"));
    let captions = call.captions();
    assert_eq!(captions.last().map(String::as_str), Some("Let me check the calendar. Ten or eleven."));
}

#[test]
fn a_quick_tool_needs_no_filler() {
    let mut config = config();
    config.tools = vec![tool("check_slots", false, None)];
    let mut call = Call::after_greeting(config);
    call.transcripts([Ok("Slots?")]);
    call.replies([Reply::Calls("", vec![("check_slots", "{}")]), Reply::Text("Ten.")]);
    call.tool_results([(ms(300), output("{}"))]);
    call.speak(600);
    call.silence(3_000);
    assert_eq!(
        call.count(|o| matches!(o, Output::StartJob { work: Job::Say(text), .. } if text == "One moment please.")),
        0
    );
}

#[test]
fn a_tool_may_speak_and_end_the_call() {
    let mut config = config();
    config.tools = vec![tool("book", true, None)];
    let mut call = Call::after_greeting(config);
    call.transcripts([Ok("Book ten o'clock.")]);
    call.replies([Reply::Calls("", vec![("book", r#"{"slot":"10:00"}"#)]), Reply::Text("")]);
    let booked =
        ToolOutput { result: r#"{"booked":true}"#.into(), say: Some("You are booked for ten.".into()), end_call: true };
    call.tool_results([(ms(100), booked)]);
    call.speak(600);
    call.silence(600);
    call.wait(4_000);
    assert!(call.captions().last().is_some_and(|c| c.contains("You are booked for ten.")));
    assert_eq!(call.hung_up, Some(EndReason::AgentEnded));
    let result: Value = serde_json::from_str(&after_user(&call)[1].content).expect("JSON");
    assert_eq!(result["said_to_caller"], "You are booked for ten.");
}

#[test]
fn an_unknown_function_is_explained_to_the_model() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("Hi")]);
    call.replies([Reply::Calls("", vec![("launch_rocket", "{}")]), Reply::Text("Sorry.")]);
    call.speak(600);
    call.silence(3_000);
    let exchange = after_user(&call);
    assert!(exchange[1].content.contains("no function named `launch_rocket`"), "{}", exchange[1].content);
    assert!(exchange[1].content.contains("capture_lead"));
}

#[test]
fn barge_in_cancels_a_lookup_but_never_a_booking() {
    let mut config = config();
    config.tools = vec![tool("lookup", false, None), tool("book", true, None)];
    let mut call = Call::after_greeting(config);
    call.transcripts([Ok("Book it."), Ok("Never mind.")]);
    call.replies([
        Reply::Calls(
            "Alright, I am booking that slot for you right now, just a moment.",
            vec![("lookup", "{}"), ("book", "{}")],
        ),
        Reply::Text("OK."),
    ]);
    call.tool_results([(ms(5_000), output("{\"found\":1}")), (ms(5_000), output("{\"booked\":true}"))]);
    call.speak(600);
    call.silence(1_200);
    call.speak(1_000);
    let cancelled = call.count(|o| matches!(o, Output::CancelTool { .. }));
    assert_eq!(cancelled, 1, "only the lookup is cancelled");
    call.silence(6_000);
    let after = call.core.history.messages(call.core.lead().captured());
    assert!(after.iter().any(|m| m.content.contains("booked")), "the booking's result reached the history");
    assert!(!after.iter().any(|m| m.content.contains("found")), "the cancelled lookup left nothing");
}
