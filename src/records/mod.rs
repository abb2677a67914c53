//! Call records, spooled to disk and delivered to n8n's lead-capture webhook, never lost.
//!
//! A call record is a lead: losing one to an n8n outage, a slow network or a killed container
//! loses business. So a record is on disk (fsynced, renamed into place) before anything is sent,
//! and leaves the waiting records only when n8n has answered 2xx (into `delivered/`, which keeps
//! the last few for the operator), or moves to `dead/` when n8n refuses it
//! for good. A crash can therefore only make a record go twice, never zero times, and every POST
//! carries the record id as `Idempotency-Key` so the workflow can drop the second copy.
//!
//! A running call is checkpointed after every turn, so a worker killed mid-call loses nothing
//! either: the next worker to open the spool delivers the call up to its last turn.
//!
//! Sending is a background task that never holds up a call or the worker's shutdown: whatever is
//! not delivered when the worker stops waits on disk for the next start or `agent-worker deliver`.
//!
//! - `id`: which record ids are accepted (they name files).
//! - `spool`: the durable files and the lock that keeps one worker per spool.
//! - `active`: checkpoints of running calls, which become records if their worker dies.
//! - `delivered`: the bounded archive of the last records n8n took, for the operator's view.
//! - `backoff`: what an answer from n8n means, and how long to wait before the next try.
//! - `schedule`: which record to send next and when, as a plain state machine.
//! - `signature`: the HMAC that lets the workflow trust a record.
//! - `workers`: one sub-spool per worker on a shared volume, and adopting those of workers that are gone.
//! - `outbox`: the task that sends, and the handle calls use.

mod active;
mod backoff;
mod delivered;
mod id;
mod outbox;
mod schedule;
pub(crate) mod signature;
mod spool;
#[cfg(test)]
mod test_files;
mod workers;

use std::path::PathBuf;

pub use active::ActiveCall;
pub use delivered::DEFAULT_KEEP_DELIVERED;
pub use outbox::{Outbox, OutboxConfig, Tally};
pub use workers::new_worker_id;

/// Why a record could not be kept or the spool opened; each names the file or id at fault.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The call id would not be a safe file name.
    #[error("call record id `{id}` cannot name a file: use 1 to 128 letters, digits, `_` or `-` (a LiveKit job id)")]
    InvalidId {
        /// The id as given.
        id: String,
    },
    /// A worker id that cannot name its sub-spool folder.
    #[error("worker id `{worker}` cannot name its spool folder: use 1 to 128 letters, digits, `_` or `-`")]
    InvalidWorker {
        /// The id as given.
        worker: String,
    },
    /// A record of this call is already waiting or dead: one record per call.
    #[error("call record `{id}` is already in {} (waiting or in dead/); ids must be unique per call", dir.display())]
    Duplicate {
        /// The call id.
        id: String,
        /// The spool holding it.
        dir: PathBuf,
    },
    /// Another process holds the spool's lock.
    #[error(
        "the call record spool {} is in use by another process (it holds {}); give each worker its own SPOOL_DIR",
        dir.display(),
        lock.display()
    )]
    Locked {
        /// The spool.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// The lock file is a symbolic link, which is never followed.
    #[error(
        "the call record spool's lock file {} is a symbolic link; it is not followed, as it could point anywhere: remove it (the worker creates a plain one)",
        lock.display()
    )]
    SymlinkedLock {
        /// The lock file.
        lock: PathBuf,
    },
    /// The HTTP client for n8n could not be built (TLS set-up).
    #[error("cannot set up the HTTP client that sends call records to n8n: {reason}")]
    Client {
        /// The client builder's error.
        reason: String,
    },
    /// A file system operation failed (a full disk, permissions).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`write`, `rename`, `lock`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The blocking task doing the disk work ended early (the runtime shut down).
    #[error("the disk work for call records in {} stopped before it finished: {reason}", dir.display())]
    Interrupted {
        /// The spool.
        dir: PathBuf,
        /// Why the task ended.
        reason: String,
    },
}
