//! Local stand-ins for the speech and chat providers, speaking their wire formats exactly as
//! shared reference providers.md documents them, with faults on demand and a record of what
//! clients sent.

pub mod deepgram;
pub mod elevenlabs;
pub mod n8n_leads;
pub mod openai;
pub mod sarvam;
pub mod tool_hooks;

use std::collections::{HashMap, VecDeque};
use std::f32::consts::TAU;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::serve::ListenerExt;
use bytes::Bytes;
use futures_util::stream;
use tokio::task::JoinHandle;

/// A failure a mock plays instead of (or in the middle of) its normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with the provider's rate-limit body, and a `retry-after` header when given.
    RateLimited { retry_after: Option<Duration> },
    /// 429 saying the account's credits or quota are spent.
    QuotaExhausted,
    /// 500 with the provider's internal-error body.
    ServerError,
    /// The key is refused (403 for Sarvam, 401 for OpenAI and Groq).
    AuthFailure,
    /// The answer starts this much later.
    Slow(Duration),
    /// The connection is cut after part of the answer.
    DropConnection,
    /// An error message inside a streamed answer, after some of it.
    ErrorMidStream,
}

impl Fault {
    /// Faults answered with an HTTP status in place of the request or WebSocket handshake.
    pub fn is_status(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::QuotaExhausted | Self::ServerError | Self::AuthFailure)
    }
}

/// Faults waiting for the next requests, in order.
#[derive(Default, Clone)]
pub struct Faults(Arc<Mutex<VecDeque<Fault>>>);

impl Faults {
    pub fn push(&self, fault: Fault, times: usize) {
        let mut queue = self.0.lock().expect("not poisoned");
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// The next fault when it can happen at this point of an exchange (`applies`); otherwise it
    /// stays for a later point.
    pub fn take(&self, applies: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut queue = self.0.lock().expect("not poisoned");
        if queue.front().is_some_and(applies) { queue.pop_front() } else { None }
    }
}

/// A mock's HTTP server on a free loopback port, stopped when dropped.
pub struct Server {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
        let address = listener.local_addr().expect("bound");
        let task = tokio::spawn(async move {
            // As the providers' servers do, so small answers leave at once.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).await.expect("the mock serves");
        });
        Self { address, task }
    }

    pub fn url(&self, path: &str) -> url::Url {
        format!("http://{}{path}", self.address).parse().expect("a valid URL")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A body made of `parts`, each sent after its delay; an error part breaks the connection there,
/// as a server crashing mid-answer.
pub fn timed_body(parts: Vec<(Duration, Result<Bytes, io::Error>)>) -> Body {
    Body::from_stream(stream::unfold(VecDeque::from(parts), |mut parts| async move {
        let (delay, part) = parts.pop_front()?;
        tokio::time::sleep(delay).await;
        Some((part, parts))
    }))
}

pub fn dropped() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "the mock drops the connection")
}

/// One field of a multipart/form-data body.
pub struct FormPart {
    pub file_name: Option<String>,
    pub content: Vec<u8>,
}

/// The fields of a multipart/form-data body by name.
pub fn multipart(content_type: &str, body: &[u8]) -> Option<HashMap<String, FormPart>> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut parts = HashMap::new();
    let mut rest = body;
    loop {
        let at = find(rest, delimiter.as_bytes())?;
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let content = &rest[head_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
        let attribute = |name: &str| {
            let marker = format!("{name}=\"");
            let start = head.find(&marker)? + marker.len();
            Some(head[start..].split('"').next()?.to_owned())
        };
        parts.insert(
            attribute("name")?,
            FormPart { file_name: attribute("filename"), content: content[..end].to_vec() },
        );
        rest = &content[end + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// A 440 Hz tone, so the audio is not silence.
pub fn tone(duration: Duration, rate: u32) -> Vec<i16> {
    let count = (duration.as_secs_f64() * f64::from(rate)).round() as usize;
    (0..count).map(|i| ((i as f32 * 440.0 * TAU / rate as f32).sin() * 8_000.0) as i16).collect()
}
