//! The caller talking over the agent: pause within a frame, interrupt after the minimum, resume
//! after a false alarm, and keep only what was heard.

use super::*;

const LONG: &str = "We have three plans for every budget. The basic plan covers calls and messages. \
                    The premium plan adds roaming and priority support.";

/// A call where the agent is 1 s into a long answer.
fn answering(config: CoreConfig) -> Call {
    let mut call = Call::after_greeting(config);
    call.transcripts([Ok("Tell me about your plans.")]);
    call.replies([Reply::Text(LONG)]);
    call.speak(600);
    call.silence(600);
    call.wait(1_000);
    assert!(call.core.agent_speaking(), "the answer plays");
    call
}

#[test]
fn speech_over_the_agent_pauses_it_within_a_frame_and_interrupts_after_the_minimum() {
    let mut call = answering(config());
    call.transcripts([Ok("Just the cheapest one.")]);
    call.replies([Reply::Text("The basic plan.")]);
    let started = call.elapsed();
    call.speak(1_000);
    let paused = call.when(is_pause).expect("paused");
    assert_eq!(paused - started, ms(60), "paused on the onset (3 frames)");
    let cleared = call.when(is_clear).expect("interrupted");
    assert_eq!(cleared - started, ms(500), "interrupted after min_interrupt_speech");
    call.silence(3_000);
    let lines = call.lines();
    let cut = lines.iter().find(|(speaker, _, interrupted)| *speaker == Speaker::Agent && *interrupted).expect("cut");
    assert!(LONG.starts_with(&cut.1) && cut.1.len() < LONG.len() / 2, "{:?}", cut.1);
    let history = &call.requests.last().expect("asked again").messages;
    let tail: Vec<&str> = history[history.len() - 3..].iter().map(|m| m.content.as_str()).collect();
    assert_eq!(tail, ["Tell me about your plans.", cut.1.as_str(), "Just the cheapest one."]);
    assert_eq!(call.captions().last().map(String::as_str), Some("The basic plan."));
    let turns = call.turns();
    assert!(turns[0].interrupted && !turns[1].interrupted);
}

#[test]
fn a_cough_pauses_and_the_agent_resumes_where_it_stopped() {
    let mut call = answering(config());
    let before = call.played;
    call.speak(300);
    call.silence(4_000);
    call.wait(20_000);
    assert_eq!(call.count(is_pause), 1);
    assert_eq!(call.count(is_resume), 1);
    assert_eq!(call.count(is_clear), 0);
    assert!(call.played > before + ms(3_000));
    assert_eq!(call.captions().last().map(String::as_str), Some(LONG), "nothing lost");
    assert_eq!(call.requests.len(), 1, "the cough was not a turn");
}

#[test]
fn without_words_a_long_noise_does_not_cancel_the_answer() {
    let mut config = config();
    config.min_interruption_words = 1;
    let mut call = answering(config);
    call.transcripts([Ok("")]);
    call.speak(900);
    call.silence(2_000);
    assert_eq!(call.count(is_clear), 0, "no words, no interruption");
    assert_eq!(call.count(is_resume), 1);
    call.wait(20_000);
    assert_eq!(call.captions().last().map(String::as_str), Some(LONG));
    assert_eq!(call.requests.len(), 1);
}

#[test]
fn words_confirm_an_interruption_as_soon_as_they_are_recognised() {
    let mut config = config();
    config.min_interruption_words = 2;
    let mut call = answering(config);
    call.transcripts([Ok("Wait stop, only the cheapest.")]);
    call.replies([Reply::Text("Basic.")]);
    let started = call.elapsed();
    call.speak(600);
    let segment = call
        .outputs()
        .filter_map(|o| match o {
            Output::StartTranscription { segment, .. } => Some(*segment),
            _ => None,
        })
        .last()
        .expect("the interruption is transcribed");
    call.partials.push((segment, ms(700), "wait".into()));
    call.partials.push((segment, ms(900), "wait stop".into()));
    call.speak(1_000);
    let cleared = call.when(is_clear).expect("interrupted by words");
    assert!(cleared - started >= ms(600), "not before the second word: {:?}", cleared - started);
    assert!(cleared - started <= ms(700), "as soon as it came: {:?}", cleared - started);
    call.silence(3_000);
    assert_eq!(call.asked().last().map(String::as_str), Some("Wait stop, only the cheapest."));
}

#[test]
fn a_reply_that_has_not_started_is_replaced_by_the_newer_turn() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("Book a table."), Ok("Actually, two tables.")]);
    call.replies([Reply::Hang, Reply::Text("Two tables it is.")]);
    call.speak(600);
    call.silence(800);
    call.speak(600);
    call.silence(3_000);
    assert_eq!(call.requests.len(), 2);
    assert_eq!(call.captions(), ["Hello! How can I help?", "Two tables it is."]);
    let history = &call.requests[1].messages;
    assert_eq!(history[history.len() - 2].content, "Book a table.");
    assert_eq!(history[history.len() - 1].content, "Actually, two tables.");
}

#[test]
fn the_goodbye_at_the_time_limit_is_not_interrupted() {
    let mut config = config();
    config.limits.max_duration = Some(ms(10_000));
    config.limits.goodbye = "Our time is up, thank you for calling, goodbye.".into();
    let mut call = Call::after_greeting(config);
    call.wait(7_000);
    call.speak(2_000);
    assert_eq!(call.count(is_clear), 0);
    call.silence(4_000);
    assert_eq!(call.hung_up, Some(EndReason::MaxDuration));
    assert_eq!(call.captions().last().map(String::as_str), Some("Our time is up, thank you for calling, goodbye."));
}
