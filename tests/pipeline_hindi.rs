//! A Hindi call end to end through the dev server against the provider mocks: the caller picks
//! the Hindi clinic receptionist, and every provider is asked for Hindi in that agent's voice.

mod support;

use std::time::Duration;

use serde_json::json;
use support::agent::Stage;
use support::mocks::openai::Reply;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hindi_caller_is_greeted_heard_and_answered_in_hindi_with_both_sides_transcribed() {
    let profile = support::worker::profiles().get("clinic-hi").await.expect("the Hindi clinic profile");
    let stage = Stage::start().await;
    let question = "क्या डॉक्टर साहब कल सुबह मिलेंगे?";
    let sentences = ["जी हाँ, डॉक्टर साहब कल सुबह दस बजे मिलेंगे।", "क्या मैं आपका नाम लिख लूँ?"];
    let reply = sentences.join(" ");
    stage.sarvam.stt_answers([question]);
    stage.llm.replies([Reply::Text(reply.clone())]);
    let mut caller = stage.call("hindi", r#"{"agentId":"clinic-hi"}"#).await;

    assert_eq!(caller.agent_said(1, LIMIT).await, profile.greeting, "the agent greets in Hindi");
    caller.say(&support::audio::speech_clip(0.9, 2.6)).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, reply, "the caller reads the agent's Hindi answer");
    assert_eq!(caller.finals(false), [question], "the caller reads their own words in Hindi");
    caller.until("the agent to listen again", LIMIT, |h| h.states.last().is_some_and(|s| s == "listening")).await;

    let utterances = stage.sarvam.stt_utterances();
    assert_eq!(utterances.len(), 1, "{utterances:?}");
    assert_eq!(utterances[0].query.get("language-code").map(String::as_str), Some("hi-IN"));

    let synthesised = stage.sarvam.tts_requests();
    for request in &synthesised {
        assert_eq!(request.body["language_code"], "hi-IN", "{:?}", request.text);
        assert_eq!(request.body["speaker"], profile.voice.as_str(), "{:?}", request.text);
    }
    assert_eq!(profile.voice, "priya");
    let texts: Vec<&str> = synthesised.iter().map(|r| r.text.as_str()).collect();
    assert!(texts.ends_with(&sentences), "the answer is synthesised sentence by sentence, cut at the danda: {texts:?}");
    for sentence in sentences {
        assert_eq!(texts.iter().filter(|t| **t == sentence).count(), 1, "{sentence} once: {texts:?}");
    }

    let records = stage.llm.records();
    assert_eq!(records.len(), 1);
    let messages = &records[0].body["messages"];
    // The prompt's `{{weekday}}, {{today}}` are filled in the profile's time zone (India).
    let prompt = |at: chrono::DateTime<chrono::Utc>| {
        let local = at.with_timezone(&chrono_tz::Asia::Kolkata);
        let system = profile.system_prompt.replace("{{weekday}}", &local.format("%A").to_string());
        json!({"role": "system", "content": system.replace("{{today}}", &local.format("%Y-%m-%d").to_string())})
    };
    let (now, a_minute_ago) = (chrono::Utc::now(), chrono::Utc::now() - chrono::Duration::minutes(1));
    assert!(messages[0] == prompt(now) || messages[0] == prompt(a_minute_ago), "the Hindi prompt: {}", messages[0]);
    assert!(!messages[0]["content"].as_str().unwrap_or_default().contains("{{"), "every placeholder filled");
    assert_eq!(messages[1], json!({"role": "assistant", "content": profile.greeting}));
    assert_eq!(messages[2], json!({"role": "user", "content": question}));
    assert_eq!(messages.as_array().map(Vec::len), Some(3));
}
