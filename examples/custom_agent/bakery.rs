//! The bakery's agent: what it says, what it can look up, and what it is told before each answer.
//! Everything here uses the crate's public API only; `main.rs` hands it to the worker.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Timelike};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use voice_agent::agent::{Agent, AgentHooks, BuildError, CallSummary, Tool, ToolOutput, ToolRequest, TurnContext};
use voice_agent::providers::CallProviders;
use voice_agent::providers::llm::{ChatMessage, ToolSpec};
use voice_agent::worker::JobContext;

/// The bakery's opening hours, local time: 7:00 to 20:00.
const OPEN_HOURS: std::ops::Range<u32> = 7..20;
/// What the bakery bakes when no stock service is configured.
const SHELF: &[(&str, u32)] = &[("croissant", 12), ("sourdough", 4), ("baguette", 0), ("cinnamon roll", 9)];

/// The agent for one call: the call's providers, the bakery's prompt, its stock lookup and
/// its per-turn notes.
pub fn bakery_agent(
    job: &JobContext,
    providers: CallProviders,
    model: &str,
    stock: Arc<StockTool>,
    clock: fn() -> DateTime<FixedOffset>,
) -> Result<Agent, BuildError> {
    let language = job.choice.language.clone();
    Agent::builder()
        .agent_id("bakery")
        .speech_to_text(providers.stt, &language)
        .chat_model(providers.llm, model)
        .text_to_speech(providers.tts, &language, &job.choice.voice)
        .instructions(
            "You take orders for Crumb & Co, a small bakery. Answer in one or two short sentences, \
             no lists. Before promising an item, check it with check_stock.",
        )
        .greeting("Hello, Crumb and Co! What can I bake for you today?")
        .tool(stock)
        .hooks(Arc::new(Counter { clock }))
        .build()
}

/// Looks up how many of an item are on the shelf: at a web service when one is configured,
/// otherwise in the built-in shelf. Async, so the conversation goes on while it waits.
pub struct StockTool {
    http: reqwest::Client,
    /// `GET {service}?item=NAME` answering `{"available": N}`.
    service: Option<url::Url>,
}

impl StockTool {
    /// A lookup at `service`, or in the built-in shelf when `None`.
    pub fn new(service: Option<url::Url>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap_or_default();
        Self { http, service }
    }

    async fn available(&self, item: &str) -> Result<Option<u32>, String> {
        let Some(service) = &self.service else {
            return Ok(SHELF.iter().find(|(name, _)| *name == item).map(|(_, count)| *count));
        };
        #[derive(Deserialize)]
        struct Stock {
            available: Option<u32>,
        }
        let response = self.http.get(service.clone()).query(&[("item", item)]).send().await;
        let response = response.and_then(|r| r.error_for_status()).map_err(|e| format!("stock service: {e}"))?;
        let stock: Stock = response.json().await.map_err(|e| format!("stock service answered oddly: {e}"))?;
        Ok(stock.available)
    }
}

impl Tool for StockTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "check_stock".into(),
            description: "How many of a baked item are on the shelf right now.".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"item": {"type": "string", "description": "The item, singular, lower case."}},
                "required": ["item"],
            }),
        }
    }

    fn filler(&self) -> Option<String> {
        Some("Let me look at the shelf.".into())
    }

    fn call(&self, request: ToolRequest) -> BoxFuture<'_, ToolOutput> {
        Box::pin(async move {
            #[derive(Deserialize)]
            struct Arguments {
                item: String,
            }
            let result = match serde_json::from_str::<Arguments>(&request.arguments) {
                Err(e) => serde_json::json!({"error": format!("bad arguments ({e}); give the item's name")}),
                Ok(Arguments { item }) => match self.available(item.trim().to_lowercase().as_str()).await {
                    Ok(Some(count)) => serde_json::json!({"item": item, "available": count}),
                    Ok(None) => serde_json::json!({"item": item, "error": "we do not bake that"}),
                    Err(e) => serde_json::json!({"error": e, "hint": "tell the caller you cannot check right now"}),
                },
            };
            ToolOutput { result: result.to_string(), say: None, end_call: false }
        })
    }
}

/// The bakery's prompt logic: before each answer, tells the model whether the bakery is open
/// now, so "can I pick it up in an hour?" gets a true answer; after the call, counts it.
pub struct Counter {
    clock: fn() -> DateTime<FixedOffset>,
}

impl AgentHooks for Counter {
    fn user_turn_completed<'a>(&'a self, turn: &'a mut TurnContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let now = (self.clock)();
            let open = if OPEN_HOURS.contains(&now.hour()) { "open" } else { "closed" };
            let note = format!("Bakery status: it is {} and the bakery is {open}.", now.format("%H:%M"));
            turn.messages.push(ChatMessage::system(note));
        })
    }

    fn call_ended(&self, summary: CallSummary) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tracing::info!(call = %summary.call_id, reason = ?summary.end_reason, turns = summary.turns.len(), "bakery call ended");
        })
    }
}

/// The bakery's local time (India Standard Time).
pub fn bakery_clock() -> DateTime<FixedOffset> {
    let ist = FixedOffset::east_opt(5 * 3600 + 1800).expect("+05:30 is a valid offset");
    chrono::Utc::now().with_timezone(&ist)
}
