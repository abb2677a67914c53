//! How calls end on their own, end to end through the dev server (issue 11): a caller who never
//! shows a microphone costs nothing and is dropped; a silent caller is asked whether they are
//! still there, then the agent hangs up; both calls' records say why.

mod support;

use std::time::Duration;

use support::agent::Stage;

const LIMIT: Duration = Duration::from_secs(40);

/// The shipped default profile with `[limits]` replaced.
fn profiles_with_limits(
    dir: &std::path::Path,
    limits: &[(&str, i64)],
) -> std::sync::Arc<voice_agent::profiles::ProfileStore> {
    let text = std::fs::read_to_string(support::repo_path("profiles/default.toml")).expect("the default profile");
    let mut profile: toml::Table = text.parse().expect("TOML");
    let table = limits.iter().map(|(name, value)| ((*name).to_owned(), toml::Value::Integer(*value))).collect();
    profile.insert("limits".into(), toml::Value::Table(table));
    std::fs::write(dir.join("default.toml"), toml::to_string(&profile).expect("TOML")).expect("written");
    support::worker::profiles_in(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_never_publishes_audio_is_dropped_without_a_paid_request() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let stage = Stage::start_with_profiles(profiles_with_limits(dir.path(), &[("no_audio_seconds", 5)])).await;
    let caller = stage.call_without_microphone("silent-bot", "").await;
    caller.until("the agent to leave", LIMIT, |h| h.agent_left.is_some()).await;

    let record = stage.call_record(LIMIT).await;
    assert_eq!(record.body["end_reason"], "no_audio");
    assert!(stage.sarvam.tts_requests().is_empty(), "nothing was synthesised, not even the apology");
    assert!(stage.llm.records().is_empty());
    let seconds = record.body["duration_seconds"].as_f64().expect("a duration");
    assert!((5.0..15.0).contains(&seconds), "dropped after the limit: {seconds} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_caller_is_asked_then_the_agent_hangs_up() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let limits = [("silence_prompt_seconds", 5), ("silence_hangup_seconds", 10)];
    let stage = Stage::start_with_profiles(profiles_with_limits(dir.path(), &limits)).await;
    let caller = stage.call("silent-caller", "").await;
    caller.agent_said(1, LIMIT).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, "Are you still there?");
    caller.until("the agent to leave", LIMIT, |h| h.agent_left.is_some()).await;

    let record = stage.call_record(LIMIT).await;
    assert_eq!(record.body["end_reason"], "silence");
    let agent_lines: Vec<&str> = record.body["transcript"]
        .as_array()
        .expect("a transcript")
        .iter()
        .filter(|line| line["speaker"] == "agent")
        .filter_map(|line| line["text"].as_str())
        .collect();
    assert_eq!(agent_lines.last(), Some(&"Are you still there?"));
    assert!(stage.llm.records().is_empty(), "silence is not a turn");
}
