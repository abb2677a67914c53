//! The agent's state as the room sees it: the `lk.agent.state` attribute that LiveKit's clients
//! (and our page) show as "listening", "thinking" or "speaking".
//!
//! Publishing waits for the server, so it runs on its own task and the conversation never waits:
//! states that change faster than the server answers are coalesced to the latest.

use std::collections::HashMap;

use tokio::sync::watch;

use crate::livekit::room::Room;

const ATTRIBUTE: &str = "lk.agent.state";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Initializing,
    Listening,
    Thinking,
    Speaking,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Initializing => "initializing",
            AgentState::Listening => "listening",
            AgentState::Thinking => "thinking",
            AgentState::Speaking => "speaking",
        }
    }
}

/// Publishes every state set on the returned sender until the sender is dropped.
pub fn publisher(room: Room) -> (watch::Sender<AgentState>, tokio::task::JoinHandle<()>) {
    let (state, mut changes) = watch::channel(AgentState::Initializing);
    let task = tokio::spawn(async move {
        loop {
            let current = *changes.borrow_and_update();
            let attributes = HashMap::from([(ATTRIBUTE.to_owned(), current.as_str().to_owned())]);
            if let Err(e) = room.set_attributes(attributes).await {
                tracing::warn!(state = current.as_str(), "cannot publish the agent state: {e}");
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    });
    (state, task)
}
