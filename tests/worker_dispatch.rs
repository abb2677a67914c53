//! The worker and the dev server's dispatch together: callers get agents, the right workers get
//! the jobs, and failures (a silent worker, a dropped connection, a panicking job) stay contained.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use livekit_api::access_token::{AccessToken, TokenVerifier, VideoGrants};
use livekit_protocol as pb;
use pb::{server_message, worker_message};
use serde_json::{Value, json};
use support::livekit::{LOOPBACK, dev_server_with, wait_for};
use support::worker::{self, FakeWorker, Proxy};
use tokio::sync::mpsc;
use voice_agent::livekit::room::{self, ConnectOptions, ParticipantKind, Room, RoomEvent};
use voice_agent::worker::{AgentSession, JobContext, LoopbackSession};

const LIMIT: Duration = Duration::from_secs(15);

/// A caller's token, optionally naming agents to dispatch (as the token server does with
/// AGENT_NAME), with a short departure timeout so rooms close quickly.
fn caller_token(room: &str, identity: &str, agent: Option<&str>, metadata: &str) -> String {
    let grants = VideoGrants { room_join: true, room: room.into(), ..VideoGrants::default() };
    let agents = agent.map(|name| pb::RoomAgentDispatch {
        agent_name: name.into(),
        metadata: metadata.into(),
        ..Default::default()
    });
    let config =
        pb::RoomConfiguration { agents: agents.into_iter().collect(), departure_timeout: 1, ..Default::default() };
    AccessToken::with_api_key("devkey", "secret")
        .with_identity(identity)
        .with_metadata(metadata)
        .with_grants(grants)
        .with_room_config(config)
        .to_jwt()
        .expect("signs")
}

async fn join_with(url: &str, token: &str) -> (Room, mpsc::UnboundedReceiver<RoomEvent>) {
    let options = ConnectOptions { bind_ips: Some(vec![LOOPBACK]), ..ConnectOptions::default() };
    room::connect(url, token, options).await.expect("the caller joins")
}

/// Waits for an agent participant to join; returns its identity and name.
async fn agent_joins(events: &mut mpsc::UnboundedReceiver<RoomEvent>) -> (String, String) {
    wait_for(events, LIMIT, |e| match e {
        RoomEvent::ParticipantConnected(p) if p.kind == ParticipantKind::Agent => Some((p.identity, p.name)),
        _ => None,
    })
    .await
}

async fn hears_speech(room: &Room, events: &mut mpsc::UnboundedReceiver<RoomEvent>) -> f64 {
    let mut local = room.publish_audio("microphone").await.expect("published");
    local.ready().await.expect("negotiated");
    let mut track = wait_for(events, LIMIT, |e| match e {
        RoomEvent::TrackSubscribed { track } => Some(track),
        _ => None,
    })
    .await;
    local.push(&support::audio::speech()).expect("queued");
    let mut heard = Vec::new();
    while heard.len() < 3 * 48_000 {
        heard.extend(tokio::time::timeout(LIMIT, track.recv()).await.expect("audio flows").expect("open").samples);
    }
    support::audio::rms(&heard)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_from_the_token_server_gets_an_agent_that_talks_back() {
    let server = dev_server_with(|_, _| {}).await;
    let worker = worker::start(&server.url(), "", 10, Arc::new(LoopbackSession));
    worker.registered().await;
    let web = support::TokenServer::start(support::settings(&[("LIVEKIT_URL", &server.url())])).await;
    let response: Value = reqwest::Client::new()
        .post(format!("{}/api/token", web.url))
        .json(&json!({"agentId": "clinic-hi", "userName": "Priya"}))
        .send()
        .await
        .expect("token server reachable")
        .json()
        .await
        .expect("JSON");
    let (caller, mut events) =
        join_with(response["livekitUrl"].as_str().expect("url"), response["token"].as_str().expect("token")).await;
    let (identity, mut name) = agent_joins(&mut events).await;
    // The job id is the call record's id: the caller must not learn it from the agent's identity.
    assert!(identity.starts_with("agent-") && !identity.contains("AJ_"), "{identity}");
    if name != "Sunita (Clinic reception)" {
        // Automatic dispatch: the agent reads the caller's choice after joining and renames itself.
        name = wait_for(&mut events, LIMIT, |e| match e {
            RoomEvent::ParticipantUpdated(p) if p.identity == identity => Some(p.name),
            _ => None,
        })
        .await;
    }
    assert_eq!(name, "Sunita (Clinic reception)", "named after the profile the caller chose");
    let level = hears_speech(&caller, &mut events).await;
    assert!(level > 300.0, "the caller hears the agent (loopback of its own speech): rms {level:.0}");
    let running = worker.snapshot();
    assert_eq!(running.job_count, 1);
    assert_eq!(running.jobs[0].room, caller.name());

    caller.disconnect().await;
    let ended = worker.until("the job ended", |s| !s.recent_jobs.is_empty()).await;
    assert_eq!((ended.recent_jobs[0].status, ended.job_count), ("success", 0), "the call ends when the caller leaves");
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_with_a_name_only_get_explicit_dispatches() {
    let server = dev_server_with(|_, _| {}).await;
    let automatic = worker::start(&server.url(), "", 10, Arc::new(LoopbackSession));
    let sales = worker::start(&server.url(), "sales", 10, Arc::new(LoopbackSession));
    automatic.registered().await;
    sales.registered().await;

    let (_plain, mut plain_events) = join_with(&server.url(), &caller_token("plain", "caller-1", None, "")).await;
    agent_joins(&mut plain_events).await;
    let metadata = json!({"agentId": "realestate-en"}).to_string();
    let (_named, mut named_events) =
        join_with(&server.url(), &caller_token("named", "caller-2", Some("sales"), &metadata)).await;
    let (_, name) = agent_joins(&mut named_events).await;
    assert_eq!(name, "Rahul (Skyline Homes)", "the dispatch metadata chose the profile");

    let rooms = |snapshot: voice_agent::worker::Snapshot| snapshot.jobs.into_iter().map(|j| j.room).collect::<Vec<_>>();
    assert_eq!(rooms(automatic.snapshot()), ["plain"], "a room without roomConfig.agents goes to the unnamed worker");
    assert_eq!(rooms(sales.snapshot()), ["named"], "an explicit dispatch goes to the named worker only");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_worker_passes_the_job_to_the_next() {
    let server = dev_server_with(|_, _| {}).await;
    let first = worker::start(&server.url(), "", 1, Arc::new(LoopbackSession));
    let second = worker::start(&server.url(), "", 1, Arc::new(LoopbackSession));
    first.registered().await;
    second.registered().await;
    let (_a, mut a_events) = join_with(&server.url(), &caller_token("full-a", "caller-a", None, "")).await;
    agent_joins(&mut a_events).await;
    let (_b, mut b_events) = join_with(&server.url(), &caller_token("full-b", "caller-b", None, "")).await;
    agent_joins(&mut b_events).await;
    assert_eq!(
        (first.snapshot().job_count, second.snapshot().job_count),
        (1, 1),
        "each took one call; the full one refused the second"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_worker_is_skipped_and_the_next_gets_a_proper_agent_token() {
    let server = dev_server_with(|config, _| config.availability_timeout = Duration::from_secs(1)).await;
    let mut silent = FakeWorker::register(&server.url(), "", 0.0).await;
    // Fully loaded workers are asked last, so the silent one is asked first.
    let mut willing = FakeWorker::register(&server.url(), "", 1.0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metadata = json!({"agentId": "default"}).to_string();
    let (caller, _events) = join_with(&server.url(), &caller_token("silent", "caller", None, &metadata)).await;

    let server_message::Message::Availability(ignored) = silent.next().await else {
        panic!("the silent worker is asked first")
    };
    let started = std::time::Instant::now();
    let server_message::Message::Availability(request) = willing.next().await else { panic!("then the next worker") };
    assert!(started.elapsed() >= Duration::from_millis(800), "only after the silent one's time ran out");
    let job = request.job.expect("a job");
    assert_eq!(job.id, ignored.job.expect("a job").id);
    assert_eq!(job.r#type, pb::JobType::JtRoom as i32);
    assert_eq!(job.room.as_ref().map(|r| r.name.as_str()), Some("silent"));
    let answer = pb::AvailabilityResponse {
        job_id: job.id.clone(),
        available: true,
        participant_identity: "agent-custom".into(),
        participant_name: "Custom".into(),
        ..Default::default()
    };
    willing.send(worker_message::Message::Availability(answer)).await;
    let server_message::Message::Assignment(assignment) = willing.next().await else { panic!("an assignment") };
    let claims = TokenVerifier::with_api_key("devkey", "secret").verify(&assignment.token).expect("a valid token");
    assert_eq!((claims.sub.as_str(), claims.name.as_str(), claims.kind.as_str()), ("agent-custom", "Custom", "agent"));
    assert!(claims.video.agent && claims.video.room_join && claims.video.room == "silent");
    assert_eq!(claims.attributes.get("lk.agent_name").map(String::as_str), Some(""));
    assert!(claims.exp.saturating_sub(claims.nbf) >= 3590, "an hour");
    assert!(silent.maybe_next(Duration::from_millis(300)).await.is_none(), "the silent worker gets nothing more");

    caller.disconnect().await;
    let server_message::Message::Termination(termination) = willing.next().await else {
        panic!("the job is terminated")
    };
    assert_eq!(termination.job_id, job.id, "when the room closes, a departure timeout after the caller left");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_call_goes_on_when_the_worker_connection_drops() {
    let server = dev_server_with(|config, url| config.assignment_url = Some(url.to_owned())).await;
    let proxy = Proxy::start(server.address()).await;
    let worker = worker::start(&proxy.url(), "", 10, Arc::new(LoopbackSession));
    let first_id = worker.registered().await;
    let (caller, mut events) = join_with(&server.url(), &caller_token("steady", "caller", None, "")).await;
    agent_joins(&mut events).await;
    let mut local = caller.publish_audio("microphone").await.expect("published");
    local.ready().await.expect("negotiated");
    let mut echo = wait_for(&mut events, LIMIT, |e| match e {
        RoomEvent::TrackSubscribed { track } => Some(track),
        _ => None,
    })
    .await;

    proxy.cut();
    let reregistered =
        worker.until("registered again", |s| s.worker_id.as_ref().is_some_and(|id| *id != first_id)).await;
    assert_eq!(reregistered.job_count, 1, "the job kept running");
    local.push(&support::audio::speech()).expect("queued");
    let mut heard = Vec::new();
    while heard.len() < 3 * 48_000 {
        heard.extend(tokio::time::timeout(LIMIT, echo.recv()).await.expect("audio flows").expect("open").samples);
    }
    assert!(support::audio::rms(&heard) > 300.0, "the call went on through the reconnection");
}

/// Runs the loopback, except for one agent profile, whose calls panic.
struct PanicsFor(&'static str);

impl AgentSession for PanicsFor {
    fn run(&self, context: JobContext) -> BoxFuture<'static, Result<(), String>> {
        if context.profile.id == self.0 {
            return Box::pin(async { panic!("a bug in this agent") });
        }
        LoopbackSession.run(context)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_job_fails_alone() {
    let server = dev_server_with(|_, _| {}).await;
    let worker = worker::start(&server.url(), "", 10, Arc::new(PanicsFor("realestate-en")));
    worker.registered().await;
    let (healthy, mut healthy_events) = join_with(&server.url(), &caller_token("healthy", "caller-1", None, "")).await;
    agent_joins(&mut healthy_events).await;
    let metadata = json!({"agentId": "realestate-en"}).to_string();
    let (_doomed, mut doomed_events) =
        join_with(&server.url(), &caller_token("doomed", "caller-2", Some(""), &metadata)).await;
    agent_joins(&mut doomed_events).await;

    let failed = worker.until("the panicking job failed", |s| !s.recent_jobs.is_empty()).await;
    assert_eq!(failed.recent_jobs[0].status, "failed");
    assert!(
        failed.recent_jobs[0].error.as_deref().is_some_and(|e| e.contains("panicked: a bug in this agent")),
        "{failed:?}"
    );
    // The failed job's agent leaves its room.
    wait_for(&mut doomed_events, LIMIT, |e| match e {
        RoomEvent::ParticipantDisconnected { participant, .. } if participant.kind == ParticipantKind::Agent => {
            Some(())
        }
        _ => None,
    })
    .await;
    assert_eq!(failed.job_count, 1, "the other call runs on");
    assert!(hears_speech(&healthy, &mut healthy_events).await > 300.0, "and still talks");
}
