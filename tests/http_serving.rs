//! The hardened serving every HTTP server of the product runs on (`voice_agent::net::serve`),
//! against slow and hostile clients: half-sent requests, a slowloris, idle keep-alive
//! connections, stalled and oversized bodies, clients that never read, and clients that open too
//! many connections. Normal requests keep being answered throughout. Limits are short here so
//! the tests are quick; the products' own limits are the defaults of `Limits`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use voice_agent::net::{self, Limits};

const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// Far more than any limit here: what "eventually" means in these tests.
const PATIENCE: Duration = Duration::from_secs(10);
const BIG: usize = 16 * 1024 * 1024;

fn limits() -> Limits {
    Limits {
        max_connections: 1_000,
        max_connections_per_client: None,
        request_head_timeout: HEAD_TIMEOUT,
        body_timeout: Duration::from_secs(1),
        max_body_bytes: 1024,
        write_stall_timeout: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(2),
    }
}

struct Server {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(limits: Limits) -> Server {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/echo", post(|body: Bytes| async move { body.len().to_string() }))
        .route("/big", get(|| async { vec![b'x'; BIG] }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let address = listener.local_addr().expect("bound");
    let task = tokio::spawn(net::serve(listener, app, limits, std::future::pending()));
    Server { address, task }
}

async fn normal_request(server: &Server) -> Result<StatusCode, reqwest::Error> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
    Ok(client.get(format!("http://{}/", server.address)).send().await?.status())
}

/// Reads until the server closes the connection; `None` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut received)).await {
        Ok(_) => Some(received),
        Err(_) => None,
    }
}

async fn connect_from(local: &str, server: &Server) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.bind(format!("{local}:0").parse().expect("an address")).expect("bound to a loopback address");
    socket.connect(server.address).await.expect("connected")
}

#[tokio::test(flavor = "multi_thread")]
async fn hundreds_of_half_sent_requests_are_cut_off_while_normal_requests_are_answered() {
    let server = start(limits()).await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(server.address).await.expect("connected");
        stream.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n").await.expect("half a request sent");
        slow.push(stream);
    }
    for _ in 0..20 {
        assert_eq!(normal_request(&server).await.expect("answered"), StatusCode::OK);
    }
    let started = Instant::now();
    for stream in &mut slow {
        let rest = PATIENCE.saturating_sub(started.elapsed());
        assert!(closed_within(stream, rest).await.is_some(), "a half-sent request is cut off");
    }
    assert_eq!(normal_request(&server).await.expect("answered"), StatusCode::OK);
}

#[tokio::test]
async fn a_slowloris_dripping_its_head_is_cut_off_at_the_deadline() {
    let server = start(limits()).await;
    let stream = TcpStream::connect(server.address).await.expect("connected");
    let (mut reader, mut writer) = stream.into_split();
    let closed = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink).await;
    });
    writer.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").await.expect("sent");
    let started = Instant::now();
    while !closed.is_finished() {
        assert!(started.elapsed() < PATIENCE, "a client that keeps sending one byte at a time is still connected");
        // Each byte is progress, and still the head must be complete by the deadline.
        if writer.write_all(b"a").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = start(limits()).await;
    let mut stream = TcpStream::connect(server.address).await.expect("connected");
    stream.write_all(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n").await.expect("sent");
    let answer = closed_within(&mut stream, PATIENCE).await.expect("closed once idle");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "answered before: {answer}");
}

#[tokio::test]
async fn bodies_that_stall_or_grow_too_large_are_cut_off_with_408_or_413() {
    let server = start(limits()).await;

    let mut stalled = TcpStream::connect(server.address).await.expect("connected");
    stalled.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..").await.expect("sent");
    let answer = closed_within(&mut stalled, PATIENCE).await.expect("answered and closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"body_timeout\""), "{answer}");

    let mut announced = TcpStream::connect(server.address).await.expect("connected");
    announced.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n").await.expect("sent");
    let answer = closed_within(&mut announced, PATIENCE).await.expect("answered and closed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 413"), "a 1 GB announcement is refused at once");

    let mut chunked = TcpStream::connect(server.address).await.expect("connected");
    let chunk = format!("800\r\n{}\r\n", "y".repeat(0x800));
    chunked.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").await.expect("sent");
    chunked.write_all(chunk.as_bytes()).await.expect("sent");
    let answer = closed_within(&mut chunked, PATIENCE).await.expect("answered and closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "a body growing past the limit: {answer}");

    let client = reqwest::Client::new();
    let fine = client.post(format!("http://{}/echo", server.address)).body("x".repeat(1024)).send().await;
    let fine = fine.expect("answered");
    assert_eq!((fine.status(), fine.text().await.expect("text")), (StatusCode::OK, "1024".to_owned()));
}

#[tokio::test]
async fn a_client_that_never_reads_its_answer_loses_its_connection() {
    let server = start(Limits { max_connections: 1, ..limits() }).await;
    let mut hoarder = TcpStream::connect(server.address).await.expect("connected");
    hoarder.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("sent");

    let mut refused = false;
    let started = Instant::now();
    loop {
        match normal_request(&server).await {
            Ok(StatusCode::OK) => break,
            Ok(StatusCode::SERVICE_UNAVAILABLE) => refused = true,
            other => panic!("unexpected answer while the only slot is taken: {other:?}"),
        }
        assert!(started.elapsed() < PATIENCE, "the slot of a client that reads nothing is never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "while the hoarder held the only slot, others were told 503");
}

#[tokio::test]
async fn one_client_cannot_take_every_connection() {
    let server = start(Limits { max_connections_per_client: Some(10), ..limits() }).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(connect_from("127.0.0.2", &server).await);
    }
    let mut eleventh = connect_from("127.0.0.2", &server).await;
    eleventh.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("sent");
    let answer = closed_within(&mut eleventh, PATIENCE).await.expect("answered and closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("retry-after"), "{answer}");
    assert_eq!(normal_request(&server).await.expect("answered"), StatusCode::OK, "another client is served");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let address = listener.local_addr().expect("bound");
    let app = Router::new().route("/", get(|| async { "ok" }));
    let limits = Limits { request_head_timeout: Duration::from_secs(60), ..limits() };
    let serving = tokio::spawn(net::serve(listener, app, limits, async move {
        let _ = stopped.await;
    }));
    let mut idle = TcpStream::connect(address).await.expect("connected");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("sent");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.expect("answered");
    assert_eq!(&first, b"HTTP/1.1 200");
    stop.send(()).expect("serving");
    tokio::time::timeout(PATIENCE, serving).await.expect("serve returns").expect("no panic");
    assert!(closed_within(&mut idle, PATIENCE).await.is_some(), "the idle connection was closed");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// `agent-worker dev` runs the token server and the worker's health endpoint in one process,
/// under one descriptor limit. Hundreds of half-sent requests to the health port must neither
/// exhaust it nor stop `/api/token`; once cut off, the health endpoint answers again.
#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_of_the_health_port_do_not_stop_token_requests_in_dev() {
    let (livekit, web, health) = (free_port(), free_port(), free_port());
    let spool = tempfile::tempdir().expect("a spool directory");
    let root = env!("CARGO_MANIFEST_DIR");
    // A common descriptor limit: before connection caps, 300 slow connections exhausted it.
    let mut dev = tokio::process::Command::new("sh")
        .args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_agent-worker")])
        .args(["dev", "--livekit-bind", &format!("127.0.0.1:{livekit}"), "--rtc-ip", "127.0.0.1"])
        .env("SPOOL_DIR", spool.path())
        .env("WEB_HOST", "127.0.0.1")
        .env("WEB_PORT", web.to_string())
        .env("HEALTH_PORT", health.to_string())
        .env("PROFILES_DIR", format!("{root}/profiles"))
        .env("WEB_DIR", format!("{root}/web"))
        .env_remove("HEALTH_HOST")
        .env_remove("LIVEKIT_URL")
        .env_remove("SARVAM_API_KEY")
        .env_remove("GROQ_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("DEEPGRAM_API_KEY")
        .env_remove("ELEVENLABS_API_KEY")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent-worker dev runs");
    let health_url = format!("http://127.0.0.1:{health}/");
    // Every request on a new connection: a pooled one, admitted before the flood, proves nothing.
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(3)).pool_max_idle_per_host(0).build().expect("a client");
    let started = Instant::now();
    while !client.get(&health_url).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(30), "agent-worker dev came up with HEALTH_HOST unset");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut slow = Vec::new();
    for _ in 0..300 {
        match TcpStream::connect(("127.0.0.1", health)).await {
            Ok(mut stream) => {
                let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n").await;
                slow.push(stream);
            }
            Err(e) => panic!("the health port stopped taking connections: {e}"),
        }
    }
    let token_url = format!("http://127.0.0.1:{web}/api/token");
    for attempt in 0..5 {
        let answer = client.post(&token_url).body("{}").send().await;
        let status = answer.map(|a| a.status()).unwrap_or_else(|e| panic!("attempt {attempt}: /api/token failed: {e}"));
        assert_eq!(status, StatusCode::OK, "attempt {attempt}");
    }
    let busy = client.get(&health_url).send().await;
    assert!(!busy.is_ok_and(|r| r.status().is_success()), "slow clients hold every health slot: others are refused");
    let started = Instant::now();
    while !client.get(&health_url).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the slow connections were cut off and health answers again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(slow);
    let _ = dev.kill().await;
}
