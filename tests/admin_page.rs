//! The operator's view, `/admin` on the token server: behind ADMIN_TOKEN, never cached, under
//! the page's strict CSP. In Chromium, during a conversation through the dev server, it lists
//! the call with its agent and state, ends it (the worker's job ends and its record is
//! delivered), and shows the delivered record's transcript and per-turn latency chart.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::agent::Stage;
use support::mocks::openai::Reply;
use support::{TokenServer, settings};

const ADMIN_TOKEN: &str = "operator-token-0123456789abcdef";
const LIMIT: Duration = Duration::from_secs(30);

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let request = reqwest::Client::new().get(url);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("the token server answers")
}

#[tokio::test]
async fn the_admin_api_needs_the_token_and_nothing_is_cached() {
    let spool = tempfile::tempdir().expect("a spool");
    let spool_dir = spool.path().display().to_string();
    let server = TokenServer::start(settings(&[("ADMIN_TOKEN", ADMIN_TOKEN), ("SPOOL_DIR", &spool_dir)])).await;
    let records = format!("{}/admin/api/records", server.url);

    for (token, why) in [(None, "send `Authorization"), (Some("wrong-token-wrong-token"), "wrong")] {
        let refused = get(&records, token).await;
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.headers()["cache-control"], "no-store");
        let body: Value = refused.json().await.expect("JSON");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains(why)), "{body}");
    }
    let answered = get(&records, Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (answered.status().as_u16(), &answered.headers()["cache-control"]),
        (200, &"no-store".parse().expect("value"))
    );
    assert_eq!(answered.json::<Value>().await.expect("JSON"), serde_json::json!({"records": []}));

    let page = get(&format!("{}/admin", server.url), None).await;
    assert_eq!(page.status(), 200, "the page holds no data; the API asks for the token");
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.headers()["content-security-policy"].to_str().is_ok_and(|csp| csp.contains("script-src 'self'")));

    let unreachable = get(&format!("{}/admin/api/calls", server.url), Some(ADMIN_TOKEN)).await;
    assert_eq!(unreachable.status(), 502, "no LiveKit server at LIVEKIT_URL here");
    let body: Value = unreachable.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "livekit_unavailable", "{body}");

    let disabled = TokenServer::start(settings(&[])).await;
    assert_eq!(get(&format!("{}/admin", disabled.url), None).await.status(), 404);
    assert_eq!(get(&format!("{}/admin/api/records", disabled.url), Some(ADMIN_TOKEN)).await.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_sees_the_call_ends_it_and_reads_its_record_in_chromium() {
    let stage = Stage::start().await;
    let answer = "We open at nine in the morning. See you then!";
    stage.sarvam.stt_answers(["What time do you open tomorrow?"]);
    stage.llm.replies([Reply::Text(answer.into())]);
    let mut caller = stage.call("admin-call", "").await;
    caller.agent_said(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    assert_eq!(caller.agent_said(2, LIMIT).await, answer);

    let spool_dir = stage.spool.path().display().to_string();
    let livekit = stage.server.url();
    let overrides =
        [("ADMIN_TOKEN", ADMIN_TOKEN), ("SPOOL_DIR", spool_dir.as_str()), ("LIVEKIT_URL", livekit.as_str())];
    let server = TokenServer::start(settings(&overrides)).await;
    let args = ["--url", &server.url, "--token", ADMIN_TOKEN, "--room", "admin-call", "--answer", answer];
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let stdout = support::run_browser_check("admin.mjs", &args).await;
    println!("{stdout}");
    let shown: Value = serde_json::from_str(stdout.trim()).expect("the check prints JSON");
    assert_eq!(shown["call"]["agent"], "default", "the agent's profile: {shown}");
    assert!(
        ["listening", "thinking", "speaking"].contains(&shown["call"]["state"].as_str().unwrap_or_default()),
        "{shown}"
    );

    let record = stage.call_record(LIMIT).await.body;
    assert_eq!((record["room"].as_str(), record["end_reason"].as_str()), (Some("admin-call"), Some("job_terminated")));
    caller.until("the caller is told the call ended", LIMIT, |heard| heard.disconnected.is_some()).await;
    let kept =
        stage.spool.path().join("delivered").join(format!("{}.json", record["call_id"].as_str().unwrap_or_default()));
    assert!(kept.is_file(), "the delivered record is kept for the page");
}
