use super::*;

use crate::pipeline::metrics::TurnMetrics;
use crate::providers::ProviderError;
use crate::providers::registry::Kind;
use crate::records::OutboxConfig;
use crate::worker::EndReason;

/// The exposition's line for `series` (name and labels as written), with its value.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn a_turn(interrupted: bool) -> TurnMetrics {
    TurnMetrics {
        end_of_utterance_ms: Some(40),
        stt_ms: Some(120),
        llm_first_token_ms: Some(250),
        tts_first_audio_ms: Some(90),
        voice_to_voice_ms: Some(620),
        interrupted,
    }
}

#[test]
fn a_call_shows_in_every_worker_series_with_its_labels() {
    let mut registry = Registry::new();
    let worker = registry.worker();
    let exposition = registry.finish();

    worker.call_started();
    let mid_call = exposition.render();
    assert_eq!(value(&mid_call, "voice_agent_calls_active"), Some(1.0), "{mid_call}");
    worker.turn(&a_turn(false));
    worker.turn(&TurnMetrics { stt_ms: None, ..a_turn(true) });
    let sarvam = worker.provider(Kind::Stt, "sarvam");
    sarvam.request();
    sarvam.failure(&ProviderError::Timeout { provider: "sarvam", after: std::time::Duration::from_secs(10) });
    worker.provider(Kind::Llm, "groq").request();
    worker.call_ended(EndReason::CallerLeft);
    worker.call_finished(JobResult::Completed);
    worker.job(JobResult::Declined);
    worker.set_load(0.25);

    let text = exposition.render();
    let expected = [
        ("voice_agent_calls_active", 0.0),
        ("voice_agent_calls_total{end_reason=\"caller_left\"}", 1.0),
        ("voice_agent_calls_total{end_reason=\"silence\"}", 0.0),
        ("voice_agent_turn_seconds_count{stage=\"end_of_utterance\"}", 2.0),
        ("voice_agent_turn_seconds_count{stage=\"stt\"}", 1.0),
        ("voice_agent_turn_seconds_sum{stage=\"voice_to_voice\"}", 1.24),
        ("voice_agent_turn_seconds_bucket{le=\"0.75\",stage=\"voice_to_voice\"}", 2.0),
        ("voice_agent_turn_seconds_bucket{le=\"0.5\",stage=\"voice_to_voice\"}", 0.0),
        ("voice_agent_interruptions_total", 1.0),
        ("voice_agent_provider_requests_total{provider=\"sarvam\",service=\"stt\"}", 2.0),
        ("voice_agent_provider_requests_total{provider=\"groq\",service=\"llm\"}", 1.0),
        ("voice_agent_provider_errors_total{provider=\"sarvam\",service=\"stt\",kind=\"timeout\"}", 1.0),
        ("voice_agent_worker_load", 0.25),
        ("voice_agent_jobs_total{result=\"completed\"}", 1.0),
        ("voice_agent_jobs_total{result=\"declined\"}", 1.0),
        ("voice_agent_jobs_total{result=\"failed\"}", 0.0),
    ];
    for (series, wanted) in expected {
        assert_eq!(value(&text, series), Some(wanted), "{series} in:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "a complete OpenMetrics exposition");
}

#[test]
fn processes_and_tests_do_not_share_counts() {
    let mut first = Registry::new();
    let counted = first.worker();
    let first = first.finish();
    let mut second = Registry::new();
    let _untouched = second.worker();
    let second = second.finish();
    counted.call_ended(EndReason::AgentEnded);
    let series = "voice_agent_calls_total{end_reason=\"agent_ended\"}";
    assert_eq!(value(&first.render(), series), Some(1.0));
    assert_eq!(value(&second.render(), series), Some(0.0));
}

#[test]
fn end_reasons_are_named_as_the_call_record_names_them() {
    for reason in EndReason::ALL {
        assert_eq!(serde_json::to_value(reason).expect("serialises"), reason.as_str());
    }
}

#[test]
fn the_token_server_counts_tokens_refusals_and_requests_by_route() {
    let mut registry = Registry::new();
    let token = registry.token_server();
    let profiles = registry.profiles();
    let exposition = registry.finish();
    let before = exposition.render();
    assert_eq!(value(&before, "voice_agent_rate_limited_total{limit=\"token\"}"), Some(0.0), "{before}");
    assert_eq!(value(&before, "voice_agent_profile_fetches_total{outcome=\"stale\"}"), Some(0.0), "{before}");

    token.token_issued();
    token.rate_limited(RateLimit::Api);
    token.request("/api/config/{agent_id}", 200);
    token.request("/api/config/{agent_id}", 200);
    token.request("/api/token", 429);
    profiles.fetched(ProfileFetch::Miss);
    profiles.fetched(ProfileFetch::Hit);
    profiles.fetched(ProfileFetch::Hit);

    let text = exposition.render();
    let expected = [
        ("voice_agent_tokens_issued_total", 1.0),
        ("voice_agent_rate_limited_total{limit=\"api\"}", 1.0),
        ("voice_agent_rate_limited_total{limit=\"token\"}", 0.0),
        ("voice_agent_http_requests_total{route=\"/api/config/{agent_id}\",status=\"200\"}", 2.0),
        ("voice_agent_http_requests_total{route=\"/api/token\",status=\"429\"}", 1.0),
        ("voice_agent_profile_fetches_total{outcome=\"hit\"}", 2.0),
        ("voice_agent_profile_fetches_total{outcome=\"miss\"}", 1.0),
        ("voice_agent_profile_fetches_total{outcome=\"error\"}", 0.0),
    ];
    for (series, wanted) in expected {
        assert_eq!(value(&text, series), Some(wanted), "{series} in:\n{text}");
    }
    assert!(!text.contains("voice_agent_calls"), "a token server shows no worker series:\n{text}");
}

#[tokio::test]
async fn the_outbox_gauges_are_read_at_each_scrape() {
    let spool = tempfile::tempdir().expect("a temporary directory");
    let outbox = Outbox::start(OutboxConfig::new(spool.path().to_path_buf(), None, None)).await.expect("opens");
    let mut registry = Registry::new();
    registry.outbox(outbox.clone());
    let exposition = registry.finish();
    assert_eq!(value(&exposition.render(), "voice_agent_outbox_pending"), Some(0.0));
    outbox.submit("AJ_waiting", b"{}".to_vec()).await.expect("kept on disk");
    let text = exposition.render();
    assert_eq!(value(&text, "voice_agent_outbox_pending"), Some(1.0), "{text}");
    assert_eq!(value(&text, "voice_agent_outbox_dead"), Some(0.0), "{text}");
    assert!(!text.contains("AJ_waiting"), "no call ids in the metrics");
}
