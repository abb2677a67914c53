//! How a call ends on its own: its time limit, silence, a caller with no microphone, and the
//! history's budget.

use super::*;

#[test]
fn at_the_time_limit_the_agent_says_goodbye_and_hangs_up() {
    let mut config = config();
    config.limits.max_duration = Some(ms(10_000));
    config.limits.goodbye = "We have to stop here, goodbye.".into();
    let mut call = Call::after_greeting(config);
    call.transcripts([Ok("Tell me everything.")]);
    call.replies([Reply::Text("There is a lot to say about this, so let me start from the very beginning of it all, long ago in a land far away.")]);
    call.speak(600);
    call.silence(5_000);
    assert_eq!(call.hung_up, None);
    call.wait(4_000);
    assert_eq!(call.hung_up, Some(EndReason::MaxDuration));
    let lines = call.lines();
    assert!(lines[lines.len() - 2].2, "the answer in progress was cut");
    assert_eq!(lines.last().map(|l| l.1.as_str()), Some("We have to stop here, goodbye."));
}

#[test]
fn after_a_silence_the_agent_asks_then_hangs_up() {
    let mut config = config();
    config.limits.silence_prompt = Some(ms(10_000));
    config.limits.silence_hangup = Some(ms(20_000));
    config.limits.still_there = "Are you still there?".into();
    // The greeting ends at 1.2 s: the silence counts from there.
    let mut call = Call::after_greeting(config);
    call.silence(7_000);
    assert_eq!(call.captions().len(), 1);
    call.silence(3_000);
    assert_eq!(call.captions().last().map(String::as_str), Some("Are you still there?"));
    call.silence(6_000);
    assert_eq!(call.hung_up, None);
    call.silence(3_000);
    assert_eq!(call.hung_up, Some(EndReason::Silence));
}

#[test]
fn speech_resets_the_silence_timers() {
    let mut config = config();
    config.limits.silence_prompt = Some(ms(10_000));
    config.limits.silence_hangup = Some(ms(20_000));
    config.limits.still_there = "Are you still there?".into();
    let mut call = Call::after_greeting(config);
    call.transcripts([Ok("Hmm, let me think."), Ok("OK.")]);
    call.replies([Reply::Text("Take your time."), Reply::Text("Sure.")]);
    for _ in 0..3 {
        call.silence(8_000);
        call.speak(600);
    }
    call.silence(3_000);
    assert!(!call.captions().iter().any(|c| c == "Are you still there?"));
    assert_eq!(call.hung_up, None);
}

#[test]
fn a_caller_who_never_shows_a_microphone_is_dropped_without_paid_speech() {
    let mut config = config();
    config.limits.no_audio = Some(ms(15_000));
    let mut call = Call::new(config);
    call.input(Input::Joined { identity: "caller".into(), name: "Bot".into(), agent: false });
    call.wait(14_000);
    assert_eq!(call.hung_up, None);
    call.wait(2_000);
    assert_eq!(call.hung_up, Some(EndReason::NoAudio));
    assert_eq!(call.count(|o| matches!(o, Output::StartJob { .. } | Output::PrepareApology)), 0);
}

#[test]
fn a_long_call_keeps_the_history_within_its_budget() {
    let mut config = config();
    config.history_budget = 300;
    let mut call = Call::after_greeting(config);
    for _ in 0..40 {
        call.transcripts([Ok("This is one more question with a number of words in it to take some room.")]);
        call.replies([Reply::Text("And this is one more answer, also with some words.")]);
        call.speak(600);
        call.silence(4_000);
    }
    assert_eq!(call.requests.len(), 40);
    let first = call.requests[0].messages.len();
    let last = &call.requests[39].messages;
    assert!(last.len() < 40, "{} messages", last.len());
    assert!(last.len() > first);
    assert!(last[0].content.starts_with("You are Aria."));
}
