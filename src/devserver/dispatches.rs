//! The agent dispatches of each open room, as `AgentDispatchService` lists them: the ones a room
//! gets when its first person joins (its `roomConfig.agents`, or the default unnamed one) and the
//! ones `CreateDispatch` adds, each with the jobs launched for it and their state. Plain data,
//! fed by the dispatcher; times are given in Unix nanoseconds, as LiveKit writes them.

use std::collections::HashMap;

use livekit_protocol as pb;

use super::ids;
use super::limits::MAX_DISPATCHES_PER_ROOM;

#[derive(Debug, Default)]
pub(super) struct Dispatches {
    /// By room sid, in creation order.
    rooms: HashMap<String, Vec<pb::AgentDispatch>>,
}

impl Dispatches {
    /// Records `dispatch` for the room with a fresh id; refused once the room has as many as it
    /// may hold.
    pub fn create(
        &mut self,
        room_sid: &str,
        mut dispatch: pb::AgentDispatch,
        now: i64,
    ) -> Result<pb::AgentDispatch, String> {
        let dispatches = self.rooms.entry(room_sid.to_owned()).or_default();
        if dispatches.len() >= MAX_DISPATCHES_PER_ROOM {
            return Err(format!("the room has its maximum of {MAX_DISPATCHES_PER_ROOM} agent dispatches"));
        }
        dispatch.id = ids::sid("AD_");
        dispatch.state = Some(pb::AgentDispatchState { jobs: Vec::new(), created_at: now, deleted_at: 0 });
        dispatches.push(dispatch.clone());
        Ok(dispatch)
    }

    /// A worker took a job of one of the room's dispatches.
    pub fn job_started(&mut self, room_sid: &str, job: pb::Job) {
        if let Some(state) = self.state_mut(room_sid, &job.dispatch_id) {
            state.jobs.push(job);
        }
    }

    /// Changes a recorded job's state.
    pub fn update_job(
        &mut self,
        room_sid: &str,
        dispatch_id: &str,
        job_id: &str,
        update: impl FnOnce(&mut pb::JobState),
    ) {
        let job =
            self.state_mut(room_sid, dispatch_id).and_then(|state| state.jobs.iter_mut().find(|job| job.id == job_id));
        if let Some(job) = job {
            update(job.state.get_or_insert_with(pb::JobState::default));
        }
    }

    /// The room's dispatches, or only the one with `dispatch_id` when it is not empty.
    pub fn list(&self, room_sid: &str, dispatch_id: &str) -> Vec<pb::AgentDispatch> {
        self.rooms
            .get(room_sid)
            .into_iter()
            .flatten()
            .filter(|d| dispatch_id.is_empty() || d.id == dispatch_id)
            .cloned()
            .collect()
    }

    /// Removes a dispatch; the caller ends its jobs.
    pub fn delete(&mut self, room_sid: &str, dispatch_id: &str, now: i64) -> Option<pb::AgentDispatch> {
        let dispatches = self.rooms.get_mut(room_sid)?;
        let index = dispatches.iter().position(|d| d.id == dispatch_id)?;
        let mut deleted = dispatches.remove(index);
        if let Some(state) = deleted.state.as_mut() {
            state.deleted_at = now;
        }
        Some(deleted)
    }

    /// The room closed: its dispatches go with it.
    pub fn room_closed(&mut self, room_sid: &str) {
        self.rooms.remove(room_sid);
    }

    fn state_mut(&mut self, room_sid: &str, dispatch_id: &str) -> Option<&mut pb::AgentDispatchState> {
        self.rooms.get_mut(room_sid)?.iter_mut().find(|d| d.id == dispatch_id)?.state.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(agent_name: &str) -> pb::AgentDispatch {
        pb::AgentDispatch { agent_name: agent_name.into(), room: "call".into(), ..Default::default() }
    }

    #[test]
    fn dispatches_are_listed_per_room_with_their_jobs() {
        let mut dispatches = Dispatches::default();
        let sales = dispatches.create("RM_1", named("sales"), 10).expect("room for it");
        let support = dispatches.create("RM_1", named("support"), 11).expect("room for it");
        dispatches.create("RM_2", named("sales"), 12).expect("room for it");
        assert!(sales.id.starts_with("AD_") && sales.id != support.id);
        assert_eq!(sales.state.as_ref().map(|s| s.created_at), Some(10));

        let job = pb::Job { id: "AJ_1".into(), dispatch_id: sales.id.clone(), ..Default::default() };
        dispatches.job_started("RM_1", job);
        dispatches.update_job("RM_1", &sales.id, "AJ_1", |state| state.status = pb::JobStatus::JsSuccess as i32);

        let listed = dispatches.list("RM_1", "");
        let names: Vec<&str> = listed.iter().map(|d| d.agent_name.as_str()).collect();
        assert_eq!(names, ["sales", "support"], "in creation order");
        let jobs = &listed[0].state.as_ref().expect("state").jobs;
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].state.as_ref().map(|s| s.status), Some(pb::JobStatus::JsSuccess as i32));
        assert_eq!(dispatches.list("RM_1", &support.id).len(), 1, "filtered by id");
        assert!(dispatches.list("RM_3", "").is_empty());
    }

    #[test]
    fn deleting_removes_one_and_closing_removes_the_rooms() {
        let mut dispatches = Dispatches::default();
        let sales = dispatches.create("RM_1", named("sales"), 10).expect("room for it");
        dispatches.create("RM_1", named("support"), 10).expect("room for it");
        assert_eq!(dispatches.delete("RM_1", "AD_unknown", 20), None);
        assert_eq!(dispatches.delete("RM_2", &sales.id, 20), None, "another room's id");
        let deleted = dispatches.delete("RM_1", &sales.id, 20).expect("deleted");
        assert_eq!((deleted.agent_name.as_str(), deleted.state.map(|s| s.deleted_at)), ("sales", Some(20)));
        assert_eq!(dispatches.list("RM_1", "").len(), 1);
        dispatches.room_closed("RM_1");
        assert!(dispatches.list("RM_1", "").is_empty());
    }

    #[test]
    fn a_room_holds_a_bounded_number() {
        let mut dispatches = Dispatches::default();
        for _ in 0..MAX_DISPATCHES_PER_ROOM {
            dispatches.create("RM_1", named("sales"), 0).expect("within the bound");
        }
        let refused = dispatches.create("RM_1", named("sales"), 0).unwrap_err();
        assert!(refused.contains("maximum"), "{refused}");
        assert!(dispatches.create("RM_2", named("sales"), 0).is_ok(), "per room");
    }
}
