//! Agent dispatch, as LiveKit's server does it: registered workers, a job per dispatch when a room
//! is created (a default one for workers without an agent name, else one per
//! `roomConfig.agents` entry) or when `CreateDispatch` asks, availability asked worker by worker
//! with a deadline, a minted token for the worker that accepts, and termination when the room
//! closes or its dispatch is deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_protocol as pb;
use pb::server_message;
use tokio::sync::{mpsc, oneshot};

use super::dispatches::Dispatches;
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
    /// The room (by sid) closed or is being deleted: its jobs end.
    RoomClosed {
        sid: String,
    },
    /// `CreateDispatch`: a dispatch for `room`, whose job starts at once.
    Create {
        room: Box<pb::Room>,
        dispatch: Box<pb::AgentDispatch>,
        reply: oneshot::Sender<Result<pb::AgentDispatch, String>>,
    },
    List {
        room_sid: String,
        dispatch_id: String,
        reply: oneshot::Sender<Vec<pb::AgentDispatch>>,
    },
    /// `DeleteDispatch`: the dispatch goes and its jobs end.
    Delete {
        room_sid: String,
        dispatch_id: String,
        reply: oneshot::Sender<Option<pb::AgentDispatch>>,
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

    /// Records a dispatch into `room` and launches its job; refused when the room holds as many
    /// dispatches as it may.
    pub async fn create(&self, room: pb::Room, dispatch: pb::AgentDispatch) -> Result<pb::AgentDispatch, String> {
        let (reply, answer) = oneshot::channel();
        self.send_wait(DispatchMsg::Create { room: Box::new(room), dispatch: Box::new(dispatch), reply }).await;
        answer.await.unwrap_or_else(|_| Err(STOPPED.into()))
    }

    pub async fn list(&self, room_sid: &str, dispatch_id: &str) -> Vec<pb::AgentDispatch> {
        let (reply, answer) = oneshot::channel();
        let (room_sid, dispatch_id) = (room_sid.to_owned(), dispatch_id.to_owned());
        self.send_wait(DispatchMsg::List { room_sid, dispatch_id, reply }).await;
        answer.await.unwrap_or_default()
    }

    /// The deleted dispatch, or `None` when the room has none with that id.
    pub async fn delete(&self, room_sid: &str, dispatch_id: &str) -> Option<pb::AgentDispatch> {
        let (reply, answer) = oneshot::channel();
        let (room_sid, dispatch_id) = (room_sid.to_owned(), dispatch_id.to_owned());
        self.send_wait(DispatchMsg::Delete { room_sid, dispatch_id, reply }).await;
        answer.await.ok().flatten()
    }
}

const STOPPED: &str = "the dev server's dispatcher has stopped";

/// Unix time in nanoseconds, as LiveKit stamps dispatches and jobs.
fn unix_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
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

/// A job a worker took.
struct Assigned {
    worker_id: String,
    room_sid: String,
    dispatch_id: String,
}

struct Dispatch {
    config: Arc<DevServerConfig>,
    workers: HashMap<String, Worker>,
    pending: HashMap<String, Pending>,
    /// Assigned jobs by job id.
    assigned: HashMap<String, Assigned>,
    dispatches: Dispatches,
}

impl Dispatch {
    fn new(config: Arc<DevServerConfig>) -> Self {
        Self {
            config,
            workers: HashMap::new(),
            pending: HashMap::new(),
            assigned: HashMap::new(),
            dispatches: Dispatches::default(),
        }
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
            DispatchMsg::JobStatus { worker_id, update } => self.on_job_status(&worker_id, update),
            DispatchMsg::Migrate { worker_id, job_ids } => {
                for job_id in job_ids {
                    if let Some(assigned) = self.assigned.get_mut(&job_id) {
                        assigned.worker_id = worker_id.clone();
                    }
                }
            }
            DispatchMsg::RoomCreated { room, agents } => {
                let agents = if agents.is_empty() { vec![pb::RoomAgentDispatch::default()] } else { agents };
                for agent in agents {
                    let dispatch = pb::AgentDispatch {
                        agent_name: agent.agent_name,
                        room: room.name.clone(),
                        metadata: agent.metadata,
                        restart_policy: agent.restart_policy,
                        deployment: agent.deployment,
                        attributes: agent.attributes,
                        ..Default::default()
                    };
                    if let Err(why) = self.dispatch(&room, dispatch, now) {
                        tracing::warn!(room = %room.name, "an agent of the room's roomConfig is not dispatched: {why}");
                    }
                }
            }
            DispatchMsg::RoomClosed { sid } => {
                self.pending.retain(|_, p| p.job.room.as_ref().is_none_or(|r| r.sid != sid));
                self.terminate(|assigned| assigned.room_sid == sid);
                self.dispatches.room_closed(&sid);
            }
            DispatchMsg::Create { room, dispatch, reply } => {
                let _ = reply.send(self.dispatch(&room, *dispatch, now));
            }
            DispatchMsg::List { room_sid, dispatch_id, reply } => {
                let _ = reply.send(self.dispatches.list(&room_sid, &dispatch_id));
            }
            DispatchMsg::Delete { room_sid, dispatch_id, reply } => {
                let deleted = self.dispatches.delete(&room_sid, &dispatch_id, unix_nanos());
                if deleted.is_some() {
                    self.pending.retain(|_, p| p.job.dispatch_id != dispatch_id);
                    self.terminate(|assigned| assigned.dispatch_id == dispatch_id);
                }
                let _ = reply.send(deleted);
            }
        }
    }

    fn on_job_status(&mut self, worker_id: &str, update: pb::UpdateJobStatus) {
        let status = pb::JobStatus::try_from(update.status).unwrap_or(pb::JobStatus::JsPending);
        tracing::info!(worker = %worker_id, job = %update.job_id, status = status.as_str_name(), error = %update.error, "job status");
        let ended = matches!(status, pb::JobStatus::JsSuccess | pb::JobStatus::JsFailed);
        let Some(assigned) = self.assigned.get(&update.job_id) else { return };
        let now = unix_nanos();
        self.dispatches.update_job(&assigned.room_sid, &assigned.dispatch_id, &update.job_id, |state| {
            state.status = status as i32;
            state.error.clone_from(&update.error);
            state.updated_at = now;
            if ended {
                state.ended_at = now;
            }
        });
        if ended {
            self.assigned.remove(&update.job_id);
        }
    }

    /// Ends the assigned jobs `which` picks: their workers are told, as LiveKit tells them.
    fn terminate(&mut self, which: impl Fn(&Assigned) -> bool) {
        let ended: Vec<(String, String)> = self
            .assigned
            .iter()
            .filter(|(_, assigned)| which(assigned))
            .map(|(job_id, assigned)| (job_id.clone(), assigned.worker_id.clone()))
            .collect();
        for (job_id, worker_id) in ended {
            self.assigned.remove(&job_id);
            tracing::info!(job = %job_id, worker = %worker_id, "job terminated");
            self.tell(&worker_id, server_message::Message::Termination(pb::JobTermination { job_id }));
        }
    }

    /// Records a dispatch into `room` and launches its job.
    fn dispatch(
        &mut self,
        room: &pb::Room,
        dispatch: pb::AgentDispatch,
        now: Instant,
    ) -> Result<pb::AgentDispatch, String> {
        let dispatch = self.dispatches.create(&room.sid, dispatch, unix_nanos())?;
        self.create_job(room, &dispatch, now);
        Ok(dispatch)
    }

    fn create_job(&mut self, room: &pb::Room, dispatch: &pb::AgentDispatch, now: Instant) {
        let job = pb::Job {
            id: ids::sid("AJ_"),
            dispatch_id: dispatch.id.clone(),
            r#type: pb::JobType::JtRoom as i32,
            room: Some(room.clone()),
            metadata: dispatch.metadata.clone(),
            agent_name: dispatch.agent_name.clone(),
            deployment: dispatch.deployment.clone(),
            attributes: dispatch.attributes.clone(),
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
        let mut job = pending.job.clone();
        let (room, room_sid) = job.room.as_ref().map(|r| (r.name.clone(), r.sid.clone())).unwrap_or_default();
        let identity = if response.participant_identity.is_empty() {
            format!("agent-{}", job.id)
        } else {
            response.participant_identity.clone()
        };
        let token = match self.job_token(&identity, &room, worker, &response) {
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
            let now = unix_nanos();
            job.state = Some(pb::JobState {
                status: pb::JobStatus::JsRunning as i32,
                started_at: now,
                updated_at: now,
                participant_identity: identity,
                worker_id: worker_id.to_owned(),
                ..Default::default()
            });
            let assigned = Assigned {
                worker_id: worker_id.to_owned(),
                room_sid: room_sid.clone(),
                dispatch_id: job.dispatch_id.clone(),
            };
            self.assigned.insert(job.id.clone(), assigned);
            self.dispatches.job_started(&room_sid, job);
        }
    }

    /// The token the agent joins with: kind agent, an hour, the worker's permissions, and the
    /// `lk.agent_name` attribute, as LiveKit mints it.
    fn job_token(
        &self,
        identity: &str,
        room: &str,
        worker: &Worker,
        response: &pb::AvailabilityResponse,
    ) -> Result<String, livekit_api::access_token::AccessTokenError> {
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
            .with_identity(identity)
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
