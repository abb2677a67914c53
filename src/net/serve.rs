//! The async shell: accepts connections, admits or refuses them, and runs each on hyper with the
//! limits applied. It decides nothing the limits and [`Admission`] do not say.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::admission::{Admission, Refusal, Slot};
use super::body::{BodyProblem, Bounded};
use super::limits::{Limits, MAX_HEAD_BYTES};
use super::stall::StallGuard;

/// Refused connections being answered at once; beyond this they are closed without an answer.
const REFUSALS_IN_FLIGHT: usize = 64;
/// Time a refused connection gets to send its request's head, take its 503, and finish sending.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// What is read of a refused request: its head, or as much of it as fits.
const REFUSAL_HEAD_BYTES: usize = 8 * 1024;
/// Refusals are logged at most this often, with their count, so a flood does not flood the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// What a refused connection may still send after its 503, read and dropped so that closing the
/// connection does not reset it before the client has read the answer.
const REFUSAL_DRAIN_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets requests
/// in flight finish within `limits.shutdown_grace` and cuts what is left.
///
/// Handlers can extract `ConnectInfo<SocketAddr>` (the TCP peer), as with
/// `into_make_service_with_connect_info`.
pub async fn serve<L>(mut listener: L, router: Router, limits: Limits, shutdown: impl Future<Output = ()> + Send)
where
    L: Listener<Addr = SocketAddr>,
{
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let admission = Admission::new(limits.max_connections, limits.max_connections_per_client);
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let limits = Arc::new(limits);
    let (closing, closing_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut refused_unlogged: u64 = 0;
    let mut last_logged: Option<Instant> = None;
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            (io, peer) = listener.accept() => match admission.admit(peer.ip()) {
                Ok(slot) => {
                    let connection = Connection { peer, router: router.clone(), limits: limits.clone(), _slot: slot };
                    tasks.spawn(connection.run(io, closing_rx.clone()));
                }
                Err(refusal) => {
                    refused_unlogged += 1;
                    if last_logged.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
                        let cap = match refusal {
                            Refusal::Full => "the connection cap",
                            Refusal::ClientFull => "a client's connection cap",
                        };
                        tracing::warn!(
                            %address,
                            held = admission.held(),
                            refused = refused_unlogged,
                            "{cap} is reached; refusing connections with 503 (logged at most once a minute)"
                        );
                        refused_unlogged = 0;
                        last_logged = Some(Instant::now());
                    }
                    if let Ok(permit) = refusals.clone().try_acquire_owned() {
                        tasks.spawn(async move {
                            refuse(io, refusal).await;
                            drop(permit);
                        });
                    }
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    // Cannot fail: this function holds a receiver itself.
    let _ = closing.send(true);
    let finished = tokio::time::timeout(limits.shutdown_grace, async { while tasks.join_next().await.is_some() {} });
    if finished.await.is_err() {
        tracing::warn!(%address, left = tasks.len(), "connections still busy after the shutdown grace are cut");
        tasks.shutdown().await;
    }
}

/// One admitted connection; its slot is held until the connection ends or is upgraded.
struct Connection {
    peer: SocketAddr,
    router: Router,
    limits: Arc<Limits>,
    _slot: Slot,
}

impl Connection {
    async fn run<IO>(self, io: IO, mut closing: watch::Receiver<bool>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(StallGuard::new(io, self.limits.write_stall_timeout));
        let (peer, router, limits) = (self.peer, self.router.clone(), self.limits.clone());
        let service = hyper::service::service_fn(move |request| handle(request, peer, router.clone(), limits.clone()));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.request_head_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let mut connection = pin!(builder.serve_connection(io, service).with_upgrades());
        let mut draining = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.peer, "connection ended: {e}");
                    }
                    return;
                }
                _ = closing.wait_for(|closing| *closing), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    router: Router,
    limits: Arc<Limits>,
) -> Result<Response<Body>, Infallible> {
    if announced_length(request.headers()).is_some_and(|length| length > limits.max_body_bytes) {
        return Ok(body_problem(BodyProblem::TooLarge { limit: limits.max_body_bytes }));
    }
    let problem = Arc::new(OnceLock::new());
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    let body = Body::new(Bounded::new(body, limits.max_body_bytes, limits.body_timeout, problem.clone()));
    let response = router.oneshot(Request::from_parts(parts, body)).await?;
    // Whatever the handler made of a body cut off, the client is told what happened.
    Ok(match problem.get() {
        Some(problem) => body_problem(*problem),
        None => response,
    })
}

fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// 413 or 408, in the API's error shape, closing the connection: what is left of the body is
/// never read.
fn body_problem(problem: BodyProblem) -> Response<Body> {
    let body = error_json(problem.code(), &problem.to_string());
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = problem.status();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn error_json(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

/// Answers the request with 503 and closes, within [`REFUSAL_TIME`]. The head is read first:
/// HTTP clients treat an answer that arrives before their request as a broken connection.
async fn refuse<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, refusal: Refusal) {
    let message = match refusal {
        Refusal::Full => "the server has too many connections; try again shortly",
        Refusal::ClientFull => "this client has too many connections open; close some and try again",
    };
    let body = error_json("server_busy", message);
    let answer = format!(
        "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        StatusCode::SERVICE_UNAVAILABLE,
        body.len(),
    );
    let answered = async {
        let mut head = vec![0u8; REFUSAL_HEAD_BYTES];
        let mut read = 0;
        while read < head.len() && !head[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            match io.read(&mut head[read..]).await? {
                0 => return Ok(()),
                n => read += n,
            }
        }
        io.write_all(answer.as_bytes()).await?;
        io.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN_BYTES {
            match io.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_TIME, answered).await;
}
