//! The profile store against a mock n8n that answers exactly like n8n does.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures_util::StreamExt;
use support::n8n::{Answer, MockN8n, profile_json};
use voice_agent::config::{ProfileDefaults, Role, Settings, Sources};
use voice_agent::profiles::{AgentProfile, FAILURE_RETRY, N8nClient, ProfileDoc, ProfileError, ProfileStore};

const TTL: Duration = Duration::from_secs(300);

/// The built-in defaults, from the real settings loader.
fn defaults() -> ProfileDefaults {
    Settings::load(&Sources::default(), Role::DevServer).expect("built-in settings are valid").defaults
}

fn local_profile(id: &str) -> AgentProfile {
    let doc: ProfileDoc = toml::from_str("name = \"Local\"\nsystem_prompt = \"local prompt\"").expect("valid TOML");
    doc.resolve(id, &defaults()).expect("valid profile")
}

fn store(n8n: &MockN8n, local: &[&str], timeout: Duration) -> ProfileStore {
    let client = N8nClient::new(reqwest::Client::new(), &n8n.base_url, "/webhook/agent-config", timeout);
    let local: BTreeMap<_, _> = local.iter().map(|id| ((*id).to_owned(), local_profile(id))).collect();
    ProfileStore::new(local, Some(client), defaults(), TTL)
}

#[tokio::test]
async fn a_profile_from_n8n_is_cached_until_the_ttl_expires() {
    let n8n = MockN8n::start().await;
    n8n.answer("sales", Answer::Json(StatusCode::OK, profile_json("sales", "Remote Sales")));
    let store = store(&n8n, &["sales"], Duration::from_secs(5));
    let start = Instant::now();

    let profile = store.get_at("sales", start).await.expect("profile");
    assert_eq!(profile.name, "Remote Sales", "n8n wins over the local profile");
    assert_eq!(profile.voice, "karun");
    store.get_at("sales", start + TTL - Duration::from_secs(1)).await.expect("cached");
    assert_eq!(n8n.hits(), 1, "served from the cache within the TTL");

    n8n.answer("sales", Answer::Json(StatusCode::OK, profile_json("sales", "Updated Sales")));
    let profile = store.get_at("sales", start + TTL).await.expect("refetched");
    assert_eq!((profile.name.as_str(), n8n.hits()), ("Updated Sales", 2), "asked again once the TTL passed");
}

#[tokio::test]
async fn concurrent_requests_for_one_agent_make_one_fetch() {
    let n8n = MockN8n::start().await;
    let slow = Answer::Slow(
        Duration::from_millis(300),
        Box::new(Answer::Json(StatusCode::OK, profile_json("sales", "Sales"))),
    );
    n8n.answer("sales", slow);
    n8n.answer("support", Answer::Json(StatusCode::OK, profile_json("support", "Support")));
    let store = Arc::new(store(&n8n, &[], Duration::from_secs(5)));

    let requests: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let id = if i % 10 == 9 { "support" } else { "sales" };
            tokio::spawn(async move { store.get(id).await.map(|p| p.name.clone()) })
        })
        .collect();
    for request in requests {
        let name = request.await.expect("task finished").expect("profile");
        assert!(name == "Sales" || name == "Support");
    }
    assert_eq!(n8n.hits(), 2, "one fetch per distinct agent");
}

#[tokio::test]
async fn a_stale_profile_is_served_while_n8n_fails() {
    let n8n = MockN8n::start().await;
    n8n.answer("sales", Answer::Json(StatusCode::OK, profile_json("sales", "Sales")));
    let store = store(&n8n, &[], Duration::from_secs(5));
    let start = Instant::now();
    store.get_at("sales", start).await.expect("first fetch");

    n8n.answer("sales", Answer::ErrorInWorkflow);
    let expired = start + TTL + Duration::from_secs(1);
    let profile = store.get_at("sales", expired).await.expect("stale profile instead of an error");
    assert_eq!(profile.name, "Sales");
    store.get_at("sales", expired + FAILURE_RETRY - Duration::from_secs(1)).await.expect("still stale");
    assert_eq!(n8n.hits(), 2, "a failing n8n is not asked again before the retry time");

    n8n.answer("sales", Answer::Json(StatusCode::OK, profile_json("sales", "Recovered")));
    let profile = store.get_at("sales", expired + FAILURE_RETRY).await.expect("recovered");
    assert_eq!((profile.name.as_str(), n8n.hits()), ("Recovered", 3));
}

/// Each way n8n can answer without a profile: the local profile is used when there is one,
/// else the error says what n8n answered and what to fix.
#[tokio::test]
async fn n8n_answers_that_are_not_profiles_fall_back_with_an_explanation() {
    let n8n = MockN8n::start().await;
    let cases: Vec<(&str, Answer, &str)> = vec![
        ("started", Answer::WorkflowStarted, "Respond to Webhook"),
        ("inactive", Answer::NotRegistered, "activate the workflow"),
        ("failing", Answer::ErrorInWorkflow, "executions list"),
        ("express", Answer::CannotGet, "no workflow is active"),
        ("garbled", Answer::BadJson, "not JSON"),
        (
            "partial",
            Answer::Json(StatusCode::OK, r#"{"id":"partial","name":"Half"}"#.into()),
            "missing field `system_prompt`",
        ),
        ("slow", Answer::Slow(Duration::from_secs(3), Box::new(Answer::WorkflowStarted)), "did not answer within"),
    ];
    for (id, answer, _) in &cases {
        n8n.answer(id, answer.clone());
    }
    let with_local = store(&n8n, &cases.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(), Duration::from_millis(500));
    let without_local = store(&n8n, &[], Duration::from_millis(500));
    for (id, _, explanation) in &cases {
        let profile = with_local.get(id).await.unwrap_or_else(|e| panic!("{id}: local fallback expected, got {e}"));
        assert_eq!(profile.system_prompt, "local prompt", "{id}");
        match without_local.get(id).await {
            Err(ProfileError::Unavailable { reason, .. }) => {
                assert!(reason.contains(explanation), "{id}: `{reason}` lacks `{explanation}`")
            }
            other => panic!("{id}: expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_agent_n8n_does_not_know_uses_the_local_profile_or_is_unknown() {
    let n8n = MockN8n::start().await;
    let store = store(&n8n, &["default"], Duration::from_secs(5));
    assert_eq!(store.get("default").await.expect("local").system_prompt, "local prompt");
    assert!(matches!(store.get("nobody").await, Err(ProfileError::UnknownAgent(id)) if id == "nobody"));
    store.get("nobody").await.expect_err("still unknown");
    assert_eq!(n8n.hits(), 2, "the 'unknown' answer is cached too");
    assert!(matches!(store.get("../x").await, Err(ProfileError::InvalidId(_))));
    assert_eq!(n8n.hits(), 2, "invalid ids never reach n8n");
}

#[tokio::test]
async fn invalidation_makes_the_next_request_ask_n8n() {
    let n8n = MockN8n::start().await;
    n8n.answer("sales", Answer::Json(StatusCode::OK, profile_json("sales", "Sales")));
    let store = store(&n8n, &[], Duration::from_secs(5));
    store.get("sales").await.expect("profile");
    assert_eq!(store.invalidate(Some("sales")), 1);
    store.get("sales").await.expect("profile");
    assert_eq!(n8n.hits(), 2);
}

#[tokio::test]
async fn without_n8n_only_local_profiles_exist() {
    let local: BTreeMap<_, _> = [("default".to_owned(), local_profile("default"))].into();
    let store = ProfileStore::new(local, None, defaults(), TTL);
    assert!(store.get("default").await.is_ok());
    assert!(matches!(store.get("sales").await, Err(ProfileError::UnknownAgent(_))));
}

/// Answers for made-up ids must not push real profiles out: after 1,100 of them, an n8n outage
/// still gets callers the last profile n8n gave.
#[tokio::test]
async fn a_flood_of_made_up_ids_leaves_the_real_profile_for_an_outage() {
    let n8n = MockN8n::start().await;
    n8n.answer("sales", Answer::Json(StatusCode::OK, profile_json("sales", "Sales")));
    let store = Arc::new(store(&n8n, &[], Duration::from_secs(5)));
    let start = Instant::now();
    store.get_at("sales", start).await.expect("first fetch");

    let flood = futures_util::stream::iter(0..1_100)
        .map(|n| {
            let store = store.clone();
            async move { store.get_at(&format!("made-up-{n}"), start + Duration::from_millis(n)).await }
        })
        .buffer_unordered(16);
    let answers: Vec<_> = flood.collect().await;
    assert!(answers.iter().all(|a| matches!(a, Err(ProfileError::UnknownAgent(_)))), "every made-up id is unknown");

    n8n.answer("sales", Answer::ErrorInWorkflow);
    let profile =
        store.get_at("sales", start + TTL + Duration::from_secs(1)).await.expect("the stale profile, not an error");
    assert_eq!(profile.name, "Sales");
    assert_eq!(n8n.hits(), 1 + 1_100 + 1, "n8n was asked, failed, and the stale profile was served");
}

/// At most a few requests go to n8n at once, whatever the number of ids asked for; an agent
/// with a stale profile gets it at once while n8n is busy.
#[tokio::test]
async fn requests_to_n8n_are_bounded_and_stale_profiles_do_not_wait_for_a_turn() {
    let n8n = MockN8n::start().await;
    n8n.answer("sales", Answer::Json(StatusCode::OK, profile_json("sales", "Sales")));
    let store = Arc::new(store(&n8n, &[], Duration::from_secs(5)));
    let start = Instant::now();
    store.get_at("sales", start).await.expect("first fetch");

    let slow = |id: &str| {
        Answer::Slow(Duration::from_millis(1_500), Box::new(Answer::Json(StatusCode::OK, profile_json(id, "Slow"))))
    };
    let ids: Vec<String> = (0..16).map(|n| format!("slow-{n}")).collect();
    for id in &ids {
        n8n.answer(id, slow(id));
    }
    let requests: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.get(&id).await.map(|p| p.name.clone()) })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while n8n.in_flight() < 8 {
        assert!(Instant::now() < deadline, "requests reach n8n");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hits = n8n.hits();
    let profile = store.get_at("sales", start + TTL + Duration::from_secs(1)).await.expect("the stale profile");
    assert_eq!(profile.name, "Sales");
    assert_eq!((n8n.hits(), n8n.in_flight()), (hits, 8), "served without waiting for n8n");

    for request in requests {
        assert_eq!(request.await.expect("finished").expect("a turn came within n8n's timeout"), "Slow");
    }
    assert_eq!(n8n.most_in_flight(), 8, "never more than 8 requests to n8n at once");
}

#[tokio::test]
async fn every_look_up_is_counted_by_its_outcome() {
    let n8n = MockN8n::start().await;
    n8n.answer("sales", Answer::Json(StatusCode::OK, profile_json("sales", "Sales")));
    let mut registry = voice_agent::metrics::Registry::new();
    let store = store(&n8n, &["local-only"], Duration::from_secs(5)).with_metrics(registry.profiles());
    let exposition = registry.finish();
    let start = Instant::now();

    store.get_at("sales", start).await.expect("fetched");
    store.get_at("sales", start + Duration::from_secs(1)).await.expect("cached");
    n8n.answer("sales", Answer::ErrorInWorkflow);
    n8n.answer("local-only", Answer::ErrorInWorkflow);
    store.get_at("sales", start + TTL).await.expect("the stale profile");
    store.get_at("local-only", start + TTL).await.expect("the local profile");

    let text = exposition.render();
    for (outcome, count) in [("miss", 1), ("hit", 1), ("stale", 1), ("error", 1)] {
        let series = format!("voice_agent_profile_fetches_total{{outcome=\"{outcome}\"}} {count}\n");
        assert!(text.contains(&series), "{series} in:\n{text}");
    }
}
