//! Workers for tests: ours, run in-process, and a hand-driven one that speaks the worker protocol
//! frame by frame; plus a TCP proxy whose connections a test can cut.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_protocol as pb;
use pb::{server_message, worker_message};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use voice_agent::config::{Role, Secret, Settings, Sources};
use voice_agent::livekit::signal;
use voice_agent::profiles::ProfileStore;
use voice_agent::worker::{AgentSession, Limits, Snapshot, Worker, WorkerConfig};

pub fn profiles() -> Arc<ProfileStore> {
    profiles_in(&super::repo_path("profiles"))
}

/// The profiles of the TOML files in `dir`.
pub fn profiles_in(dir: &std::path::Path) -> Arc<ProfileStore> {
    let env = vec![("PROFILES_DIR".to_owned(), dir.display().to_string())];
    let settings = Settings::load(&Sources { env, ..Sources::default() }, Role::DevServer).expect("valid settings");
    Arc::new(ProfileStore::from_settings(&settings, reqwest::Client::new()).expect("the profiles load"))
}

/// Our worker, running in this process.
pub struct RunningWorker {
    snapshot: voice_agent::worker::SharedSnapshot,
    drain: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

pub fn start(url: &str, agent_name: &str, max_jobs: u32, session: Arc<dyn AgentSession>) -> RunningWorker {
    start_with_profiles(url, agent_name, max_jobs, session, profiles())
}

/// Our worker, offering the agents of `profiles`.
pub fn start_with_profiles(
    url: &str,
    agent_name: &str,
    max_jobs: u32,
    session: Arc<dyn AgentSession>,
    profiles: Arc<ProfileStore>,
) -> RunningWorker {
    let config = WorkerConfig {
        livekit_url: url.to_owned(),
        api_key: "devkey".into(),
        api_secret: Secret::new("secret"),
        limits: Limits { agent_name: agent_name.into(), max_jobs, load_threshold: None },
        drain_timeout: Duration::from_secs(30),
    };
    let worker = Worker::new(config, profiles, session);
    let snapshot = worker.snapshot();
    let (drain, draining) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async move {
        let _ = draining.await;
    }));
    RunningWorker { snapshot, drain: Some(drain), task }
}

impl RunningWorker {
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until `check` holds for the worker's state.
    pub async fn until(&self, what: &str, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
        for _ in 0..200 {
            let snapshot = self.snapshot();
            if check(&snapshot) {
                return snapshot;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the worker never got to: {what}; it is {:?}", self.snapshot());
    }

    pub async fn registered(&self) -> String {
        self.until("registered", |s| s.worker_id.is_some()).await.worker_id.expect("checked")
    }

    pub async fn drain(mut self) {
        if let Some(drain) = self.drain.take() {
            let _ = drain.send(());
        }
        tokio::time::timeout(Duration::from_secs(40), &mut self.task)
            .await
            .expect("the worker drained")
            .expect("the worker task ended");
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A worker driven by hand, frame by frame, to check the server's side of the protocol.
pub struct FakeWorker {
    ws: signal::WsStream,
    pub worker_id: String,
}

impl FakeWorker {
    pub async fn register(url: &str, agent_name: &str, load: f32) -> Self {
        let token = AccessToken::with_api_key("devkey", "secret")
            .with_grants(VideoGrants { agent: true, ..VideoGrants::default() })
            .to_jwt()
            .expect("signs");
        let endpoint = signal::endpoint(url, "agent", true).expect("url");
        let mut request = endpoint.as_str().into_client_request().expect("request");
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("the server accepts workers");
        let mut worker = Self { ws, worker_id: String::new() };
        let register = pb::RegisterWorkerRequest {
            r#type: pb::JobType::JtRoom as i32,
            agent_name: agent_name.into(),
            ..Default::default()
        };
        worker.send(worker_message::Message::Register(register)).await;
        let server_message::Message::Register(registered) = worker.next().await else {
            panic!("registration answered first")
        };
        worker.worker_id = registered.worker_id;
        let status =
            pb::UpdateWorkerStatus { status: Some(pb::WorkerStatus::WsAvailable as i32), load, ..Default::default() };
        worker.send(worker_message::Message::UpdateWorker(status)).await;
        worker
    }

    pub async fn send(&mut self, message: worker_message::Message) {
        self.ws.send(Message::Binary(signal::encode_worker_message(message).into())).await.expect("sent");
    }

    pub async fn next(&mut self) -> server_message::Message {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(15), self.ws.next())
                .await
                .expect("a message in time")
                .expect("open")
                .expect("valid");
            if let Message::Binary(bytes) = frame {
                match signal::decode_server_message(&bytes) {
                    Ok(server_message::Message::Pong(_)) => {}
                    Ok(message) => return message,
                    Err(e) => panic!("bad frame: {e}"),
                }
            }
        }
    }

    /// The next message, if one comes within `wait`.
    pub async fn maybe_next(&mut self, wait: Duration) -> Option<server_message::Message> {
        tokio::time::timeout(wait, self.next()).await.ok()
    }
}

/// Forwards TCP connections to `upstream`; [`Proxy::cut`] drops every open one.
pub struct Proxy {
    pub address: SocketAddr,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("bound");
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tracked = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(upstream).await else { continue };
                let relay = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                tracked.lock().unwrap_or_else(PoisonError::into_inner).push(relay);
            }
        });
        Self { address, connections, accept }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.address)
    }

    /// Drops every connection open now, as a network failure would.
    pub fn cut(&self) {
        for relay in self.connections.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            relay.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
