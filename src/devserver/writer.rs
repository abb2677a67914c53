//! The writing half of a signalling WebSocket, in a task of its own, so a client that does not
//! read can never stall the session that serves it: messages wait in a queue bounded in count and
//! in bytes, each write has a deadline, and a client over either is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::limits::{MAX_UNSENT_BYTES, MAX_UNSENT_MESSAGES};

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Stalled {
    #[error(
        "the client is not reading its signalling connection ({MAX_UNSENT_BYTES} bytes or {MAX_UNSENT_MESSAGES} messages unsent)"
    )]
    NotReading,
    #[error("the signalling connection is closed")]
    Closed,
}

pub(super) struct SignalWriter {
    tx: mpsc::Sender<Vec<u8>>,
    unsent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    send_timeout: Duration,
}

impl SignalWriter {
    /// `who` names the client in the log line that says why it was closed.
    pub fn spawn(sink: SplitSink<WebSocket, Message>, send_timeout: Duration, who: String) -> Self {
        let (tx, rx) = mpsc::channel(MAX_UNSENT_MESSAGES);
        let unsent = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(write(sink, rx, unsent.clone(), send_timeout, who));
        Self { tx, unsent, task, send_timeout }
    }

    /// Queues one binary frame. A frame larger than the byte bound still goes when nothing else
    /// is waiting, so no single message can be refused forever.
    pub fn send(&self, frame: Vec<u8>) -> Result<(), Stalled> {
        let length = frame.len();
        let before = self.unsent.fetch_add(length, Ordering::SeqCst);
        if before > 0 && before + length > MAX_UNSENT_BYTES {
            self.unsent.fetch_sub(length, Ordering::SeqCst);
            return Err(Stalled::NotReading);
        }
        self.tx.try_send(frame).map_err(|e| {
            self.unsent.fetch_sub(length, Ordering::SeqCst);
            match e {
                TrySendError::Full(_) => Stalled::NotReading,
                TrySendError::Closed(_) => Stalled::Closed,
            }
        })
    }

    /// Completes once the writer has given up: a write timed out or the connection failed.
    pub async fn failed(&self) {
        self.tx.closed().await;
    }

    /// Writes what is queued and a close frame, within one send timeout; then the task is gone.
    pub async fn close(self) {
        let Self { tx, task, send_timeout, .. } = self;
        drop(tx);
        let abort = task.abort_handle();
        if tokio::time::timeout(send_timeout, task).await.is_err() {
            abort.abort();
        }
    }
}

async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    unsent: Arc<AtomicUsize>,
    send_timeout: Duration,
    who: String,
) {
    while let Some(frame) = rx.recv().await {
        let length = frame.len();
        match tokio::time::timeout(send_timeout, sink.send(Message::Binary(frame.into()))).await {
            Ok(Ok(())) => {
                unsent.fetch_sub(length, Ordering::SeqCst);
            }
            Ok(Err(e)) => {
                tracing::debug!(client = %who, "signal send failed: {e}");
                return;
            }
            Err(_) => {
                tracing::warn!(client = %who, "closing: the client read nothing for {send_timeout:?}");
                return;
            }
        }
    }
    let _ = tokio::time::timeout(send_timeout, sink.close()).await;
}
