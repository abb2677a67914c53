//! The registry of live calls: each worker's entries in Redis, refreshed while it lives.
//!
//! Entries expire unless refreshed, so a worker that dies (even by kill -9) leaves nothing
//! behind for longer than the expiry; a call that ends is removed at the next refresh, and a
//! worker that stops cleanly removes its entries as it goes.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{PREFIX, Shared};

/// One live call, as `voice-agent:call:<worker>:<call id>` holds it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEntry {
    /// The worker's id, which also names its sub-spool of SPOOL_DIR.
    pub worker: String,
    /// The LiveKit job id, which is also the call record's id.
    pub call_id: String,
    /// The LiveKit room of the call.
    pub room: String,
    /// The agent profile, when the dispatch said which.
    pub agent: Option<String>,
    /// RFC 3339.
    pub started: String,
    /// `running`, or `draining` while the worker is stopping.
    pub state: String,
}

/// A worker's own entry, `voice-agent:worker:<worker>` (JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkerEntry<'a> {
    worker: &'a str,
    started: &'a str,
    state: &'a str,
    calls: usize,
}

/// How often entries are written, and how long they outlive the last write.
#[derive(Debug, Clone, Copy)]
pub struct RegistryTiming {
    /// How often the worker writes its entries.
    pub refresh: Duration,
    /// How long an entry outlives its last write: a dead worker's entries vanish after this.
    pub expiry: Duration,
}

impl Default for RegistryTiming {
    fn default() -> Self {
        Self { refresh: Duration::from_secs(5), expiry: Duration::from_secs(15) }
    }
}

fn call_key(worker: &str, call_id: &str) -> String {
    format!("{PREFIX}:call:{worker}:{call_id}")
}

fn worker_key(worker: &str) -> String {
    format!("{PREFIX}:worker:{worker}")
}

/// The most calls a listing reads: far beyond one deployment's concurrent calls, and a bound on
/// what one admin request makes Redis do.
const MAX_LISTED: usize = 10_000;

impl Shared {
    /// Every worker's live calls, or `None` while Redis is down. Entries that do not parse (a
    /// newer version's) are skipped.
    pub async fn live_calls(&self) -> Option<Vec<CallEntry>> {
        self.run("listing the call registry", |mut connection| async move {
            let pattern = format!("{PREFIX}:call:*");
            let mut keys: Vec<String> = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut connection)
                    .await?;
                keys.extend(found);
                cursor = next;
                if cursor == 0 || keys.len() >= MAX_LISTED {
                    break;
                }
            }
            keys.truncate(MAX_LISTED);
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut connection).await?;
            Ok(values.into_iter().flatten().filter_map(|value| serde_json::from_str(&value).ok()).collect())
        })
        .await
    }

    /// Keeps `worker`'s entries current from `snapshot` (its state and live calls) until `stop`
    /// resolves, then removes them. While Redis is down nothing is written; entries come back at
    /// the first refresh after it returns.
    pub async fn keep_registry<F>(
        self,
        worker: String,
        started: String,
        timing: RegistryTiming,
        snapshot: F,
        stop: impl Future<Output = ()>,
    ) where
        F: Fn() -> (String, Vec<CallEntry>) + Send + 'static,
    {
        tokio::pin!(stop);
        let mut written: HashSet<String> = HashSet::new();
        let mut tick = tokio::time::interval(timing.refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let expiry_ms = timing.expiry.as_millis() as u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut stop => break,
            }
            let (state, calls) = snapshot();
            let mut pipe = redis::pipe();
            let own = WorkerEntry { worker: &worker, started: &started, state: &state, calls: calls.len() };
            let own = serde_json::to_string(&own).expect("a worker entry is plain JSON");
            pipe.cmd("SET").arg(worker_key(&worker)).arg(own).arg("PX").arg(expiry_ms).ignore();
            let mut now_written = HashSet::new();
            for call in &calls {
                let key = call_key(&worker, &call.call_id);
                let value = serde_json::to_string(call).expect("a call entry is plain JSON");
                pipe.cmd("SET").arg(&key).arg(value).arg("PX").arg(expiry_ms).ignore();
                now_written.insert(key);
            }
            let ended: Vec<&String> = written.difference(&now_written).collect();
            if !ended.is_empty() {
                pipe.cmd("DEL").arg(ended).ignore();
            }
            let stored = self
                .run("refreshing the call registry", |mut connection| async move {
                    pipe.query_async::<()>(&mut connection).await
                })
                .await;
            if stored.is_some() {
                written = now_written;
            }
        }
        let mut keys: Vec<String> = written.into_iter().collect();
        keys.push(worker_key(&worker));
        self.run("removing a stopped worker from the call registry", |mut connection| async move {
            redis::cmd("DEL").arg(keys).query_async::<i64>(&mut connection).await
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_entries_have_the_documented_shape() {
        assert_eq!(call_key("web-1-0a1b2c3d", "AJ_x"), "voice-agent:call:web-1-0a1b2c3d:AJ_x");
        assert_eq!(worker_key("w"), "voice-agent:worker:w");
        let entry = CallEntry {
            worker: "w".into(),
            call_id: "AJ_x".into(),
            room: "call-1".into(),
            agent: Some("clinic-hi".into()),
            started: "2026-12-05T00:00:00Z".into(),
            state: "running".into(),
        };
        let json: serde_json::Value = serde_json::to_value(&entry).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({"worker": "w", "callId": "AJ_x", "room": "call-1", "agent": "clinic-hi",
                "started": "2026-12-05T00:00:00Z", "state": "running"})
        );
    }
}
