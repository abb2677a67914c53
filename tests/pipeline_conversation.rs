//! The voice agent end to end through the dev server, against the provider mocks: a caller
//! speaks, the agent hears, answers and transcribes both sides.

mod support;

use std::time::Duration;

use serde_json::json;
use support::agent::Stage;
use support::mocks::openai::Reply;

const GREETING: &str = "Hello! I'm Aria. How can I help you today?";
const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_greeted_heard_answered_and_both_sides_are_transcribed() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers(["What time do you open tomorrow?"]);
    stage.llm.replies([Reply::Text("We open at nine in the morning. See you then!".into())]);
    let mut caller = stage.call("conversation", "").await;

    assert_eq!(caller.agent_said(1, LIMIT).await, GREETING, "the default agent greets the caller");
    // One sentence without a pause long enough to look like the end of the turn.
    let speech = support::audio::speech_clip(0.9, 4.6);
    caller.say(&speech).await;
    caller
        .until("the caller's transcript", LIMIT, |h| h.segments.iter().any(|s| s.speaker == "caller" && s.is_final))
        .await;
    assert_eq!(caller.finals(false), ["What time do you open tomorrow?"]);
    assert_eq!(caller.agent_said(2, LIMIT).await, "We open at nine in the morning. See you then!");

    let utterances = stage.sarvam.stt_utterances();
    assert_eq!(utterances.len(), 1, "one turn, one utterance: {utterances:?}");
    let spoken = support::audio::speech_span(&speech);
    let sent = utterances[0].audio_seconds;
    // The speech, with 300 ms of pre-roll before it and a 100 ms tail after: not the silence
    // that ended the turn.
    let expected = spoken + 0.4;
    assert!((sent - expected).abs() <= 0.3, "speech-to-text got {sent:.2} s for the {spoken:.2} s spoken");
    assert_eq!(utterances[0].query.get("language-code").map(String::as_str), Some("en-IN"));

    let records = stage.llm.records();
    assert_eq!(records.len(), 1);
    let messages = &records[0].body["messages"];
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[0]["content"].as_str().is_some_and(|p| p.starts_with("You are Aria")));
    assert_eq!(messages[1], json!({"role": "assistant", "content": GREETING}));
    assert_eq!(messages[2], json!({"role": "user", "content": "What time do you open tomorrow?"}));
    assert_eq!(messages.as_array().map(Vec::len), Some(3));

    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    let received = caller.settled_speech_seconds(LIMIT).await;
    let apology = "Sorry, I'm having a little trouble on my side. Could you say that once more?";
    let produced: f64 =
        stage.sarvam.tts_requests().iter().filter(|r| r.text != apology).map(|r| r.produced_seconds).sum();
    assert!(
        (received - produced).abs() <= produced * 0.05 + 0.1,
        "the caller heard {received:.2} s of the {produced:.2} s synthesised"
    );
    let states = caller.heard(|h| h.states.clone());
    // The greeting spoken, the caller heard, the answer spoken. A state that lasts no time (the
    // first `listening` when the greeting starts at once) may be replaced before it is published.
    let order = ["speaking", "listening", "thinking", "speaking", "listening"];
    let mut at = 0;
    for state in &states {
        if order.get(at) == Some(&state.as_str()) {
            at += 1;
        }
    }
    assert_eq!(at, order.len(), "the agent's states went {states:?}");
}

/// Waits until the agent is speaking its `n`th reply (counting the greeting).
async fn speaking(caller: &support::agent::Caller, n: usize) {
    caller
        .until(&format!("the agent's reply #{n}"), LIMIT, |h| h.states.iter().filter(|s| *s == "speaking").count() >= n)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_talks_over_the_agent_cuts_it_off_and_it_remembers_only_what_was_heard() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers(["Tell me about your plans.", "Wait, just the cheapest one please."]);
    let long_answer = "We have three plans for every budget. The basic plan covers calls and messages. \
                       The premium plan adds international roaming and priority support.";
    stage
        .llm
        .replies([Reply::Text(long_answer.into()), Reply::Text("The basic plan costs ninety nine rupees.".into())]);
    let mut caller = stage.call("barge-in", "").await;
    caller.agent_said(1, LIMIT).await;
    let greeting = caller.settled_speech_seconds(LIMIT).await;
    stage.sarvam.tts_audio(Duration::from_secs(3));
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    speaking(&caller, 2).await;
    caller.until("a second of the answer", LIMIT, |h| h.agent_speech_seconds() > greeting + 1.0).await;
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;

    let cut = caller.agent_said(2, LIMIT).await;
    assert!(!cut.is_empty() && long_answer.starts_with(&cut) && cut.len() < long_answer.len() / 2, "heard: {cut:?}");
    caller
        .until("the second question", LIMIT, |h| {
            h.segments.iter().filter(|s| s.speaker == "caller" && s.is_final).count() == 2
        })
        .await;
    assert_eq!(caller.agent_said(3, LIMIT).await, "The basic plan costs ninety nine rupees.");

    let records = stage.llm.records();
    assert_eq!(records.len(), 2);
    let messages = records[1].body["messages"].as_array().expect("messages").clone();
    let tail: Vec<_> = messages[messages.len() - 3..].to_vec();
    assert_eq!(
        tail,
        [
            json!({"role": "user", "content": "Tell me about your plans."}),
            json!({"role": "assistant", "content": cut}),
            json!({"role": "user", "content": "Wait, just the cheapest one please."}),
        ],
        "the history keeps only the words the caller heard"
    );
    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    let heard = caller.settled_speech_seconds(LIMIT).await;
    let long_sentences = stage.sarvam.tts_requests().iter().filter(|r| long_answer.contains(r.text.as_str())).count();
    let unplayed = 3.0 * long_sentences as f64 - (heard - greeting - 3.0);
    assert!(heard >= greeting + 1.0 + 3.0 - 0.2, "the new answer played whole after the cut: {heard:.2} s in all");
    assert!(unplayed >= 3.0, "the rest of the cut answer never played: {heard:.2} s heard in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cough_while_the_agent_speaks_pauses_it_and_it_carries_on_with_nothing_lost() {
    let stage = Stage::start().await;
    stage.sarvam.stt_answers(["Tell me about your plans."]);
    let answer = "We have three plans for every budget. The basic plan covers calls. The premium plan adds roaming.";
    stage.llm.replies([Reply::Text(answer.into())]);
    let mut caller = stage.call("false-interruption", "").await;
    caller.agent_said(1, LIMIT).await;
    let greeting = caller.settled_speech_seconds(LIMIT).await;
    stage.sarvam.tts_audio(Duration::from_secs(2));
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    speaking(&caller, 2).await;
    caller.until("a second of the answer", LIMIT, |h| h.agent_speech_seconds() > greeting + 1.0).await;
    caller.say(&support::audio::speech_clip(0.0, 0.3)).await;

    assert_eq!(caller.agent_said(2, LIMIT).await, answer, "the whole answer was said");
    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;
    let received = caller.settled_speech_seconds(LIMIT).await;
    assert_eq!(stage.llm.records().len(), 1, "the cough was not taken as a turn");
    assert_eq!(caller.finals(false), ["Tell me about your plans."]);
    let produced: f64 =
        stage.sarvam.tts_requests().iter().filter(|r| !r.text.starts_with("Sorry")).map(|r| r.produced_seconds).sum();
    assert!((received - produced).abs() <= produced * 0.05 + 0.1, "heard {received:.2} s of {produced:.2} s");
}
