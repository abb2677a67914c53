//! Checkpoints of a running call: its record as it would be if the worker died now, kept in the
//! spool's `active/` after every turn and replaced by the real record when the call ends.
//!
//! A checkpoint written after the real record would be taken, at the next start, for a call
//! whose worker died; so writes and the end of the call take turns on one lock, held on the
//! blocking thread that touches the disk (a checkpoint task cancelled mid-write cannot let go of
//! it early), and once the call has ended no checkpoint is written.

use std::sync::{Arc, Mutex, PoisonError};

use super::RecordsError;
use super::id::RecordId;
use super::outbox::{Outbox, blocking};

/// The checkpoints of one running call; see the [module documentation](self).
pub struct ActiveCall {
    outbox: Outbox,
    id: RecordId,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// The call's record was submitted (or is being): no more checkpoints.
    ended: bool,
    /// A checkpoint is on disk.
    saved: bool,
}

impl ActiveCall {
    pub(super) fn new(outbox: Outbox, id: RecordId) -> Self {
        Self { outbox, id, state: Arc::default() }
    }

    /// Replaces the call's checkpoint with `body`; returns once it is on disk (or at once, after
    /// the call has ended).
    pub async fn checkpoint(&self, body: Vec<u8>) -> Result<(), RecordsError> {
        let spool = self.outbox.spool().clone();
        let (id, state) = (self.id.clone(), self.state.clone());
        blocking(self.outbox.spool().dir(), move || {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.ended {
                return Ok(());
            }
            spool.save_active(&id, &body)?;
            state.saved = true;
            Ok(())
        })
        .await
    }

    /// Stores the call's record for delivery and removes its checkpoint. Should storing fail,
    /// the checkpoint stays, and the next start delivers it.
    pub async fn submit(&self, body: Vec<u8>) -> Result<(), RecordsError> {
        let spool = self.outbox.spool().clone();
        let (id, state) = (self.id.clone(), self.state.clone());
        blocking(self.outbox.spool().dir(), move || {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.ended = true;
            spool.put(&id, &body)?;
            spool.remove_active(&id)
        })
        .await?;
        self.outbox.queue(self.id.clone());
        Ok(())
    }
}

/// A call whose record was never submitted (its task failed or was cut off) is delivered now,
/// up to its last checkpoint, rather than at the next start: a rename, on this rare path only.
impl Drop for ActiveCall {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.ended || !state.saved {
            return;
        }
        state.ended = true;
        match self.outbox.spool().promote(&self.id) {
            Ok(true) => {
                tracing::warn!(id = %self.id, "a call ended without its record; it is delivered up to its last turn");
                self.outbox.queue(self.id.clone());
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(id = %self.id, %error, "cannot deliver the checkpoint of a call that ended without its record; the next start will")
            }
        }
    }
}
