//! What the worker tells LiveKit and when, as a state machine: registration, availability, job
//! and worker status. Time is an input; the shell owns the socket and the jobs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use livekit_protocol as pb;
use pb::worker_message::Message;
use serde::Serialize;

/// After answering "available", how long we hold the slot for the assignment (LiveKit's Python
/// worker waits 7.5 s).
pub const ASSIGNMENT_TIMEOUT: Duration = Duration::from_millis(7_500);
/// Finished jobs kept for `/worker`, so operators see recent failures.
const RECENT_JOBS: usize = 20;

/// What the worker announces and how much it takes on.
#[derive(Debug, Clone)]
pub struct Limits {
    /// AGENT_NAME; empty for automatic dispatch (a job for every new room).
    pub agent_name: String,
    /// MAX_JOBS: calls at once; beyond it the worker reports itself full.
    pub max_jobs: u32,
    /// `None` takes calls whatever the load.
    pub load_threshold: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningJob {
    /// The LiveKit job id.
    pub id: String,
    /// The room the call is in.
    pub room: String,
    /// The agent profile the job runs, once chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When the worker took the job.
    pub started_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishedJob {
    /// The LiveKit job id.
    pub id: String,
    /// The room the call was in.
    pub room: String,
    /// As reported to LiveKit: `success` or `failed`.
    pub status: &'static str,
    /// Why a failed job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the job ended.
    pub ended_at: chrono::DateTime<chrono::Utc>,
}

/// What `/worker` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The id LiveKit gave at registration; `None` until registered.
    pub worker_id: Option<String>,
    /// The agent name it registered with.
    pub agent_name: String,
    /// `connecting`, `available`, `full` or `draining`.
    pub status: &'static str,
    /// 0 to 1, as last reported to LiveKit.
    pub load: f64,
    /// Calls running now.
    pub job_count: usize,
    /// MAX_JOBS.
    pub max_jobs: u32,
    /// The calls running now.
    pub jobs: Vec<RunningJob>,
    /// The last jobs that ended, newest last.
    pub recent_jobs: Vec<FinishedJob>,
}

#[derive(Debug)]
pub struct WorkerState {
    limits: Limits,
    worker_id: Option<String>,
    draining: bool,
    /// Jobs we said yes to, awaiting assignment, until the deadline.
    reserved: HashMap<String, Instant>,
    running: BTreeMap<String, RunningJob>,
    recent: VecDeque<FinishedJob>,
    load: f64,
    status_seq: u64,
}

impl WorkerState {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            worker_id: None,
            draining: false,
            reserved: HashMap::new(),
            running: BTreeMap::new(),
            recent: VecDeque::new(),
            load: 0.0,
            status_seq: 0,
        }
    }

    pub fn register(&self) -> Message {
        Message::Register(pb::RegisterWorkerRequest {
            r#type: pb::JobType::JtRoom as i32,
            agent_name: self.limits.agent_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            allowed_permissions: Some(pb::ParticipantPermission {
                can_subscribe: true,
                can_publish: true,
                can_publish_data: true,
                can_update_metadata: true,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub fn registered(&mut self, worker_id: String) {
        self.worker_id = Some(worker_id);
    }

    /// The connection dropped: we are not registered, and unanswered reservations lapse. Running
    /// jobs go on; they are announced again after re-registering.
    pub fn disconnected(&mut self) {
        self.worker_id = None;
        self.reserved.clear();
    }

    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    fn committed(&self) -> usize {
        self.reserved.len() + self.running.len()
    }

    fn available(&self) -> bool {
        let within_jobs = self.committed() < self.limits.max_jobs as usize;
        let within_load = self.limits.load_threshold.is_none_or(|threshold| self.load < threshold);
        !self.draining && within_jobs && within_load
    }

    /// Answers an availability request: holds a slot and says yes, or says no.
    pub fn reserve(&mut self, job_id: &str, now: Instant) -> bool {
        self.expire(now);
        if !self.available() {
            return false;
        }
        self.reserved.insert(job_id.to_owned(), now + ASSIGNMENT_TIMEOUT);
        true
    }

    /// A reservation that will not be used (the profile could not be prepared).
    pub fn release(&mut self, job_id: &str) {
        self.reserved.remove(job_id);
    }

    /// The server assigned a job: it runs if we reserved it or still have room.
    pub fn assigned(&mut self, job: &pb::Job, now: Instant) -> bool {
        self.expire(now);
        let reserved = self.reserved.remove(&job.id).is_some();
        if !reserved && !self.available() {
            return false;
        }
        let room = job.room.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        let running = RunningJob { id: job.id.clone(), room, agent: None, started_at: chrono::Utc::now() };
        self.running.insert(job.id.clone(), running);
        true
    }

    /// The agent profile a running job chose (after reading the caller's metadata, in
    /// automatic dispatch), for the shared call registry.
    pub fn set_agent(&mut self, job_id: &str, agent: String) {
        if let Some(job) = self.running.get_mut(job_id) {
            job.agent = Some(agent);
        }
    }

    pub fn job_running(&self, job_id: &str) -> Message {
        Message::UpdateJob(pb::UpdateJobStatus {
            job_id: job_id.to_owned(),
            status: pb::JobStatus::JsRunning as i32,
            error: String::new(),
        })
    }

    /// A job ended; returns the status update to send.
    pub fn finished(&mut self, job_id: &str, result: &Result<(), String>) -> Message {
        let (status, error) = match result {
            Ok(()) => (pb::JobStatus::JsSuccess, String::new()),
            Err(error) => (pb::JobStatus::JsFailed, error.clone()),
        };
        if let Some(job) = self.running.remove(job_id) {
            if self.recent.len() == RECENT_JOBS {
                self.recent.pop_front();
            }
            let status_name = if result.is_ok() { "success" } else { "failed" };
            self.recent.push_back(FinishedJob {
                id: job.id,
                room: job.room,
                status: status_name,
                error: result.clone().err(),
                ended_at: chrono::Utc::now(),
            });
        }
        Message::UpdateJob(pb::UpdateJobStatus { job_id: job_id.to_owned(), status: status as i32, error })
    }

    /// After re-registering: the jobs that kept running while we were away.
    pub fn migrate(&self) -> Option<Message> {
        let job_ids: Vec<String> = self.running.keys().cloned().collect();
        if job_ids.is_empty() { None } else { Some(Message::MigrateJob(pb::MigrateJobRequest { job_ids })) }
    }

    /// Load is the higher of the process's measured CPU share and the share of MAX_JOBS in use,
    /// so neither a CPU-heavy nor a call-heavy worker is offered more than it can take.
    pub fn set_cpu_share(&mut self, cpu_share: f64) {
        let jobs_share = self.committed() as f64 / f64::from(self.limits.max_jobs.max(1));
        self.load = cpu_share.max(jobs_share).clamp(0.0, 1.0);
    }

    pub fn status(&mut self, now: Instant) -> Message {
        self.expire(now);
        self.status_seq += 1;
        let status = if self.available() { pb::WorkerStatus::WsAvailable } else { pb::WorkerStatus::WsFull };
        Message::UpdateWorker(pb::UpdateWorkerStatus {
            status: Some(status as i32),
            load: self.load as f32,
            job_count: u32::try_from(self.running.len()).unwrap_or(u32::MAX),
            draining: self.draining,
            seq: self.status_seq,
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        let status = match (&self.worker_id, self.draining, self.available()) {
            (_, true, _) => "draining",
            (None, _, _) => "connecting",
            (Some(_), _, true) => "available",
            (Some(_), _, false) => "full",
        };
        Snapshot {
            worker_id: self.worker_id.clone(),
            agent_name: self.limits.agent_name.clone(),
            status,
            load: self.load,
            job_count: self.running.len(),
            max_jobs: self.limits.max_jobs,
            jobs: self.running.values().cloned().collect(),
            recent_jobs: self.recent.iter().rev().cloned().collect(),
        }
    }

    fn expire(&mut self, now: Instant) {
        self.reserved.retain(|_, deadline| now < *deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_jobs: u32, load_threshold: Option<f64>) -> WorkerState {
        WorkerState::new(Limits { agent_name: "sales".into(), max_jobs, load_threshold })
    }

    fn job(id: &str) -> pb::Job {
        pb::Job {
            id: id.into(),
            room: Some(pb::Room { name: format!("room-{id}"), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn registers_for_room_jobs_under_its_agent_name() {
        let Message::Register(register) = state(1, None).register() else { panic!("register") };
        assert_eq!((register.r#type, register.agent_name.as_str()), (pb::JobType::JtRoom as i32, "sales"));
        assert!(
            register.allowed_permissions.is_some_and(|p| p.can_publish && p.can_subscribe && p.can_update_metadata)
        );
    }

    #[test]
    fn capacity_counts_reservations_and_running_jobs() {
        let now = Instant::now();
        let mut state = state(2, None);
        assert!(state.reserve("a", now));
        assert!(state.reserve("b", now));
        assert!(!state.reserve("c", now), "two committed of two");
        assert!(state.assigned(&job("a"), now));
        assert!(state.reserve("c", now + ASSIGNMENT_TIMEOUT), "b's reservation lapsed");
        state.finished("a", &Ok(()));
        assert!(state.reserve("d", now + ASSIGNMENT_TIMEOUT));
        assert!(!state.assigned(&job("e"), now + ASSIGNMENT_TIMEOUT), "an unreserved job does not fit");
    }

    #[test]
    fn a_running_job_shows_its_agent_once_chosen() {
        let mut state = state(2, None);
        assert!(state.assigned(&job("a"), Instant::now()));
        assert_eq!(state.snapshot().jobs[0].agent, None, "not chosen yet");
        state.set_agent("a", "clinic-hi".into());
        state.set_agent("gone", "default".into());
        let jobs = state.snapshot().jobs;
        assert_eq!((jobs.len(), jobs[0].agent.as_deref()), (1, Some("clinic-hi")));
    }

    #[test]
    fn load_is_the_higher_of_cpu_and_jobs_and_the_threshold_applies() {
        let now = Instant::now();
        let mut state = state(10, Some(0.5));
        state.set_cpu_share(0.2);
        assert!(state.reserve("a", now));
        for id in ["b", "c", "d", "e"] {
            assert!(state.assigned(&job(id), now));
        }
        state.set_cpu_share(0.1);
        let Message::UpdateWorker(status) = state.status(now) else { panic!("status") };
        assert_eq!((status.load, status.job_count), (0.5, 4), "5 of 10 committed beats 10 % CPU");
        assert_eq!(status.status, Some(pb::WorkerStatus::WsFull as i32));
        assert!(!state.reserve("f", now));
        let mut unlimited = super::tests::state(10, None);
        unlimited.set_cpu_share(0.99);
        assert!(unlimited.reserve("x", now), "no threshold in dev");
    }

    #[test]
    fn draining_refuses_new_jobs_and_reports_full() {
        let now = Instant::now();
        let mut state = state(10, None);
        state.registered("AW_1".into());
        state.start_draining();
        assert!(!state.reserve("a", now));
        let Message::UpdateWorker(status) = state.status(now) else { panic!("status") };
        assert!(status.draining && status.status == Some(pb::WorkerStatus::WsFull as i32));
        assert_eq!(state.snapshot().status, "draining");
    }

    #[test]
    fn finished_jobs_report_success_or_failure_and_are_remembered() {
        let now = Instant::now();
        let mut state = state(10, None);
        assert!(state.assigned(&job("a"), now) && state.assigned(&job("b"), now));
        let Message::UpdateJob(ok) = state.finished("a", &Ok(())) else { panic!("update") };
        assert_eq!(ok.status, pb::JobStatus::JsSuccess as i32);
        let Message::UpdateJob(failed) = state.finished("b", &Err("the job panicked".into())) else { panic!("update") };
        assert_eq!((failed.status, failed.error.as_str()), (pb::JobStatus::JsFailed as i32, "the job panicked"));
        let snapshot = state.snapshot();
        assert_eq!(snapshot.job_count, 0);
        assert_eq!(snapshot.recent_jobs[0].status, "failed");
    }

    #[test]
    fn jobs_survive_a_reconnection_and_are_announced_again() {
        let now = Instant::now();
        let mut state = state(10, None);
        state.registered("AW_1".into());
        assert!(state.reserve("pending", now));
        assert!(state.assigned(&job("running"), now));
        state.disconnected();
        assert!(state.snapshot().worker_id.is_none());
        assert_eq!(state.snapshot().job_count, 1, "the call goes on");
        state.registered("AW_2".into());
        let Some(Message::MigrateJob(migrate)) = state.migrate() else { panic!("migrate") };
        assert_eq!(migrate.job_ids, ["running"]);
    }
}
