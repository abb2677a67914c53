//! What the server API asks of a room (`RoomService`): its summary, its participants, removing
//! or updating one, and deleting the room. Deleting terminates the room's agent jobs first and
//! gives agents [`AGENT_LEAVE_GRACE`] to leave by themselves, so a worker learns its call ended
//! because its job was terminated rather than because its caller vanished; then everyone still
//! there is removed with `ROOM_DELETED`.

use std::time::{Duration, Instant};

use livekit_protocol as pb;
use tokio::sync::oneshot;

use super::{DispatchMsg, Member, RoomHandle, RoomMsg, RoomState, ToSession};

/// LiveKit gives an agent this long to leave once its dispatch is deleted, then removes it.
const AGENT_LEAVE_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub(in crate::devserver) enum Admin {
    Info {
        reply: oneshot::Sender<pb::Room>,
    },
    Participants {
        reply: oneshot::Sender<Vec<pb::ParticipantInfo>>,
    },
    /// Answers whether the participant was there.
    Remove {
        identity: String,
        reply: oneshot::Sender<bool>,
    },
    /// Answers the participant as updated, or `None` when it is not there.
    Update {
        update: pb::UpdateParticipantRequest,
        reply: oneshot::Sender<Option<pb::ParticipantInfo>>,
    },
    /// Answers once the room has ended.
    Delete {
        reply: oneshot::Sender<()>,
    },
}

/// A room being deleted: when it stops waiting for its agents, and who waits for the end.
#[derive(Debug)]
pub(super) struct Deletion {
    deadline: Instant,
    replies: Vec<oneshot::Sender<()>>,
}

impl Deletion {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// The API's side: each call answers `None` when the room ended before it could answer.
impl RoomHandle {
    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> Admin) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        if !self.send(RoomMsg::Admin(request(reply))).await {
            return None;
        }
        answer.await.ok()
    }

    pub async fn info(&self) -> Option<pb::Room> {
        self.ask(|reply| Admin::Info { reply }).await
    }

    pub async fn participants(&self) -> Option<Vec<pb::ParticipantInfo>> {
        self.ask(|reply| Admin::Participants { reply }).await
    }

    pub async fn remove(&self, identity: String) -> Option<bool> {
        self.ask(|reply| Admin::Remove { identity, reply }).await
    }

    pub async fn update(&self, update: pb::UpdateParticipantRequest) -> Option<Option<pb::ParticipantInfo>> {
        self.ask(|reply| Admin::Update { update, reply }).await
    }

    /// Returns once the room has ended (at once if it already had).
    pub async fn delete(&self) {
        self.ask(|reply| Admin::Delete { reply }).await;
    }
}

impl RoomState {
    pub(super) fn admin(&mut self, request: Admin, now: Instant) {
        match request {
            Admin::Info { reply } => {
                let _ = reply.send(self.summary());
            }
            Admin::Participants { reply } => {
                let mut participants: Vec<pb::ParticipantInfo> =
                    self.members.values().map(|m| m.info.clone()).collect();
                participants.sort_by(|a, b| (a.joined_at_ms, &a.identity).cmp(&(b.joined_at_ms, &b.identity)));
                let _ = reply.send(participants);
            }
            Admin::Remove { identity, reply } => {
                let _ = reply.send(self.remove(&identity));
            }
            Admin::Update { update, reply } => {
                let sid = self.sid_of(&update.identity);
                if let Some(sid) = &sid {
                    self.update(sid, update.name, update.metadata, update.attributes);
                }
                let _ = reply.send(sid.and_then(|sid| self.members.get(&sid)).map(|m| m.info.clone()));
            }
            Admin::Delete { reply } => self.start_deletion(reply, now),
        }
    }

    /// The room as `ListRooms` shows it, with its current counts (hidden participants aside).
    fn summary(&self) -> pb::Room {
        let visible = || self.members.values().filter(|m| !m.hidden());
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        pb::Room {
            num_participants: count(visible().count()),
            num_publishers: count(visible().filter(|m| m.info.is_publisher).count()),
            ..self.info.clone()
        }
    }

    fn sid_of(&self, identity: &str) -> Option<String> {
        self.members.values().find(|m| m.info.identity == identity).map(|m| m.info.sid.clone())
    }

    /// Removes a participant as LiveKit's RemoveParticipant does: it is told it was removed and
    /// everyone else sees it leave.
    fn remove(&mut self, identity: &str) -> bool {
        let Some(sid) = self.sid_of(identity) else { return false };
        if let Some(member) = self.members.get(&sid) {
            let leave = pb::LeaveRequest {
                reason: pb::DisconnectReason::ParticipantRemoved as i32,
                action: pb::leave_request::Action::Disconnect as i32,
                ..Default::default()
            };
            let _ = member.link.tx.try_send(ToSession::Leave(leave));
        }
        self.leave(&sid, pb::DisconnectReason::ParticipantRemoved);
        true
    }

    fn start_deletion(&mut self, reply: oneshot::Sender<()>, now: Instant) {
        if let Some(deletion) = self.deletion.as_mut() {
            deletion.replies.push(reply);
            return;
        }
        tracing::info!(room = %self.info.name, "deleting the room: its agent jobs end, then everyone is removed");
        self.dispatcher.send(DispatchMsg::RoomClosed { sid: self.info.sid.clone() });
        self.deletion = Some(Deletion { deadline: now + AGENT_LEAVE_GRACE, replies: vec![reply] });
    }

    /// Whether a room being deleted can end: its agents have left, or their time is up.
    pub(super) fn deleted(&self, now: Instant) -> bool {
        self.deletion.as_ref().is_some_and(|d| now >= d.deadline || !self.members.values().any(Member::is_agent))
    }

    pub(super) fn finish_deletion(&mut self) {
        self.close(pb::DisconnectReason::RoomDeleted);
        for reply in self.deletion.take().map(|d| d.replies).unwrap_or_default() {
            let _ = reply.send(());
        }
    }
}
