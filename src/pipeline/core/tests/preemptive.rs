//! Answering sooner: the model asked at a likely end, end-of-turn waits chosen from the words.

use super::*;

fn fast() -> CoreConfig {
    let mut config = config();
    config.turn.likely_end = Some(ms(200));
    config.preemptive = true;
    config.endpointing = Some(Endpointing { complete: ms(300), default: ms(500), unfinished: ms(1_200) });
    config
}

#[test]
fn the_model_is_asked_at_a_likely_end_and_its_answer_released_when_the_turn_ends() {
    let mut call = Call::after_greeting(fast());
    call.stt_delay = ms(30);
    call.transcripts([Ok("What time do you open?")]);
    call.replies([Reply::Text("At nine.")]);
    let start = call.elapsed();
    call.speak(1_000);
    call.silence(150);
    assert!(call.requests.is_empty());
    call.silence(100);
    assert_eq!(call.asked(), ["What time do you open?"], "asked before the turn ended");
    assert!(call.outputs().any(|o| matches!(o, Output::StartJob { work: Job::Generate { hold: true, .. }, .. })));
    call.silence(3_000);
    let released = call.when(|o| matches!(o, Output::Release { .. })).expect("released");
    // A complete sentence: 300 ms of silence ends the turn (not 500).
    assert_eq!(released - start, ms(1_000 + 300));
    assert_eq!(call.requests.len(), 1, "one request");
    assert_eq!(call.captions().last().map(String::as_str), Some("At nine."));
    let turns = call.turns();
    assert_eq!(turns[0].end_of_utterance_ms, Some(300));
    assert!(turns[0].voice_to_voice_ms.is_some_and(|v| v <= 340), "{:?}", turns[0]);
}

#[test]
fn a_caller_who_goes_on_gets_one_answer_to_everything() {
    let mut call = Call::after_greeting(fast());
    call.transcripts([Ok("My number is 98765"), Ok("43210.")]);
    call.replies([Reply::Hang]);
    call.replies([Reply::Text("Got it.")]);
    call.speak(1_000);
    call.silence(900);
    assert_eq!(call.requests.len(), 1, "the draft was asked");
    assert!(call.when(|o| matches!(o, Output::Release { .. })).is_none(), "a number being read: the turn waits");
    call.speak(800);
    call.silence(3_000);
    assert!(call.outputs().any(|o| matches!(o, Output::CancelJob { .. })), "the draft is dropped");
    assert_eq!(call.asked().last().map(String::as_str), Some("My number is 98765 43210."));
    assert_eq!(call.captions().last().map(String::as_str), Some("Got it."));
    assert_eq!(call.lines().iter().filter(|l| l.0 == Speaker::Caller).count(), 1);
}

#[test]
fn after_and_the_agent_waits_longer() {
    let mut call = Call::after_greeting(fast());
    call.transcripts([Ok("I want to book and"), Ok("also ask about prices.")]);
    call.replies([Reply::Text("x"), Reply::Text("Sure.")]);
    call.speak(800);
    call.silence(1_000);
    assert!(call.lines().iter().all(|l| l.0 != Speaker::Caller), "still the caller's turn after 1 s");
    call.speak(800);
    call.silence(3_000);
    assert_eq!(
        call.lines().iter().filter(|l| l.0 == Speaker::Caller).map(|l| l.1.clone()).collect::<Vec<_>>(),
        ["I want to book and also ask about prices."]
    );
}

#[test]
fn without_preemption_the_model_waits_for_the_end_of_turn() {
    let mut config = fast();
    config.preemptive = false;
    let mut call = Call::after_greeting(config);
    call.transcripts([Ok("Hello there.")]);
    call.speak(1_000);
    call.silence(250);
    assert!(call.requests.is_empty());
    call.silence(200);
    assert_eq!(call.requests.len(), 1, "asked at the shorter, adapted end of turn");
}

#[test]
fn words_that_add_nothing_keep_the_prepared_answer() {
    let mut call = Call::after_greeting(fast());
    call.transcripts([Ok("Book me for Monday."), Ok("")]);
    call.replies([Reply::Text("Monday it is.")]);
    call.speak(1_000);
    call.silence(350);
    call.speak(200);
    call.silence(3_000);
    assert_eq!(call.requests.len(), 1, "the draft answered the turn");
    assert_eq!(call.count(|o| matches!(o, Output::CancelJob { .. })), 0);
    assert_eq!(call.captions().last().map(String::as_str), Some("Monday it is."));
}
