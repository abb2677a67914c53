//! Webhooks that answer an agent's tools as n8n does, in each of its ways of answering (a
//! Respond-to-Webhook node, "Workflow was started", an inactive workflow, an empty 200 after a
//! failure, Express's HTML page), with delays, and a record of every request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::Server;

/// One way of answering a tool's request.
#[derive(Debug, Clone)]
pub enum Hook {
    /// A Respond-to-Webhook node answering this JSON with this status.
    Json(StatusCode, String),
    /// The Webhook node set to respond "Immediately".
    WorkflowStarted,
    /// A production URL whose workflow is not active.
    NotRegistered,
    /// The workflow failed before its Respond node (n8n 1.x answers an empty 200).
    Empty,
    /// Express before any workflow is active.
    CannotPost,
    /// `inner`, after `delay`.
    Slow(Duration, Box<Hook>),
}

/// A request a tool made.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl HookRequest {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("tool requests are JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Script {
    /// Answers per path (after `/webhook/`), in order; the last one repeats.
    answers: Mutex<HashMap<String, VecDeque<Hook>>>,
    requests: Mutex<Vec<HookRequest>>,
    /// When each answer was sent, by path.
    answered: Mutex<Vec<(String, Instant)>>,
}

pub struct MockToolHooks {
    server: Server,
    script: Arc<Script>,
}

impl MockToolHooks {
    pub async fn start() -> Self {
        let script = Arc::new(Script::default());
        let app = Router::new().route("/webhook/{path}", post(answer)).with_state(script.clone());
        Self { server: Server::start(app).await, script }
    }

    /// What N8N_BASE_URL would be.
    pub fn base_url(&self) -> url::Url {
        self.server.url("/")
    }

    pub fn url(&self, path: &str) -> url::Url {
        self.server.url(&format!("/webhook/{path}"))
    }

    /// Answers for `path`, in order; the last one answers every later request too.
    pub fn answer(&self, path: &str, hooks: impl IntoIterator<Item = Hook>) {
        self.script.answers.lock().expect("not poisoned").insert(path.to_owned(), hooks.into_iter().collect());
    }

    pub fn requests(&self) -> Vec<HookRequest> {
        self.script.requests.lock().expect("not poisoned").clone()
    }

    /// When the answers to `path` were sent.
    pub fn answered(&self, path: &str) -> Vec<Instant> {
        let answered = self.script.answered.lock().expect("not poisoned");
        answered.iter().filter(|(p, _)| p == path).map(|(_, at)| *at).collect()
    }
}

async fn answer(
    State(script): State<Arc<Script>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    script.requests.lock().expect("not poisoned").push(HookRequest { path: path.clone(), headers, body, at });
    let hook = {
        let mut answers = script.answers.lock().expect("not poisoned");
        match answers.get_mut(&path) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
    };
    let response = respond(hook.unwrap_or(Hook::NotRegistered), &path).await;
    script.answered.lock().expect("not poisoned").push((path, Instant::now()));
    response
}

async fn respond(hook: Hook, path: &str) -> Response {
    let json = |status: StatusCode, body: String| {
        (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
    };
    match hook {
        Hook::Json(status, body) => json(status, body),
        Hook::WorkflowStarted => json(StatusCode::OK, r#"{"message":"Workflow was started"}"#.to_owned()),
        Hook::NotRegistered => json(
            StatusCode::NOT_FOUND,
            format!(
                r#"{{"code":404,"message":"The requested webhook \"POST {path}\" is not registered.","hint":"The workflow must be active for a production URL to run successfully."}}"#
            ),
        ),
        Hook::Empty => (StatusCode::OK, "").into_response(),
        Hook::CannotPost => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!("<!DOCTYPE html>\n<html lang=\"en\">\n<body>\n<pre>Cannot POST /webhook/{path}</pre>\n</body>\n</html>\n"),
        )
            .into_response(),
        Hook::Slow(delay, inner) => {
            tokio::time::sleep(delay).await;
            Box::pin(respond(*inner, path)).await
        }
    }
}
