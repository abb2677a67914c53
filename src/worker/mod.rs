//! The agent worker: registers with LiveKit, takes jobs, and runs every call as a task of this
//! one process (LiveKit's Python workers spend a process per call).
//!
//! A job that fails or panics ends alone: its task's room handle is dropped, which leaves the
//! room, and its status goes to LiveKit as FAILED; the worker and other jobs carry on. When the
//! connection to LiveKit drops, calls keep running; the worker reconnects with capped backoff,
//! registers again and announces them (`migrate_job`).
//!
//! Load, reported every 2.5 s and compared with `LOAD_THRESHOLD`, is the higher of the process's
//! measured CPU share (over all cores, since the last report) and the share of `MAX_JOBS` in use.

mod connection;
mod health;
mod identity;
mod job;
mod load;
mod session;
mod state;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use livekit_protocol as pb;
use pb::{server_message, worker_message};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::Secret;
use crate::metrics::{JobResult, WorkerMetrics};
use crate::profiles::ProfileStore;
use connection::AgentSocket;
pub use health::{SharedSnapshot, serve as serve_health};
pub use load::{process_cpu_time, resident_kib};
pub use session::{AgentSession, CallChoice, EndReason, JobContext, LoopbackSession};
use state::WorkerState;
pub use state::{Limits, Snapshot};

/// The participant attribute in which the agent tells the room which profile it runs, so an
/// operator's list of live calls (the token server's `/admin`) can say which agent is in each.
pub const AGENT_ID_ATTRIBUTE: &str = "agentId";

const STATUS_INTERVAL: Duration = Duration::from_millis(2_500);
/// We ping so a connection that died silently is noticed: nothing heard for the silence limit
/// means it is gone.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// Reconnection waits grow to this cap.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// After the drain timeout jobs are told to stop; those still running this much later are cut.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where the worker registers and how much it takes on.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// LIVEKIT_URL: the server the worker registers with (`ws://` or `wss://`).
    pub livekit_url: String,
    /// LIVEKIT_API_KEY: names the key pair the worker's token is signed with.
    pub api_key: String,
    /// LIVEKIT_API_SECRET.
    pub api_secret: Secret,
    /// Its agent name, call cap and load threshold, as announced to LiveKit.
    pub limits: Limits,
    /// How long running calls may go on once a drain starts.
    pub drain_timeout: Duration,
}

/// An agent worker: registers with LiveKit, takes jobs within its limits and runs `session`
/// for each, one task per call; reconnects when the connection drops.
pub struct Worker {
    config: WorkerConfig,
    profiles: Arc<ProfileStore>,
    session: Arc<dyn AgentSession>,
    snapshot: SharedSnapshot,
    metrics: WorkerMetrics,
}

/// What a job's or an availability task's progress tells the worker loop.
enum Note {
    Running(String),
    /// The job's agent profile is chosen: its id.
    Agent(String, String),
    Answer(pb::AvailabilityResponse),
}

impl Worker {
    /// A worker running `session` for every job, with the agent profile the dispatch chooses
    /// from `profiles`.
    pub fn new(config: WorkerConfig, profiles: Arc<ProfileStore>, session: Arc<dyn AgentSession>) -> Self {
        let snapshot = Arc::new(Mutex::new(WorkerState::new(config.limits.clone()).snapshot()));
        Self { config, profiles, session, snapshot, metrics: WorkerMetrics::default() }
    }

    /// Counts calls, jobs and load into `metrics`, and hands it to every call.
    pub fn with_metrics(mut self, metrics: WorkerMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// What `/worker` shows, kept current while the worker runs.
    pub fn snapshot(&self) -> SharedSnapshot {
        self.snapshot.clone()
    }

    /// Runs until `drain` completes and every job has ended (or the drain timeout passed).
    pub async fn run(self, drain: impl Future<Output = ()>) {
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let mut runner = Runner {
            state: WorkerState::new(self.config.limits.clone()),
            socket: None,
            attempt: 0,
            reconnect_at: Instant::now(),
            last_heard: Instant::now(),
            outbox: VecDeque::new(),
            jobs: JoinSet::new(),
            job_ids: HashMap::new(),
            stops: HashMap::new(),
            preparing: JoinSet::new(),
            notes_tx,
            worker: self,
        };
        runner.run(drain, notes).await;
    }
}

struct Runner {
    worker: Worker,
    state: WorkerState,
    socket: Option<AgentSocket>,
    attempt: u32,
    reconnect_at: Instant,
    last_heard: Instant,
    /// Job updates made while disconnected, sent once registered again.
    outbox: VecDeque<worker_message::Message>,
    jobs: JoinSet<Result<(), String>>,
    job_ids: HashMap<tokio::task::Id, String>,
    stops: HashMap<String, watch::Sender<Option<EndReason>>>,
    preparing: JoinSet<()>,
    notes_tx: mpsc::UnboundedSender<Note>,
}

impl Runner {
    async fn run(&mut self, drain: impl Future<Output = ()>, mut notes: mpsc::UnboundedReceiver<Note>) {
        tokio::pin!(drain);
        let mut status = tokio::time::interval(STATUS_INTERVAL);
        status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ping = tokio::time::interval(PING_INTERVAL);
        let mut cpu = load::CpuMeter::default();
        let mut stop_at: Option<Instant> = None;
        let mut cut_at: Option<Instant> = None;
        loop {
            self.publish();
            if self.state.is_draining() && self.jobs.is_empty() {
                break;
            }
            let connected = self.socket.is_some();
            tokio::select! {
                message = next(&mut self.socket) => match message {
                    Ok(message) => {
                        self.last_heard = Instant::now();
                        self.on_message(message).await;
                    }
                    Err(reason) => self.disconnect(&reason).await,
                },
                () = tokio::time::sleep_until(self.reconnect_at.into()), if !connected => self.connect().await,
                Some(done) = self.jobs.join_next_with_id() => self.on_job_end(done).await,
                Some(note) = notes.recv() => match note {
                    Note::Running(job_id) => self.send(self.state.job_running(&job_id)).await,
                    Note::Agent(job_id, agent) => self.state.set_agent(&job_id, agent),
                    Note::Answer(answer) => {
                        if !answer.available {
                            self.state.release(&answer.job_id);
                        }
                        self.send_now(worker_message::Message::Availability(answer)).await;
                    }
                },
                _ = status.tick() => {
                    let now = Instant::now();
                    self.state.set_cpu_share(cpu.sample(now));
                    if connected {
                        let status = self.state.status(now);
                        self.send_now(status).await;
                    }
                }
                _ = ping.tick(), if connected => {
                    if self.last_heard.elapsed() > SILENCE_LIMIT {
                        self.disconnect("LiveKit went silent").await;
                    } else {
                        let ping = pb::WorkerPing { timestamp: chrono::Utc::now().timestamp_millis() };
                        self.send_now(worker_message::Message::Ping(ping)).await;
                    }
                }
                () = &mut drain, if !self.state.is_draining() => {
                    tracing::info!(jobs = self.jobs.len(), timeout_secs = self.worker.config.drain_timeout.as_secs(), "draining: no new calls; waiting for running calls to end");
                    self.state.start_draining();
                    stop_at = Some(Instant::now() + self.worker.config.drain_timeout);
                    let status = self.state.status(Instant::now());
                    self.send_now(status).await;
                }
                () = sleep_until(stop_at) => {
                    tracing::warn!(jobs = self.jobs.len(), "the drain timeout passed; ending the remaining calls");
                    for stop in self.stops.values() {
                        stop.send_replace(Some(EndReason::WorkerShutdown));
                    }
                    stop_at = None;
                    cut_at = Some(Instant::now() + STOP_GRACE);
                }
                () = sleep_until(cut_at) => {
                    tracing::warn!(jobs = self.jobs.len(), "calls did not end when told; cutting them");
                    self.jobs.shutdown().await;
                    cut_at = None;
                }
            }
        }
        self.preparing.shutdown().await;
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
        self.publish();
        tracing::info!("worker stopped");
    }

    async fn connect(&mut self) {
        let config = &self.worker.config;
        match connection::register(&config.livekit_url, &config.api_key, &config.api_secret, self.state.register())
            .await
        {
            Ok((socket, worker_id)) => {
                tracing::info!(worker_id = %worker_id, agent_name = %config.limits.agent_name, url = %crate::config::redact_url(&config.livekit_url), "registered with LiveKit");
                self.socket = Some(socket);
                self.attempt = 0;
                self.last_heard = Instant::now();
                self.state.registered(worker_id);
                if let Some(migrate) = self.state.migrate() {
                    self.send_now(migrate).await;
                }
                while let Some(update) = self.outbox.pop_front() {
                    self.send_now(update).await;
                }
                let status = self.state.status(Instant::now());
                self.send_now(status).await;
            }
            Err(e) => {
                self.attempt += 1;
                let wait = backoff(self.attempt);
                tracing::warn!(
                    attempt = self.attempt,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "cannot register with LiveKit: {e}"
                );
                self.reconnect_at = Instant::now() + wait;
            }
        }
    }

    async fn disconnect(&mut self, reason: &str) {
        tracing::warn!(calls = self.jobs.len(), "lost the connection to LiveKit ({reason}); calls go on, reconnecting");
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
        self.state.disconnected();
        self.attempt += 1;
        self.reconnect_at = Instant::now() + backoff(self.attempt);
    }

    async fn on_message(&mut self, message: server_message::Message) {
        match message {
            server_message::Message::Availability(request) => self.on_availability(request).await,
            server_message::Message::Assignment(assignment) => self.on_assignment(assignment).await,
            server_message::Message::Termination(termination) => {
                tracing::info!(job = %termination.job_id, "LiveKit ended the job");
                if let Some(stop) = self.stops.get(&termination.job_id) {
                    stop.send_replace(Some(EndReason::JobTerminated));
                }
            }
            server_message::Message::GoAway(_) => self.disconnect("LiveKit asked the worker to move").await,
            server_message::Message::Register(_) | server_message::Message::Pong(_) => {}
        }
    }

    /// Holds a slot at once; the profile (perhaps from n8n) is looked up in its own task so the
    /// worker keeps answering meanwhile.
    async fn on_availability(&mut self, request: pb::AvailabilityRequest) {
        let Some(job) = request.job else { return };
        if !self.state.reserve(&job.id, Instant::now()) {
            self.worker.metrics.job(JobResult::Declined);
            let refusal = pb::AvailabilityResponse { job_id: job.id, available: false, ..Default::default() };
            self.send_now(worker_message::Message::Availability(refusal)).await;
            return;
        }
        let profiles = self.worker.profiles.clone();
        let notes = self.notes_tx.clone();
        let metrics = self.worker.metrics.clone();
        self.preparing.spawn(async move {
            let answer = match job::prepare(&job, &profiles).await {
                Ok(profile) => pb::AvailabilityResponse {
                    job_id: job.id.clone(),
                    available: true,
                    // Never derived from the job id: see `identity`.
                    participant_identity: identity::agent_identity(),
                    participant_name: profile.name.clone(),
                    ..Default::default()
                },
                Err(e) => {
                    tracing::error!(job = %job.id, "declining the job: {e}");
                    metrics.job(JobResult::Declined);
                    pb::AvailabilityResponse { job_id: job.id.clone(), available: false, ..Default::default() }
                }
            };
            let _ = notes.send(Note::Answer(answer));
        });
    }

    async fn on_assignment(&mut self, assignment: pb::JobAssignment) {
        let Some(job) = assignment.job else { return };
        if !self.state.assigned(&job, Instant::now()) {
            tracing::warn!(job = %job.id, "declining an assignment: at capacity");
            self.worker.metrics.job(JobResult::Declined);
            let failed = pb::UpdateJobStatus {
                job_id: job.id,
                status: pb::JobStatus::JsFailed as i32,
                error: "the worker is at capacity".into(),
            };
            self.send_now(worker_message::Message::UpdateJob(failed)).await;
            return;
        }
        let url =
            assignment.url.filter(|url| !url.is_empty()).unwrap_or_else(|| self.worker.config.livekit_url.clone());
        let (stop, _) = watch::channel(None);
        self.stops.insert(job.id.clone(), stop.clone());
        let notes = self.notes_tx.clone();
        let job_id = job.id.clone();
        tracing::info!(job = %job_id, room = job.room.as_ref().map_or("", |r| r.name.as_str()), "job assigned");
        let chosen_notes = notes.clone();
        let chosen_id = job_id.clone();
        let running = move || {
            let _ = notes.send(Note::Running(job_id));
        };
        let chosen = move |agent: &str| {
            let _ = chosen_notes.send(Note::Agent(chosen_id, agent.to_owned()));
        };
        let run = job::run(
            job::Assignment { job: job.clone(), url, token: assignment.token },
            self.worker.profiles.clone(),
            self.worker.session.clone(),
            stop,
            self.worker.metrics.clone(),
            running,
            chosen,
        );
        self.worker.metrics.call_started();
        let handle = self.jobs.spawn(run);
        self.job_ids.insert(handle.id(), job.id);
    }

    async fn on_job_end(&mut self, done: Result<(tokio::task::Id, Result<(), String>), tokio::task::JoinError>) {
        let (task, result) = match done {
            Ok((task, result)) => (task, result),
            Err(error) => {
                let task = error.id();
                let why = if error.is_panic() {
                    format!("the job panicked: {}", panic_message(error.into_panic()))
                } else {
                    "the job was cancelled".to_owned()
                };
                (task, Err(why))
            }
        };
        let Some(job_id) = self.job_ids.remove(&task) else { return };
        self.stops.remove(&job_id);
        match &result {
            Ok(()) => tracing::info!(job = %job_id, "job ended"),
            Err(error) => tracing::error!(job = %job_id, "job failed: {error}"),
        }
        self.worker.metrics.call_finished(if result.is_ok() { JobResult::Completed } else { JobResult::Failed });
        let update = self.state.finished(&job_id, &result);
        self.send(update).await;
    }

    /// Sends now, or keeps it for after the reconnection (job status must not be lost).
    async fn send(&mut self, message: worker_message::Message) {
        if self.socket.is_some() {
            self.send_now(message).await;
        } else {
            self.outbox.push_back(message);
        }
    }

    /// Sends if connected; messages only meaningful now (availability, status) are dropped
    /// while disconnected.
    async fn send_now(&mut self, message: worker_message::Message) {
        let Some(socket) = &mut self.socket else { return };
        if let Err(e) = socket.send(message).await {
            self.disconnect(&e).await;
        }
    }

    fn publish(&self) {
        let snapshot = self.state.snapshot();
        self.worker.metrics.set_load(snapshot.load);
        *self.worker.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }
}

async fn next(socket: &mut Option<AgentSocket>) -> Result<server_message::Message, String> {
    match socket {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s between attempts.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.saturating_sub(1).min(5))).min(MAX_BACKOFF)
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let waits: Vec<u64> = (1..=8).map(|n| u64::try_from(backoff(n).as_millis()).unwrap_or(u64::MAX)).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
    }
}
