//! The example agent written with the public API (`examples/custom_agent/`) holds a call through
//! the dev server: its own async tool reaches its web service, its prompt hook adds its note
//! before the model answers, and the caller hears the answer.

mod support;

#[path = "../examples/custom_agent/bakery.rs"]
mod bakery;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::{DateTime, FixedOffset, TimeZone};
use serde_json::{Value, json};
use support::agent::Stage;
use support::mocks::openai::Reply;
use voice_agent::agent::per_call;
use voice_agent::providers::{self, registry};
use voice_agent::worker::JobContext;

const LIMIT: Duration = Duration::from_secs(30);

/// Half past nine in the evening at the bakery: closed.
fn evening() -> DateTime<FixedOffset> {
    let ist = FixedOffset::east_opt(5 * 3600 + 1800).expect("a valid offset");
    ist.with_ymd_and_hms(2026, 12, 5, 21, 30, 0).single().expect("a valid time")
}

/// A stock service answering `GET /stock?item=NAME`, remembering what it was asked.
async fn stock_service(asked: Arc<Mutex<Vec<String>>>) -> url::Url {
    async fn stock(State(asked): State<Arc<Mutex<Vec<String>>>>, Query(query): Query<Vec<(String, String)>>) -> String {
        let item = query.into_iter().find(|(name, _)| name == "item").map(|(_, value)| value).unwrap_or_default();
        let available = if item == "croissant" { json!(12) } else { Value::Null };
        asked.lock().unwrap_or_else(PoisonError::into_inner).push(item);
        json!({ "available": available }).to_string()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("bound");
    let app = Router::new().route("/stock", get(stock)).with_state(asked);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/stock").parse().expect("a URL")
}

fn tool_results(body: &Value) -> Vec<Value> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| serde_json::from_str(m["content"].as_str()?).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_agent_looks_up_its_stock_and_tells_the_model_the_bakery_is_closed() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let stock = Arc::new(bakery::StockTool::new(Some(stock_service(asked.clone()).await)));
    let stage = Stage::start_with_session(support::worker::profiles(), move |keys, _outbox| {
        let http = reqwest::Client::new();
        per_call(move |job: &JobContext| {
            let profile = &job.profile;
            let built = providers::build(profile.chains(), &keys, &http, &profile.id)?;
            let first = profile.llm.providers.first().ok_or("no chat provider")?;
            let model = registry::model(registry::Kind::Llm, first);
            bakery::bakery_agent(job, built, &model, stock.clone(), evening).map_err(|e| e.to_string())
        })
    })
    .await;
    let answer = "Yes, we have twelve croissants, but we are closed now; come tomorrow from seven.";
    stage.sarvam.stt_answers(["Do you have croissants? Can I pick some up now?"]);
    stage.llm.replies([
        Reply::ToolCalls(vec![("check_stock".into(), r#"{"item":"Croissant"}"#.into())]),
        Reply::Text(answer.into()),
    ]);

    let mut caller = stage.call("bakery", "{}").await;
    assert_eq!(caller.agent_said(1, LIMIT).await, "Hello, Crumb and Co! What can I bake for you today?");
    caller.say(&support::audio::speech_clip(0.9, 4.6)).await;
    let said = caller.agent_said(2, LIMIT).await;
    assert!(said.ends_with(answer), "the answer after the lookup (a filler may come first): {said}");

    assert_eq!(*asked.lock().unwrap_or_else(PoisonError::into_inner), ["croissant"], "the tool asked its service");
    let requests = stage.llm.records();
    let first = &requests[0].body;
    let offered: Vec<&str> =
        first["tools"].as_array().into_iter().flatten().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert!(offered.contains(&"check_stock"), "{offered:?}");
    let notes: Vec<&str> = first["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "system")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(notes.contains(&"Bakery status: it is 21:30 and the bakery is closed."), "the hook's note: {notes:?}");
    assert!(notes[0].starts_with("You take orders for Crumb & Co"), "the agent's own instructions first: {notes:?}");
    assert_eq!(tool_results(&requests[1].body), [json!({"item": "Croissant", "available": 12})]);
    assert_eq!(bakery::bakery_clock().offset().local_minus_utc(), 5 * 3600 + 1800, "the bakery's clock is IST");
}
