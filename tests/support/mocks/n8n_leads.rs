//! n8n's lead-capture webhook: keeps every POST exactly as it arrived (headers, body bytes, time,
//! and what the spool directory held at that instant) and answers from a script, faults included:
//! any status with or without `Retry-After`, a redirect, no answer at all, or a dropped connection.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Server;

pub const PATH: &str = "/webhook/lead-capture";

/// What n8n answers once the script is played: a Webhook node in "Immediately" mode.
const STARTED: &str = r#"{"message":"Workflow was started"}"#;

#[derive(Debug, Clone)]
pub enum Reply {
    /// This status and body, with `Retry-After: <seconds>` when given.
    Status { status: u16, retry_after: Option<u64>, body: String },
    /// This 3xx status with `Location: <location>`, as a proxy in front of a moved n8n answers.
    Redirect { status: u16, location: String },
    /// No answer ever; the connection stays open, as with a stuck workflow.
    Hang,
    /// The connection is closed without an answer, as when n8n crashes.
    Drop,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self::Status { status, retry_after: None, body: format!(r#"{{"code":{status},"message":"scripted"}}"#) }
    }

    pub fn retry_after(status: u16, seconds: u64) -> Self {
        Self::Status { status, retry_after: Some(seconds), body: r#"{"message":"try later"}"#.into() }
    }

    pub fn body(status: u16, body: &str) -> Self {
        Self::Status { status, retry_after: None, body: body.into() }
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Self::Redirect { status, location: location.into() }
    }
}

/// One POST as n8n saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// File names in the watched spool directory when the request arrived, sorted.
    pub spool: Vec<String>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Checks `X-Signature-256` as a workflow would: HMAC-SHA256 of the exact body bytes.
    pub fn signed_with(&self, secret: &str) -> bool {
        let Some(hex) = self.header("x-signature-256").and_then(|v| v.strip_prefix("sha256=")) else { return false };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(&self.body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        hex == expected
    }
}

struct Script {
    replies: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
    spool: Option<PathBuf>,
}

pub struct MockLeads {
    server: Server,
    script: Arc<Script>,
}

impl MockLeads {
    /// Plays `replies` in order, then answers 200 to everything.
    pub async fn start(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self::serve(None, replies).await
    }

    /// As [`Self::start`], noting what `spool` holds when each request arrives.
    pub async fn watching(spool: &Path, replies: impl IntoIterator<Item = Reply>) -> Self {
        Self::serve(Some(spool.to_path_buf()), replies).await
    }

    async fn serve(spool: Option<PathBuf>, replies: impl IntoIterator<Item = Reply>) -> Self {
        let script = Arc::new(Script {
            replies: Mutex::new(replies.into_iter().collect()),
            received: Mutex::new(Vec::new()),
            spool,
        });
        let app = Router::new().route(PATH, post(lead)).with_state(script.clone());
        Self { server: Server::start(app).await, script }
    }

    /// What N8N_BASE_URL would be.
    pub fn base_url(&self) -> url::Url {
        self.server.url("")
    }

    /// The webhook's full URL.
    pub fn url(&self) -> url::Url {
        self.server.url(PATH)
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.received.lock().expect("not poisoned").clone()
    }

    /// Waits until `count` requests have arrived, failing the test after `within`.
    pub async fn until(&self, count: usize, within: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(started.elapsed() < within, "n8n got {} of {count} requests in {within:?}", received.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

async fn lead(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    let spool = script.spool.as_deref().map(listing).unwrap_or_default();
    script.received.lock().expect("not poisoned").push(Received { at: Instant::now(), headers, body, spool });
    let reply = script.replies.lock().expect("not poisoned").pop_front();
    match reply.unwrap_or_else(|| Reply::body(200, STARTED)) {
        Reply::Status { status, retry_after, body } => {
            let status = StatusCode::from_u16(status).expect("scripted statuses are valid");
            let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            if let Some(seconds) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
            }
            response
        }
        Reply::Redirect { status, location } => {
            let status = StatusCode::from_u16(status).expect("scripted statuses are valid");
            (status, [(header::LOCATION, location)], "Moved").into_response()
        }
        Reply::Hang => std::future::pending().await,
        // Unwinding ends this connection's task, so the socket closes with no answer; unlike
        // `panic!` it prints nothing.
        Reply::Drop => std::panic::resume_unwind(Box::new("the mock drops the connection")),
    }
}
