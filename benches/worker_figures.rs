//! The worker's figures: start-up time from process start to registered, time from a room's
//! creation (the caller's join) to the agent joining, and the worker's resident memory with 0
//! and 100 idle calls. The dev server, the worker and the callers are separate processes.
//!
//! Run: `cargo bench --bench worker_figures`.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use livekit_api::access_token::{AccessToken, VideoGrants};
use support::{Reaped, WorkerCommand, registered, worker_command};
use voice_agent::livekit::room::{self, ConnectOptions, ParticipantKind, Room, RoomEvent};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const STARTS: usize = 10;
const JOINS: usize = 20;
const IDLE_CALLS: usize = 100;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let (_server, url) = support::dev_server().await;

        let mut starts = Vec::new();
        for _ in 0..STARTS {
            let started = Instant::now();
            let worker = Worker::start(&url).await;
            starts.push(started.elapsed());
            drop(worker);
        }
        report("start-up to registered", &mut starts);

        let worker = Worker::start(&url).await;
        let mut joins = Vec::new();
        for index in 0..JOINS {
            let started = Instant::now();
            let (room, mut events) = join(&url, &format!("join-{index}")).await;
            agent_joined(&mut events).await;
            joins.push(started.elapsed());
            room.disconnect().await;
        }
        report("caller joins to agent joined", &mut joins);

        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle = worker.resident_kib();
        let mut calls = Vec::new();
        for index in 0..IDLE_CALLS {
            let (room, mut events) = join(&url, &format!("idle-{index}")).await;
            agent_joined(&mut events).await;
            calls.push((room, events));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let busy = worker.resident_kib();
        println!("worker resident memory: {idle} KiB with 0 calls, {busy} KiB with {IDLE_CALLS} idle calls ({:.0} KiB per call)", (busy - idle) as f64 / IDLE_CALLS as f64);
    });
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let median = samples[samples.len() / 2];
    let worst = samples[samples.len() - 1];
    println!("{what}: median {:.1} ms, worst {:.1} ms over {} runs", ms(median), ms(worst), samples.len());
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

struct Worker {
    child: Reaped,
    _spool: tempfile::TempDir,
}

impl Worker {
    /// Starts `agent-worker start` and returns once its health endpoint says it is registered.
    async fn start(url: &str) -> Self {
        let WorkerCommand { mut command, health, spool } = worker_command(url);
        let child = Reaped(
            command
                .env("SARVAM_API_KEY", "unused")
                .env("GROQ_API_KEY", "unused")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("the worker starts"),
        );
        registered(health).await;
        Self { child, _spool: spool }
    }

    fn resident_kib(&self) -> i64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id())).expect("the worker's status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number")
    }
}

async fn join(url: &str, room_name: &str) -> (Room, tokio::sync::mpsc::UnboundedReceiver<RoomEvent>) {
    let grants = VideoGrants { room_join: true, room: room_name.into(), ..VideoGrants::default() };
    let token = AccessToken::with_api_key("devkey", "secret")
        .with_identity("caller")
        .with_grants(grants)
        .to_jwt()
        .expect("signs");
    let options = ConnectOptions { bind_ips: Some(vec![LOOPBACK]), ..ConnectOptions::default() };
    room::connect(url, &token, options).await.expect("the caller joins")
}

async fn agent_joined(events: &mut tokio::sync::mpsc::UnboundedReceiver<RoomEvent>) {
    while let Some(event) = events.recv().await {
        if matches!(event, RoomEvent::ParticipantConnected(p) if p.kind == ParticipantKind::Agent) {
            return;
        }
    }
    panic!("the room ended before an agent joined");
}
