//! The metrics as an operator sees them: a real Prometheus (Debian's `prometheus`, installed by
//! scripts/setup.sh) scrapes `agent-worker start` and `token-server`, run as processes, while a
//! caller who got their token from the token server talks with the agent through the dev
//! server; then every query of `deploy/grafana-dashboard.json` returns data.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::agent::{GROQ_KEY, SARVAM_KEY, caller_with_token};
use support::livekit::dev_server;
use support::mocks::Fault;
use support::mocks::openai::{Flavour, MockOpenAi, Reply};
use support::mocks::sarvam::MockSarvam;
use support::n8n::MockN8n;
use tokio::process::{Child, Command};

const LIMIT: Duration = Duration::from_secs(30);
/// What the dashboard's `$__rate_interval` becomes: Grafana makes it at least four scrape
/// intervals; a minute holds the whole conversation.
const RATE_INTERVAL: &str = "1m";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn prometheus_binary() -> &'static str {
    let installed = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].into_iter().find(|p| Path::new(p).exists());
    installed.expect("Prometheus is not installed: run scripts/setup.sh (Debian's `prometheus` package)")
}

/// Polls `url` until it answers 200, or fails naming `what`.
async fn until_up(http: &reqwest::Client, url: &str, what: &str) {
    let started = Instant::now();
    loop {
        if http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(started.elapsed() < LIMIT, "{what} did not come up at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(command: &mut Command, what: &str) -> Child {
    command.stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true).spawn().unwrap_or_else(|e| {
        panic!("{what} does not start: {e}");
    })
}

/// The dashboard's queries, with Grafana's variables replaced as Grafana would.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(support::repo_path("deploy/grafana-dashboard.json")).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries: Vec<(String, String)> = panels
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            panel["targets"].as_array().into_iter().flatten().map(move |target| {
                let expr = target["expr"].as_str().expect("every target has an expr");
                (title.clone(), expr.replace("$__rate_interval", RATE_INTERVAL))
            })
        })
        .collect();
    assert!(queries.len() >= 15, "the dashboard has its panels: {queries:?}");
    for (title, expr) in &queries {
        assert!(!expr.contains('$'), "`{title}` uses a variable the test does not know: {expr}");
    }
    queries
}

/// Evaluates `expr` now; its result vector.
async fn query(http: &reqwest::Client, prometheus: &str, expr: &str) -> Vec<Value> {
    let answer: Value = http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .expect("Prometheus answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["status"], "success", "`{expr}` fails: {answer}");
    answer["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of a query that returns one number.
fn single(result: &[Value]) -> f64 {
    let value = result.first().and_then(|series| series["value"][1].as_str()).unwrap_or("NaN");
    value.parse().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_worker_and_token_server_in_a_conversation() {
    let queries = dashboard_queries();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a client");
    let server = dev_server().await;
    let sarvam = MockSarvam::start(SARVAM_KEY).await;
    let llm = MockOpenAi::start(Flavour::Groq, GROQ_KEY).await;
    let n8n = MockN8n::start().await;
    let spool = tempfile::tempdir().expect("a spool directory");

    let health_port = free_port();
    let _worker = spawn(
        Command::new(env!("CARGO_BIN_EXE_agent-worker"))
            .arg("start")
            .env("SPOOL_DIR", spool.path())
            .env("LIVEKIT_URL", server.url())
            .env("LIVEKIT_API_KEY", "devkey")
            .env("LIVEKIT_API_SECRET", "secret")
            .env("SARVAM_API_KEY", SARVAM_KEY)
            .env("SARVAM_BASE_URL", sarvam.base_url().to_string())
            .env("GROQ_API_KEY", GROQ_KEY)
            .env("GROQ_BASE_URL", llm.base_url().to_string())
            .env("OPENAI_API_KEY", "unused")
            .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
            .env("DEEPGRAM_API_KEY", "unused")
            .env("ELEVENLABS_API_KEY", "unused")
            .env("HEALTH_HOST", "127.0.0.1")
            .env("HEALTH_PORT", health_port.to_string())
            .env("PROFILES_DIR", support::repo_path("profiles"))
            .env("RUST_LOG", "warn"),
        "agent-worker",
    );
    let (web_port, metrics_port) = (free_port(), free_port());
    let _token_server = spawn(
        Command::new(env!("CARGO_BIN_EXE_token-server"))
            .env("LIVEKIT_URL", server.url())
            .env("LIVEKIT_API_KEY", "devkey")
            .env("LIVEKIT_API_SECRET", "secret")
            .env("PROFILES_DIR", support::repo_path("profiles"))
            .env("WEB_DIR", support::repo_path("web"))
            .env("WEB_HOST", "127.0.0.1")
            .env("WEB_PORT", web_port.to_string())
            .env("METRICS_PORT", metrics_port.to_string())
            .env("N8N_BASE_URL", n8n.base_url.to_string())
            .env("TOKEN_RATE_LIMIT_PER_MIN", "2")
            .env("RUST_LOG", "warn"),
        "token-server",
    );
    let worker_metrics = format!("http://127.0.0.1:{health_port}/metrics");
    let token_metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    until_up(&http, &worker_metrics, "the worker's /metrics").await;
    until_up(&http, &token_metrics, "the token server's /metrics").await;
    let web = format!("http://127.0.0.1:{web_port}");
    let public = http.get(format!("{web}/metrics")).send().await.expect("the token server answers");
    assert_eq!(public.status(), 404, "the public port does not show the metrics");

    let prometheus_dir = tempfile::tempdir().expect("a directory for Prometheus");
    let config = prometheus_dir.path().join("prometheus.yml");
    let scrape = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
         - job_name: agent-worker\n    static_configs:\n      - targets: ['127.0.0.1:{health_port}']\n  \
         - job_name: token-server\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    );
    std::fs::write(&config, scrape).expect("the config is written");
    let prometheus_port = free_port();
    let _prometheus = spawn(
        Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", prometheus_dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}")),
        "prometheus",
    );
    let prometheus = format!("http://127.0.0.1:{prometheus_port}");
    until_up(&http, &format!("{prometheus}/-/ready"), "Prometheus").await;

    // Three token requests under a limit of two a minute: a profile fetched from n8n (which
    // does not know the agent, so the local profile serves), one from the cache, a refusal.
    let mut issued = Vec::new();
    for _ in 0..3 {
        let answer = http.post(format!("{web}/api/token")).json(&json!({"agentId": "default"})).send().await;
        issued.push(answer.expect("the token server answers"));
    }
    let statuses: Vec<u16> = issued.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 429]);
    let first: Value = issued.remove(0).json().await.expect("a token");
    let room = first["roomName"].as_str().expect("a room name").to_owned();

    // Two turns: the model's quota is spent for the first (a provider error, and the apology),
    // then it answers.
    sarvam.stt_answers(["What time do you open tomorrow?", "And on Sunday?"]);
    llm.fault_next(Fault::QuotaExhausted, 1);
    llm.replies([Reply::Text("We open at nine, Sundays included.".into())]);
    let mut caller = caller_with_token(&server.url(), first["token"].as_str().expect("a token")).await;
    caller.open_microphone().await;
    caller.listening_after(1, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 2.6)).await;
    caller.listening_after(2, LIMIT).await;
    caller.say(&support::audio::speech_clip(0.9, 2.6)).await;
    caller.listening_after(3, LIMIT).await;
    assert_eq!(caller.finals(true).last().map(String::as_str), Some("We open at nine, Sundays included."));
    caller.room.disconnect().await;

    let ended = "sum(voice_agent_calls_total{end_reason=\"caller_left\"})";
    let started = Instant::now();
    while single(&query(&http, &prometheus, ended).await) < 1.0 {
        assert!(started.elapsed() < LIMIT, "Prometheus never saw the call end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut empty = Vec::new();
    let started = Instant::now();
    loop {
        empty.clear();
        for (title, expr) in &queries {
            if query(&http, &prometheus, expr).await.is_empty() {
                empty.push(format!("{title}: {expr}"));
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(started.elapsed() < LIMIT, "queries without data:\n{}", empty.join("\n"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let checks = [
        ("sum(voice_agent_tokens_issued_total)", 2.0),
        ("sum(voice_agent_rate_limited_total{limit=\"token\"})", 1.0),
        ("sum(voice_agent_http_requests_total{route=\"/api/token\",status=\"429\"})", 1.0),
        ("sum(voice_agent_profile_fetches_total{outcome=\"miss\"})", 1.0),
        ("sum(voice_agent_profile_fetches_total{outcome=\"hit\"})", 1.0),
        ("sum(voice_agent_provider_errors_total{provider=\"groq\",service=\"llm\",kind=\"quota\"})", 1.0),
        ("sum(voice_agent_turn_seconds_count{stage=\"voice_to_voice\"}) >= bool 1", 1.0),
        ("sum(voice_agent_jobs_total{result=\"completed\"})", 1.0),
        ("sum(voice_agent_outbox_pending)", 1.0),
        ("sum(voice_agent_calls_active)", 0.0),
    ];
    for (expr, wanted) in checks {
        let started = Instant::now();
        loop {
            let got = single(&query(&http, &prometheus, expr).await);
            if got == wanted {
                break;
            }
            assert!(started.elapsed() < LIMIT, "`{expr}` is {got}, not {wanted}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let made_up = format!("{web}/made-up-{room}");
    assert_eq!(http.get(&made_up).send().await.expect("answered").status(), 404);
    for url in [&worker_metrics, &token_metrics] {
        let text = http.get(url.as_str()).send().await.expect("scrapeable").text().await.expect("text");
        assert!(!text.contains(&room), "{url} names the room:\n{text}");
    }
    let text = http.get(&token_metrics).send().await.expect("scrapeable").text().await.expect("text");
    assert!(
        text.contains("voice_agent_http_requests_total{route=\"other\",status=\"404\"} 2"),
        "unknown paths (/metrics on the public port, the made-up one) count as `other`, not as themselves:\n{text}"
    );
}
