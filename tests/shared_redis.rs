//! Token servers and workers sharing state through a real `redis-server`: an invalidation on one
//! instance reaches all, a client's budget is one across token servers, a worker's calls leave
//! the registry when it dies, and Redis going down degrades to local behaviour and recovers.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::Value;
use support::n8n::{Answer, MockN8n, profile_json};
use support::redis_server::RedisServer;
use support::{TokenServer, settings};
use tokio::task::JoinSet;
use voice_agent::config::{Role, Settings, Sources};
use voice_agent::profiles::ProfileStore;
use voice_agent::shared::{CallEntry, RegistryTiming, Shared};

const ADMIN: &str = "a-long-admin-token-1234";
const LIMIT: Duration = Duration::from_secs(15);

/// Polls `check` until it holds, failing with `what` after `within`.
async fn until(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what} (waited {within:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn token_server_settings(redis: &RedisServer, n8n: &MockN8n, extra: &[(&str, &str)]) -> Settings {
    let (url, base) = (redis.url(), n8n.base_url.to_string());
    let mut env = vec![
        ("REDIS_URL", url.as_str()),
        ("N8N_BASE_URL", base.as_str()),
        ("ADMIN_TOKEN", ADMIN),
        ("PROFILE_CACHE_TTL_SECS", "3600"),
    ];
    env.extend_from_slice(extra);
    settings(&env)
}

/// A worker's profile cache, following invalidations as `agent-worker start` does.
fn worker_profiles(redis: &RedisServer, n8n: &MockN8n, tasks: &mut JoinSet<()>) -> Arc<ProfileStore> {
    let env = [
        ("PROFILES_DIR", support::repo_path("profiles").display().to_string()),
        ("N8N_BASE_URL", n8n.base_url.to_string()),
        ("PROFILE_CACHE_TTL_SECS", "3600".to_owned()),
        ("REDIS_URL", redis.url()),
    ];
    let env = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let settings = Settings::load(&Sources { env, ..Sources::default() }, Role::DevServer).expect("valid settings");
    let profiles = Arc::new(ProfileStore::from_settings(&settings, reqwest::Client::new()).expect("profiles load"));
    let shared = Shared::new(settings.redis_url.as_ref().expect("REDIS_URL is set")).expect("a Redis URL");
    tasks.spawn(shared.follow_invalidations(profiles.clone()));
    profiles
}

/// What the operator's view lists: `{source, calls}`.
async fn admin_calls(server: &TokenServer) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/admin/api/calls", server.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

/// The rooms of a listing, sorted.
fn listed_rooms(listed: &Value) -> Vec<String> {
    let mut rooms: Vec<String> = listed["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|call| call["room"].as_str().map(str::to_owned))
        .collect();
    rooms.sort();
    rooms
}

async fn config_of(server: &TokenServer, id: &str) -> StatusCode {
    reqwest::get(format!("{}/api/config/{id}", server.url)).await.expect("reachable").status()
}

async fn invalidate(server: &TokenServer, id: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/api/invalidate-cache", server.url))
        .bearer_auth(ADMIN)
        .body(format!(r#"{{"agentId":"{id}"}}"#))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

async fn subscribers(redis: &RedisServer) -> usize {
    let answer = redis.query(&["PUBSUB", "NUMSUB", "voice-agent:invalidate"]).await.unwrap_or_default();
    // `[bulk("voice-agent:invalidate"), int(N)]`, shown as the value's Debug text.
    answer.rsplit(|c: char| !c.is_ascii_digit()).find(|part| !part.is_empty()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Cached everywhere: one fetch per instance, none more when asked again.
async fn cache_everywhere(a: &TokenServer, b: &TokenServer, worker: &ProfileStore, n8n: &MockN8n) {
    let before = n8n.hits();
    for _ in 0..2 {
        assert_eq!(config_of(a, "alpha").await, StatusCode::OK);
        assert_eq!(config_of(b, "alpha").await, StatusCode::OK);
        worker.get("alpha").await.expect("the profile from n8n");
    }
    assert_eq!(n8n.hits(), before + 3, "each instance fetched once and cached");
}

/// The instance fetches `alpha` from n8n again (its cache dropped it) within `within`.
async fn refetches(n8n: &MockN8n, within: Duration, what: &str, ask: impl AsyncFn()) {
    let before = n8n.hits();
    until(within, what, async || {
        ask().await;
        n8n.hits() > before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_on_one_token_server_reaches_every_token_server_and_worker_within_a_second() {
    let redis = RedisServer::start().await;
    let n8n = MockN8n::start().await;
    n8n.answer("alpha", Answer::Json(StatusCode::OK, profile_json("alpha", "Alpha")));
    let a = TokenServer::start(token_server_settings(&redis, &n8n, &[])).await;
    let b = TokenServer::start(token_server_settings(&redis, &n8n, &[])).await;
    let mut tasks = JoinSet::new();
    let worker = worker_profiles(&redis, &n8n, &mut tasks);
    until(LIMIT, "every instance follows invalidations", async || subscribers(&redis).await == 3).await;
    cache_everywhere(&a, &b, &worker, &n8n).await;

    assert_eq!(invalidate(&a, "alpha").await["published"], true);
    refetches(&n8n, Duration::from_secs(1), "the other token server dropped the profile", async || {
        config_of(&b, "alpha").await;
    })
    .await;
    refetches(&n8n, Duration::from_secs(1), "the worker dropped the profile", async || {
        let _ = worker.get("alpha").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_budget_is_one_across_token_servers() {
    let redis = RedisServer::start().await;
    let n8n = MockN8n::start().await;
    let limit = [("TOKEN_RATE_LIMIT_PER_MIN", "4")];
    let a = TokenServer::start(token_server_settings(&redis, &n8n, &limit)).await;
    let b = TokenServer::start(token_server_settings(&redis, &n8n, &limit)).await;
    // The budget is per Unix minute: start early in one, so the test does not straddle two.
    until(Duration::from_secs(61), "a minute with time to spare", async || {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() % 60 < 45
    })
    .await;
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for server in [&a, &b, &a, &b, &a, &b] {
        let response = client.post(format!("{}/api/token", server.url)).send().await.expect("reachable");
        answers.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().get("retry-after").is_some(), "says when to come back");
        }
    }
    assert_eq!(answers, [200, 200, 200, 200, 429, 429], "4 a minute in all, not 4 per token server");
    let counters = redis.keys("voice-agent:rate:token:127.0.0.1:*").await;
    assert_eq!(counters.len(), 1, "one counter for the client: {counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_calls_vanish_after_the_expiry_an_ended_call_at_once_and_a_stopped_worker_with_it() {
    let redis = RedisServer::start().await;
    let shared = Shared::new(&voice_agent::config::Secret::new(redis.url())).expect("a Redis URL");
    let timing = RegistryTiming { refresh: Duration::from_millis(200), expiry: Duration::from_secs(1) };
    let call = |worker: &str, id: &str| CallEntry {
        worker: worker.to_owned(),
        call_id: id.to_owned(),
        room: format!("room-{id}"),
        agent: Some("clinic-hi".to_owned()),
        started: "2026-12-05T00:00:00+00:00".to_owned(),
        state: "running".to_owned(),
    };
    let doomed_calls = vec![call("w-doomed", "AJ_1")];
    let doomed = tokio::spawn(shared.clone().keep_registry(
        "w-doomed".to_owned(),
        "2026-12-05T00:00:00+00:00".to_owned(),
        timing,
        move || ("available".to_owned(), doomed_calls.clone()),
        std::future::pending(),
    ));
    let living_calls = Arc::new(Mutex::new(vec![call("w-living", "AJ_2"), call("w-living", "AJ_3")]));
    let calls = living_calls.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let living = tokio::spawn(shared.keep_registry(
        "w-living".to_owned(),
        "2026-12-05T00:00:00+00:00".to_owned(),
        timing,
        move || ("available".to_owned(), calls.lock().expect("not poisoned").clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    let every = ["voice-agent:call:w-doomed:AJ_1", "voice-agent:call:w-living:AJ_2", "voice-agent:call:w-living:AJ_3"];
    until(LIMIT, "both workers' calls are registered", async || redis.keys("voice-agent:call:*").await == every).await;
    let entry: Value =
        serde_json::from_str(&redis.query(&["GET", every[0]]).await.expect("Redis answers")).expect("JSON");
    assert_eq!(
        entry,
        serde_json::json!({"worker": "w-doomed", "callId": "AJ_1", "room": "room-AJ_1", "agent": "clinic-hi",
            "started": "2026-12-05T00:00:00+00:00", "state": "running"})
    );
    let worker: Value =
        serde_json::from_str(&redis.query(&["GET", "voice-agent:worker:w-living"]).await.expect("Redis answers"))
            .expect("JSON");
    assert_eq!(worker["calls"], 2);

    // The operator's view lists every worker's calls from the registry, not from one LiveKit node.
    let n8n = MockN8n::start().await;
    let admin = TokenServer::start(token_server_settings(&redis, &n8n, &[])).await;
    let listed = admin_calls(&admin).await;
    assert_eq!(listed["source"], "registry", "{listed}");
    assert_eq!(listed_rooms(&listed), ["room-AJ_1", "room-AJ_2", "room-AJ_3"]);
    assert_eq!(listed["calls"][0]["agent"], "clinic-hi", "{listed}");
    assert_eq!(listed["calls"][0]["state"], "running", "{listed}");
    assert!(listed["calls"][0]["duration_seconds"].as_u64().is_some_and(|s| s > 0), "{listed}");

    // Killed: nothing refreshes or removes its entries any more.
    doomed.abort();
    until(Duration::from_secs(3), "the dead worker's call expired", async || {
        redis.keys("voice-agent:*:w-doomed*").await.is_empty()
    })
    .await;
    assert_eq!(redis.keys("voice-agent:call:*").await, every[1..], "the living worker's calls stay");
    assert_eq!(listed_rooms(&admin_calls(&admin).await), ["room-AJ_2", "room-AJ_3"], "the dead worker's call is gone");

    living_calls.lock().expect("not poisoned").retain(|c| c.call_id != "AJ_2");
    until(Duration::from_millis(800), "an ended call leaves at the next refresh, before the expiry", async || {
        redis.keys("voice-agent:call:*").await == every[2..]
    })
    .await;

    // Stopping cleanly, a worker removes its entries as it goes, without waiting for the expiry.
    stop.send(()).expect("the registry task runs");
    tokio::time::timeout(Duration::from_millis(500), living).await.expect("it ends at once").expect("no panic");
    for pattern in ["voice-agent:call:*", "voice-agent:worker:*"] {
        assert!(redis.keys(pattern).await.is_empty(), "nothing left of the stopped worker: {pattern}");
    }
    assert!(admin_calls(&admin).await["calls"].as_array().is_some_and(Vec::is_empty), "no call is listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_down_degrades_to_local_behaviour_and_sharing_resumes_when_it_returns() {
    let mut redis = RedisServer::start().await;
    let n8n = MockN8n::start().await;
    n8n.answer("alpha", Answer::Json(StatusCode::OK, profile_json("alpha", "Alpha")));
    let limit = [("TOKEN_RATE_LIMIT_PER_MIN", "3")];
    let a = TokenServer::start(token_server_settings(&redis, &n8n, &limit)).await;
    let b = TokenServer::start(token_server_settings(&redis, &n8n, &limit)).await;
    let mut tasks = JoinSet::new();
    let worker = worker_profiles(&redis, &n8n, &mut tasks);
    until(LIMIT, "every instance follows invalidations", async || subscribers(&redis).await == 3).await;

    redis.kill().await;
    // Each token server keeps its own budget of 3 and answers without waiting on Redis.
    let client = reqwest::Client::new();
    for server in [&a, &b] {
        let mut answers = Vec::new();
        for _ in 0..4 {
            let started = Instant::now();
            let response = client.post(format!("{}/api/token", server.url)).send().await.expect("reachable");
            assert!(started.elapsed() < Duration::from_secs(2), "a down Redis does not hold requests up");
            answers.push(response.status().as_u16());
        }
        assert_eq!(answers, [200, 200, 200, 429], "the local limit applies");
    }
    cache_everywhere(&a, &b, &worker, &n8n).await;
    let alone = invalidate(&a, "alpha").await;
    assert_eq!((alone["published"].clone(), alone["invalidated"].clone()), (Value::Bool(false), Value::from(1)));
    refetches(&n8n, Duration::from_secs(1), "the token server dropped its own copy", async || {
        config_of(&a, "alpha").await;
    })
    .await;

    redis.restart().await;
    until(LIMIT, "every instance follows invalidations again", async || subscribers(&redis).await == 3).await;
    // Back on Redis, each instance dropped what it cached meanwhile (invalidations may have been
    // missed); fetched again, the profile stays cached.
    until(LIMIT, "every instance caches the profile again", async || {
        let before = n8n.hits();
        let _ = (config_of(&a, "alpha").await, config_of(&b, "alpha").await, worker.get("alpha").await);
        n8n.hits() == before
    })
    .await;
    until(LIMIT, "the invalidation is published again", async || invalidate(&a, "alpha").await["published"] == true)
        .await;
    refetches(&n8n, Duration::from_secs(1), "the other token server hears of it again", async || {
        config_of(&b, "alpha").await;
    })
    .await;
    refetches(&n8n, Duration::from_secs(1), "the worker hears of it again", async || {
        let _ = worker.get("alpha").await;
    })
    .await;
}

/// A `token-server` process whose log lines are collected as it writes them.
struct TokenServerProcess {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
    _child: tokio::process::Child,
}

impl TokenServerProcess {
    async fn start(redis: &RedisServer) -> Self {
        use tokio::io::AsyncBufReadExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_token-server"))
            .env("LIVEKIT_URL", "ws://127.0.0.1:7880")
            .env("LIVEKIT_API_KEY", "devkey")
            .env("LIVEKIT_API_SECRET", "secret")
            .env("PROFILES_DIR", support::repo_path("profiles"))
            .env("WEB_DIR", support::repo_path("web"))
            .env("WEB_HOST", "127.0.0.1")
            .env("WEB_PORT", port.to_string())
            .env("REDIS_URL", redis.url())
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("token-server runs");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let collected = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lock().expect("not poisoned").push(line);
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        until(LIMIT, "the token server answers", async || {
            reqwest::get(format!("{url}/health")).await.is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        Self { url, log, _child: child }
    }

    fn lines_with(&self, text: &str) -> usize {
        self.log.lock().expect("not poisoned").iter().filter(|line| line.contains(text)).count()
    }

    async fn token(&self) -> StatusCode {
        reqwest::Client::new().post(format!("{}/api/token", self.url)).send().await.expect("reachable").status()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_server_warns_once_when_redis_goes_and_says_when_it_is_back() {
    let mut redis = RedisServer::start().await;
    let server = TokenServerProcess::start(&redis).await;
    assert_eq!(server.token().await, StatusCode::OK);
    assert_eq!(redis.keys("voice-agent:rate:token:*").await.len(), 1, "the budget is counted in Redis");

    redis.kill().await;
    const DOWN: &str = "Redis (REDIS_URL) does not answer";
    until(LIMIT, "a warning that Redis is down", async || {
        assert_eq!(server.token().await, StatusCode::OK, "tokens are still issued");
        server.lines_with(DOWN) > 0
    })
    .await;
    // Past several retries (0.5 s, then 1 s, ...), still the one warning.
    let retried = Instant::now();
    until(Duration::from_secs(5), "requests go on while Redis is away", async || {
        server.token().await;
        retried.elapsed() > Duration::from_secs(2)
    })
    .await;
    assert_eq!(server.lines_with(DOWN), 1, "warned once, not at every request");
    let warning = server.log.lock().expect("not poisoned").iter().find(|l| l.contains(DOWN)).cloned();
    assert!(warning.is_some_and(|w| w.contains("WARN") && !w.contains("redis://")), "a warning without the URL");

    redis.restart().await;
    until(LIMIT, "the token server is back on Redis", async || {
        server.token().await;
        server.lines_with("Redis answers again") == 1
    })
    .await;
    assert!(!redis.keys("voice-agent:rate:token:*").await.is_empty(), "the budget is counted in Redis again");
}
