//! Live calls from the Redis call registry (`REDIS_URL`): every worker's calls, whichever LiveKit
//! node hosts them, in the state the worker last wrote. Calls are ended through LiveKit's
//! RoomService, and while Redis does not answer the list comes from it too.

use futures_util::future::BoxFuture;

use super::calls::{CallsError, LiveCall, LiveCalls, RoomService};
use crate::shared::{CallEntry, Shared};

/// The registry as a [`LiveCalls`] source, LiveKit standing in while Redis is down.
pub struct RegistryCalls {
    shared: Shared,
    livekit: RoomService,
}

impl RegistryCalls {
    /// Lists from `shared`'s registry; ends calls (and lists, while Redis is down) through
    /// `livekit`.
    pub fn new(shared: Shared, livekit: RoomService) -> Self {
        Self { shared, livekit }
    }
}

impl LiveCalls for RegistryCalls {
    fn source(&self) -> &'static str {
        "registry"
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LiveCall>, CallsError>> {
        Box::pin(async move {
            match self.shared.live_calls().await {
                Some(entries) => {
                    let now = chrono::Utc::now();
                    let mut calls: Vec<LiveCall> = entries.iter().map(|entry| live_call(entry, now)).collect();
                    calls.sort_by(|a, b| b.duration_seconds.cmp(&a.duration_seconds).then(a.room.cmp(&b.room)));
                    Ok(calls)
                }
                None => self.livekit.list().await,
            }
        })
    }

    fn end<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<bool, CallsError>> {
        self.livekit.end(room)
    }
}

/// A registry entry as the page shows it; an unreadable start time counts as just now.
fn live_call(entry: &CallEntry, now: chrono::DateTime<chrono::Utc>) -> LiveCall {
    let started = chrono::DateTime::parse_from_rfc3339(&entry.started).map_or(now, |at| at.to_utc());
    LiveCall {
        room: entry.room.clone(),
        agent: entry.agent.clone(),
        state: entry.state.clone(),
        duration_seconds: u64::try_from((now - started).num_seconds()).unwrap_or(0),
        callers: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_shows_its_room_agent_state_and_age() {
        let entry = CallEntry {
            worker: "w".into(),
            call_id: "AJ_1".into(),
            room: "call-1".into(),
            agent: Some("clinic-hi".into()),
            started: "2026-12-05T10:00:00+05:30".into(),
            state: "draining".into(),
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-05T04:31:05Z").expect("a time").to_utc();
        let call = live_call(&entry, now);
        assert_eq!(
            call,
            LiveCall {
                room: "call-1".into(),
                agent: Some("clinic-hi".into()),
                state: "draining".into(),
                duration_seconds: 65,
                callers: None
            }
        );
        let garbled = CallEntry { started: "yesterday".into(), ..entry };
        assert_eq!(live_call(&garbled, now).duration_seconds, 0);
    }
}
