//! A mock n8n that answers the agent-config webhook exactly as n8n 1.x does in each of its
//! states (see shared reference providers.md §6 and n8n-on-these-machines.md).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::JoinHandle;

/// How the mock answers for one agent id.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A Respond-to-Webhook node answering this JSON.
    Json(StatusCode, String),
    /// The Webhook node in "Immediately" mode.
    WorkflowStarted,
    /// A production URL whose workflow is not active.
    NotRegistered,
    /// A node failed.
    ErrorInWorkflow,
    /// Express before any workflow is activated.
    CannotGet,
    /// Answers `inner` after `delay`.
    Slow(Duration, Box<Answer>),
    /// A 200 whose body is not JSON.
    BadJson,
}

pub fn profile_json(id: &str, name: &str) -> String {
    format!(r#"{{"id":"{id}","name":"{name}","system_prompt":"You are {name}.","language":"en-IN","voice":"karun"}}"#)
}

#[derive(Default)]
struct Script {
    answers: Mutex<HashMap<String, Answer>>,
    hits: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

pub struct MockN8n {
    pub base_url: url::Url,
    script: Arc<Script>,
    task: JoinHandle<()>,
}

impl MockN8n {
    pub async fn start() -> Self {
        let script = Arc::new(Script::default());
        let app = Router::new()
            .route("/webhook/agent-config", get(agent_config))
            .fallback(not_registered_any)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
        let address: SocketAddr = listener.local_addr().expect("bound");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("mock n8n serves");
        });
        Self { base_url: format!("http://{address}").parse().expect("valid URL"), script, task }
    }

    /// Sets the answer for one agent id; ids without one get the workflow's "unknown agent" 404.
    pub fn answer(&self, id: &str, answer: Answer) {
        self.script.answers.lock().expect("not poisoned").insert(id.to_owned(), answer);
    }

    pub fn hits(&self) -> usize {
        self.script.hits.load(Ordering::SeqCst)
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.script.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests ever answered at once.
    pub fn most_in_flight(&self) -> usize {
        self.script.most_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for MockN8n {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn agent_config(State(script): State<Arc<Script>>, Query(query): Query<HashMap<String, String>>) -> Response {
    script.hits.fetch_add(1, Ordering::SeqCst);
    let now = script.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    script.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let _answered = InFlight(&script.in_flight);
    let id = query.get("agent_id").cloned().unwrap_or_default();
    let answer = script.answers.lock().expect("not poisoned").get(&id).cloned();
    match answer {
        Some(answer) => respond(answer).await,
        None => json(
            StatusCode::NOT_FOUND,
            format!(r#"{{"error":"unknown_agent","message":"No agent profile with id {id}"}}"#),
        ),
    }
}

/// Counts a request out when its answer is done, or when the client gave up on it.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn respond(answer: Answer) -> Response {
    match answer {
        Answer::Json(status, body) => json(status, body),
        Answer::WorkflowStarted => json(StatusCode::OK, r#"{"message":"Workflow was started"}"#.to_owned()),
        Answer::NotRegistered => json(
            StatusCode::NOT_FOUND,
            concat!(
                r#"{"code":404,"message":"The requested webhook \"GET agent-config\" is not registered.","#,
                r#""hint":"The workflow must be active for a production URL to run successfully. You can activate the workflow using the toggle in the top-right of the editor. Note that unlike test URL calls, production URL calls aren't shown on the canvas (only in the executions list)","#,
                r#""stacktrace":"Error: The requested webhook \"GET agent-config\" is not registered.\n    at TestWebhooks.getWebhookMethods"}"#
            )
            .to_owned(),
        ),
        Answer::ErrorInWorkflow => json(StatusCode::INTERNAL_SERVER_ERROR, r#"{"message":"Error in workflow"}"#.to_owned()),
        Answer::CannotGet => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n</head>\n<body>\n<pre>Cannot GET /webhook/agent-config</pre>\n</body>\n</html>\n",
        )
            .into_response(),
        Answer::Slow(delay, inner) => {
            tokio::time::sleep(delay).await;
            Box::pin(respond(*inner)).await
        }
        Answer::BadJson => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], "{\"id\": \"x\", ").into_response(),
    }
}

async fn not_registered_any() -> Response {
    respond(Answer::NotRegistered).await
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}
