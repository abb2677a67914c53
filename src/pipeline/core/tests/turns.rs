//! Greeting, one answer per turn, the history, states, typed messages and failures.

use super::*;

#[test]
fn the_caller_is_greeted_when_their_microphone_arrives_and_not_before() {
    let mut call = Call::new(config());
    call.input(Input::Joined { identity: "caller".into(), name: "Asha".into(), agent: false });
    call.wait(1_000);
    assert_eq!(
        call.count(|o| matches!(o, Output::StartJob { .. } | Output::PrepareApology)),
        0,
        "nothing paid before audio"
    );
    call.input(Input::Track { identity: "caller".into(), track: "TR_mic".into() });
    assert!(
        call.outputs()
            .any(|o| matches!(o, Output::StartJob { work: Job::Say(text), .. } if text == "Hello! How can I help?"))
    );
    assert!(call.outputs().any(|o| matches!(o, Output::PrepareApology)));
    call.wait(3_000);
    assert_eq!(call.captions(), ["Hello! How can I help?"]);
    assert_eq!(call.lines(), [(Speaker::Agent, "Hello! How can I help?".to_owned(), false)]);
    assert_eq!(
        call.states(),
        [AgentState::Listening, AgentState::Thinking, AgentState::Speaking, AgentState::Listening]
    );
}

#[test]
fn an_agents_track_is_never_listened_to() {
    let mut call = Call::new(config());
    call.input(Input::Joined { identity: "agent-x".into(), name: "Other".into(), agent: true });
    call.input(Input::Track { identity: "agent-x".into(), track: "TR_other".into() });
    assert_eq!(call.listening, None);
    assert_eq!(call.count(|o| matches!(o, Output::StartJob { .. })), 0);
}

#[test]
fn one_turn_gets_one_answer_with_the_history_in_order() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("What time do you open?")]);
    call.replies([Reply::Text("We open at nine.")]);
    call.speak(1_200);
    call.silence(3_000);
    assert_eq!(call.requests.len(), 1);
    let messages: Vec<(Role, String)> = call.requests[0].messages.iter().map(|m| (m.role, m.content.clone())).collect();
    use crate::providers::llm::Role;
    assert_eq!(
        messages,
        [
            (Role::System, "You are Aria.".to_owned()),
            (Role::Assistant, "Hello! How can I help?".to_owned()),
            (Role::User, "What time do you open?".to_owned()),
        ]
    );
    assert_eq!(call.captions(), ["Hello! How can I help?", "We open at nine."]);
    let lines = call.lines();
    assert_eq!(lines[1], (Speaker::Caller, "What time do you open?".into(), false));
    assert_eq!(lines[2], (Speaker::Agent, "We open at nine.".into(), false));
    let turns = call.turns();
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0].end_of_utterance_ms, Some(500));
    assert_eq!(turns[0].stt_ms, Some(100));
    assert!(turns[0].voice_to_voice_ms.is_some_and(|v2v| (600..=700).contains(&v2v)), "{:?}", turns[0]);
    let states = call.states();
    assert_eq!(&states[states.len() - 3..], [AgentState::Thinking, AgentState::Speaking, AgentState::Listening]);
}

#[test]
fn the_audio_goes_to_speech_to_text_once_with_a_short_tail() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("Hello")]);
    call.silence(400);
    call.speak(1_000);
    call.silence(2_000);
    let audio: usize = call
        .outputs()
        .map(|o| match o {
            Output::StartTranscription { audio, .. } | Output::Transcribe { audio, .. } => audio.len(),
            _ => 0,
        })
        .sum();
    // 300 ms of pre-roll, the 1 s of speech, 100 ms of tail: 1.4 s at 16 kHz.
    assert_eq!(audio, 16 * 1_400);
    assert_eq!(call.count(|o| matches!(o, Output::FinishTranscription { .. })), 1);
}

#[test]
fn a_greeting_cut_by_the_caller_keeps_only_what_was_heard() {
    let mut config = config();
    config.greeting = "Hello and welcome to the clinic, how may I help you today?".into();
    let mut call = Call::with_caller(config);
    call.transcripts([Ok("I need an appointment.")]);
    call.replies([Reply::Text("Sure.")]);
    call.silence(900);
    call.speak(1_000);
    call.silence(2_000);
    let lines = call.lines();
    assert_eq!(lines[0].0, Speaker::Agent);
    assert!(lines[0].2, "the greeting is marked interrupted");
    assert!(lines[0].1.starts_with("Hello and") && lines[0].1.len() < 30, "{:?}", lines[0].1);
    let history = &call.requests[0].messages;
    assert_eq!(history[1].content, lines[0].1, "the history keeps what the caller heard");
    assert_eq!(history[2].content, "I need an appointment.");
}

#[test]
fn speech_while_the_agent_thinks_joins_the_same_turn() {
    let mut call = Call::after_greeting(config());
    call.stt_delay = ms(800);
    call.transcripts([Ok("I'd like a table"), Ok("for four people.")]);
    call.replies([Reply::Text("Done.")]);
    call.speak(800);
    call.silence(600);
    call.speak(800);
    call.silence(3_000);
    assert_eq!(call.requests.len(), 1, "one answer for both utterances");
    assert_eq!(call.asked(), ["I'd like a table for four people."]);
    assert_eq!(call.lines()[1].1, "I'd like a table for four people.");
}

#[test]
fn a_cough_is_not_a_turn() {
    let mut call = Call::after_greeting(config());
    call.speak(100);
    call.silence(2_000);
    assert!(call.requests.is_empty());
    assert_eq!(call.count(|o| matches!(o, Output::AbandonTranscription { .. })), 1);
}

#[test]
fn an_empty_transcript_is_not_answered() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("  ")]);
    call.speak(600);
    call.silence(2_000);
    assert!(call.requests.is_empty());
    assert_eq!(call.states().last(), Some(&AgentState::Listening));
}

#[test]
fn a_failed_transcription_gets_the_apology() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Err("speech-to-text timed out")]);
    call.speak(600);
    call.silence(3_000);
    assert!(call.requests.is_empty());
    assert!(call.outputs().any(|o| matches!(o, Output::StartJob { work: Job::PlayApology, .. })));
    assert_eq!(call.captions().last().map(String::as_str), Some("Sorry, say that again?"));
}

#[test]
fn a_failed_model_gets_the_apology_and_the_call_goes_on() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("Hello?"), Ok("Are you there?")]);
    call.replies([Reply::Fail, Reply::Text("Yes, I am here.")]);
    call.speak(600);
    call.silence(3_000);
    assert_eq!(call.captions().last().map(String::as_str), Some("Sorry, say that again?"));
    call.speak(600);
    call.silence(3_000);
    assert_eq!(call.captions().last().map(String::as_str), Some("Yes, I am here."));
}

#[test]
fn the_apology_is_synthesised_when_it_was_not_rehearsed() {
    let mut call = Call::after_greeting(config());
    call.input(Input::ApologyReady(false));
    call.transcripts([Ok("Hello?")]);
    call.replies([Reply::Fail]);
    call.speak(600);
    call.silence(3_000);
    assert!(
        call.outputs()
            .any(|o| matches!(o, Output::StartJob { work: Job::Say(text), .. } if text == "Sorry, say that again?"))
    );
}

#[test]
fn a_synthesis_failure_mid_answer_keeps_what_played_and_apologises() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("Tell me everything.")]);
    call.replies([Reply::Hang]);
    call.speak(600);
    call.silence(800);
    let job = call
        .outputs()
        .filter_map(|o| match o {
            Output::StartJob { job, work: Job::Generate { .. }, .. } => Some(*job),
            _ => None,
        })
        .last()
        .expect("the answer started");
    call.input(Input::Job { job, event: JobEvent::FirstToken });
    let start = call.played;
    call.input(Input::Job { job, event: JobEvent::Sentence { text: "First part.".into(), start, duration: ms(600) } });
    call.queue_until(start + ms(600));
    call.input(Input::Job { job, event: JobEvent::Failed { stage: Stage::Tts, error: "socket closed".into() } });
    call.silence(3_000);
    let lines = call.lines();
    assert!(lines.iter().any(|(speaker, text, _)| *speaker == Speaker::Agent && text == "First part."), "{lines:?}");
    assert_eq!(call.captions().last().map(String::as_str), Some("Sorry, say that again?"));
}

#[test]
fn a_typed_message_is_answered_like_speech_and_cuts_the_agent_off() {
    let mut config = config();
    config.greeting = "Hello and welcome to the clinic, how may I help you today?".into();
    let mut call = Call::with_caller(config);
    call.replies([Reply::Text("We are open till six.")]);
    call.silence(600);
    call.input(Input::Typed { identity: "caller".into(), text: "  When do you close?  ".into() });
    call.silence(3_000);
    assert_eq!(call.asked(), ["When do you close?"]);
    assert!(call.outputs().any(|o| matches!(o, Output::Line(line) if line.typed && line.text == "When do you close?")));
    assert!(call.lines()[0].2, "the greeting was cut off");
    assert_eq!(call.captions().last().map(String::as_str), Some("We are open till six."));
}

#[test]
fn a_caller_without_a_microphone_who_types_is_answered() {
    let mut call = Call::new(config());
    call.input(Input::Joined { identity: "caller".into(), name: "Asha".into(), agent: false });
    call.replies([Reply::Text("Hi!")]);
    call.input(Input::Typed { identity: "caller".into(), text: "hello".into() });
    call.wait(2_000);
    assert_eq!(call.asked(), ["hello"]);
    assert!(
        !call.outputs().any(|o| matches!(o, Output::StartJob { work: Job::Say(_), .. })),
        "no greeting after a message"
    );
}

#[test]
fn muting_mid_sentence_ends_the_turn_at_once() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("Call me back")]);
    call.speak(800);
    call.input(Input::Muted { track: "TR_mic".into(), muted: true });
    assert_eq!(call.count(|o| matches!(o, Output::FinishTranscription { .. })), 1);
    call.wait(200);
    assert_eq!(call.asked(), ["Call me back"]);
}

#[test]
fn a_republished_microphone_is_listened_to_instead() {
    let mut call = Call::after_greeting(config());
    call.input(Input::Track { identity: "caller".into(), track: "TR_new".into() });
    assert_eq!(call.listening.as_deref(), Some("TR_new"));
    call.transcripts([Ok("Can you hear me?")]);
    call.speak(600);
    call.silence(2_000);
    assert_eq!(call.asked(), ["Can you hear me?"]);
}

#[test]
fn frames_of_a_track_not_listened_to_are_ignored() {
    let mut call = Call::after_greeting(config());
    for _ in 0..50 {
        call.now += FRAME;
        let frame = VadFrame { speech: true, samples: [1_000; FRAME_SAMPLES] };
        call.input(Input::Frames { track: "TR_other".into(), frames: vec![frame] });
    }
    assert_eq!(call.count(|o| matches!(o, Output::StartTranscription { .. })), 0);
}

#[test]
fn a_caller_who_leaves_mid_answer_ends_the_call_with_what_was_heard() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("Tell me about the plans.")]);
    call.replies([Reply::Text("We have three plans for every budget and every family size.")]);
    call.speak(600);
    call.silence(1_500);
    call.input(Input::Stop(EndReason::CallerLeft));
    assert_eq!(call.hung_up, Some(EndReason::CallerLeft));
    let (speaker, text, interrupted) = call.lines().last().cloned().expect("the answer is in the record");
    assert_eq!(speaker, Speaker::Agent);
    assert!(interrupted && text.starts_with("We have") && text.len() < 40, "{text:?}");
    assert!(call.outputs().any(|o| matches!(o, Output::CancelJob { .. } | Output::Clear)));
    let before = call.log.len();
    call.input(Input::Tick);
    assert_eq!(call.log.len(), before, "nothing after the hang-up");
}

#[test]
fn the_last_words_before_a_hang_up_are_kept() {
    let mut call = Call::after_greeting(config());
    call.transcripts([Ok("Thanks, bye")]);
    call.speak(600);
    call.input(Input::Stop(EndReason::CallerLeft));
    assert_eq!(call.hung_up, None, "waits for the transcript");
    call.wait(200);
    assert_eq!(call.hung_up, Some(EndReason::CallerLeft));
    assert_eq!(call.lines().last().map(|l| l.1.clone()).as_deref(), Some("Thanks, bye"));
    assert!(call.requests.is_empty(), "nobody to answer");
}
