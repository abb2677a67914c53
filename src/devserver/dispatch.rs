//! Agent dispatch, as LiveKit's server does it: registered workers, a job per dispatch when a room
//! is created (a default one for workers without an agent name, else one per
//! `roomConfig.agents` entry), availability asked worker by worker with a deadline, a minted token
//! for the worker that accepts, and termination when the room closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_protocol as pb;
use pb::server_message;
use tokio::sync::mpsc;

use super::limits::DISPATCH_QUEUE;
use super::{DevServerConfig, ids};

/// LiveKit's agent tokens last an hour.
const JOB_TOKEN_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub(super) enum DispatchMsg {
    Registered {
        worker_id: String,
        agent_name: String,
        permissions: pb::ParticipantPermission,
        link: mpsc::Sender<server_message::Message>,
    },
    Status {
        worker_id: String,
        available: bool,
        load: f32,
    },
    Gone {
        worker_id: String,
    },
    Availability {
        worker_id: String,
        response: pb::AvailabilityResponse,
    },
    JobStatus {
        worker_id: String,
        update: pb::UpdateJobStatus,
    },
    Migrate {
        worker_id: String,
        job_ids: Vec<String>,
    },
    RoomCreated {
        room: Box<pb::Room>,
        agents: Vec<pb::RoomAgentDispatch>,
    },
    RoomClosed {
        room: String,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Dispatcher {
    tx: mpsc::Sender<DispatchMsg>,
}

impl Dispatcher {
    pub fn start(config: Arc<DevServerConfig>) -> Self {
        let (tx, rx) = mpsc::channel(DISPATCH_QUEUE);
        tokio::spawn(run(Dispatch::new(config), rx));
        Self { tx }
    }

    /// For rooms, which never wait: rooms open and close far slower than the dispatcher works,
    /// so a full queue means it is stuck, and the message is dropped with a warning.
    pub fn send(&self, message: DispatchMsg) {
        if let Err(e) = self.tx.try_send(message) {
            tracing::warn!("the dispatcher is behind; dropped {:?}", e.into_inner());
        }
    }

    /// For worker connections: waits while the dispatcher is busy, so a flooding worker slows
    /// down only itself.
    pub async fn send_wait(&self, message: DispatchMsg) {
        let _ = self.tx.send(message).await;
    }
}

struct Worker {
    agent_name: String,
    permissions: pb::ParticipantPermission,
    /// Bounded: a worker that does not read its connection is dropped, not queued for.
    link: mpsc::Sender<server_message::Message>,
    available: bool,
    load: f32,
}

/// A job looking for a worker: the workers still to ask, and when the current one's time is up.
struct Pending {
    job: pb::Job,
    asked: String,
    remaining: Vec<String>,
    deadline: Instant,
}

struct Dispatch {
    config: Arc<DevServerConfig>,
    workers: HashMap<String, Worker>,
    pending: HashMap<String, Pending>,
    /// Assigned jobs: job id → (worker id, room name).
    assigned: HashMap<String, (String, String)>,
}

impl Dispatch {
    fn new(config: Arc<DevServerConfig>) -> Self {
        Self { config, workers: HashMap::new(), pending: HashMap::new(), assigned: HashMap::new() }
    }

    fn handle(&mut self, message: DispatchMsg, now: Instant) {
        match message {
            DispatchMsg::Registered { worker_id, agent_name, permissions, link } => {
                tracing::info!(worker = %worker_id, agent_name = %agent_name, "agent worker registered");
                self.workers.insert(worker_id, Worker { agent_name, permissions, link, available: true, load: 0.0 });
            }
            DispatchMsg::Status { worker_id, available, load } => {
                if let Some(worker) = self.workers.get_mut(&worker_id) {
                    worker.available = available;
                    worker.load = load;
                }
            }
            DispatchMsg::Gone { worker_id } => {
                tracing::info!(worker = %worker_id, "agent worker disconnected");
                self.workers.remove(&worker_id);
                let asked: Vec<String> =
                    self.pending.iter().filter(|(_, p)| p.asked == worker_id).map(|(id, _)| id.clone()).collect();
                for job_id in asked {
                    self.ask_next(&job_id, now);
                }
            }
            DispatchMsg::Availability { worker_id, response } => self.on_availability(&worker_id, response, now),
            DispatchMsg::JobStatus { worker_id, update } => {
                let status = pb::JobStatus::try_from(update.status).map(|s| s.as_str_name()).unwrap_or("UNKNOWN");
                tracing::info!(worker = %worker_id, job = %update.job_id, status, error = %update.error, "job status");
                if matches!(
                    pb::JobStatus::try_from(update.status),
                    Ok(pb::JobStatus::JsSuccess | pb::JobStatus::JsFailed)
                ) {
                    self.assigned.remove(&update.job_id);
                }
            }
            DispatchMsg::Migrate { worker_id, job_ids } => {
                for job_id in job_ids {
                    if let Some((owner, _)) = self.assigned.get_mut(&job_id) {
                        *owner = worker_id.clone();
                    }
                }
            }
            DispatchMsg::RoomCreated { room, agents } => {
                let dispatches = if agents.is_empty() { vec![pb::RoomAgentDispatch::default()] } else { agents };
                for dispatch in dispatches {
                    self.create_job(&room, dispatch, now);
                }
            }
            DispatchMsg::RoomClosed { room } => {
                self.pending.retain(|_, p| p.job.room.as_ref().is_none_or(|r| r.name != room));
                let ended: Vec<(String, String)> = self
                    .assigned
                    .iter()
                    .filter(|(_, (_, r))| *r == room)
                    .map(|(job, (worker, _))| (job.clone(), worker.clone()))
                    .collect();
                for (job_id, worker_id) in ended {
                    self.assigned.remove(&job_id);
                    self.tell(&worker_id, server_message::Message::Termination(pb::JobTermination { job_id }));
                }
            }
        }
    }

    fn create_job(&mut self, room: &pb::Room, dispatch: pb::RoomAgentDispatch, now: Instant) {
        let job = pb::Job {
            id: ids::sid("AJ_"),
            dispatch_id: ids::sid("AD_"),
            r#type: pb::JobType::JtRoom as i32,
            room: Some(room.clone()),
            metadata: dispatch.metadata,
            agent_name: dispatch.agent_name,
            attributes: dispatch.attributes,
            state: Some(pb::JobState { status: pb::JobStatus::JsPending as i32, ..Default::default() }),
            ..Default::default()
        };
        let remaining = self.candidates(&job.agent_name);
        let job_id = job.id.clone();
        self.pending.insert(job_id.clone(), Pending { job, asked: String::new(), remaining, deadline: now });
        self.ask_next(&job_id, now);
    }

    /// Available workers for an agent name, in a random order weighted by spare capacity
    /// (`1 - load`, as LiveKit does); fully loaded workers come last, asked only if others refuse.
    fn candidates(&self, agent_name: &str) -> Vec<String> {
        let mut weighted: Vec<(f64, String)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.agent_name == agent_name && w.available)
            .map(|(id, w)| {
                let spare = f64::from(1.0 - w.load);
                let key = if spare > 0.0 { rand::random::<f64>().powf(1.0 / spare) } else { -1.0 };
                (key, id.clone())
            })
            .collect();
        weighted.sort_by(|a, b| b.0.total_cmp(&a.0));
        weighted.into_iter().map(|(_, id)| id).collect()
    }

    /// Queues a message for a worker; a worker whose queue is full is not reading its connection
    /// and is dropped (its connection closes when its queue's sender goes).
    fn tell(&mut self, worker_id: &str, message: server_message::Message) -> bool {
        let Some(worker) = self.workers.get(worker_id) else { return false };
        match worker.link.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(worker = %worker_id, "closing: the agent worker does not read its connection");
                self.workers.remove(worker_id);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn ask_next(&mut self, job_id: &str, now: Instant) {
        loop {
            let Some(pending) = self.pending.get_mut(job_id) else { return };
            if pending.remaining.is_empty() {
                let room = pending.job.room.as_ref().map(|r| r.name.clone()).unwrap_or_default();
                tracing::warn!(job = %job_id, room = %room, agent_name = %pending.job.agent_name, "no agent worker took the job; the room has no agent");
                self.pending.remove(job_id);
                return;
            }
            let worker_id = pending.remaining.remove(0);
            let request = pb::AvailabilityRequest { job: Some(pending.job.clone()), resuming: false };
            if self.tell(&worker_id, server_message::Message::Availability(request))
                && let Some(pending) = self.pending.get_mut(job_id)
            {
                pending.asked = worker_id;
                pending.deadline = now + self.config.availability_timeout;
                return;
            }
        }
    }

    fn on_availability(&mut self, worker_id: &str, response: pb::AvailabilityResponse, now: Instant) {
        let Some(pending) = self.pending.get(&response.job_id).filter(|p| p.asked == worker_id) else { return };
        if response.terminate {
            self.pending.remove(&response.job_id);
            return;
        }
        if !response.available {
            self.ask_next(&response.job_id, now);
            return;
        }
        let Some(worker) = self.workers.get(worker_id) else { return };
        let job = pending.job.clone();
        let room = job.room.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        let token = match self.job_token(&job, &room, worker, &response) {
            Ok(token) => token,
            Err(e) => {
                tracing::error!(job = %job.id, "cannot sign the agent's token: {e}");
                self.pending.remove(&job.id);
                return;
            }
        };
        let url = self.config.assignment_url.clone();
        self.pending.remove(&job.id);
        let assignment = pb::JobAssignment { job: Some(job.clone()), url, token };
        if self.tell(worker_id, server_message::Message::Assignment(assignment)) {
            tracing::info!(job = %job.id, worker = %worker_id, room = %room, "job assigned");
            self.assigned.insert(job.id, (worker_id.to_owned(), room));
        }
    }

    /// The token the agent joins with: kind agent, an hour, the worker's permissions, and the
    /// `lk.agent_name` attribute, as LiveKit mints it.
    fn job_token(
        &self,
        job: &pb::Job,
        room: &str,
        worker: &Worker,
        response: &pb::AvailabilityResponse,
    ) -> Result<String, livekit_api::access_token::AccessTokenError> {
        let identity = if response.participant_identity.is_empty() {
            format!("agent-{}", job.id)
        } else {
            response.participant_identity.clone()
        };
        let permissions = &worker.permissions;
        let grants = VideoGrants {
            room_join: true,
            room: room.to_owned(),
            agent: true,
            can_publish: Some(permissions.can_publish),
            can_subscribe: Some(permissions.can_subscribe),
            can_publish_data: Some(permissions.can_publish_data),
            can_update_own_metadata: Some(permissions.can_update_metadata),
            hidden: permissions.hidden,
            ..VideoGrants::default()
        };
        let mut attributes = response.participant_attributes.clone();
        attributes.insert("lk.agent_name".into(), worker.agent_name.clone());
        AccessToken::with_api_key(&self.config.api_key, self.config.api_secret.expose())
            .with_identity(&identity)
            .with_name(&response.participant_name)
            .with_metadata(&response.participant_metadata)
            .with_attributes(attributes)
            .with_kind("agent")
            .with_ttl(JOB_TOKEN_TTL)
            .with_grants(grants)
            .to_jwt()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Workers that did not answer in time: ask the next one.
    fn expire(&mut self, now: Instant) {
        let late: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now && !p.asked.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for job_id in late {
            tracing::info!(job = %job_id, "the worker did not answer in time; asking the next");
            self.ask_next(&job_id, now);
        }
    }
}

async fn run(mut dispatch: Dispatch, mut rx: mpsc::Receiver<DispatchMsg>) {
    loop {
        let deadline = dispatch.next_deadline();
        tokio::select! {
            message = rx.recv() => match message {
                Some(message) => dispatch.handle(message, Instant::now()),
                None => return,
            },
            () = sleep_until(deadline) => dispatch.expire(Instant::now()),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
