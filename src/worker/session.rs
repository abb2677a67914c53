//! What an agent does in a call. The worker hands each job a [`JobContext`] and runs the
//! profile's [`AgentSession`]; until the voice pipeline lands, that is [`LoopbackSession`],
//! which republishes what it hears so the whole path is real.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use livekit_protocol as pb;
use tokio::sync::{mpsc, watch};

use crate::livekit::loopback;
use crate::livekit::room::{Room, RoomEvent};
use crate::metrics::WorkerMetrics;
use crate::profiles::AgentProfile;

/// The language and voice of this call: the caller's choice where valid, else the profile's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallChoice {
    /// A language the profile's providers all speak (BCP-47, `hi-IN`).
    pub language: String,
    /// A voice of the profile's text-to-speech provider in that language.
    pub voice: String,
}

/// Why a call ended, as the call record tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The last person in the room left (or nobody came).
    CallerLeft,
    /// LiveKit terminated the job (the room was closed, or someone asked).
    JobTerminated,
    /// The worker shut down and its drain time ran out.
    WorkerShutdown,
    /// The agent said goodbye and hung up.
    AgentEnded,
    /// The connection to the room ended.
    RoomClosed,
    /// The call reached the profile's time limit; the agent said goodbye.
    MaxDuration,
    /// Nobody spoke for the profile's silence limit.
    Silence,
    /// The caller neither published a microphone nor typed.
    NoAudio,
    /// The worker died mid-call (killed, crashed, lost its machine): the record holds the call
    /// up to its last checkpoint, and a later worker opening the same spool delivered it.
    WorkerLost,
}

impl EndReason {
    /// Every reason, for counting each from zero.
    pub const ALL: [EndReason; 9] = [
        Self::CallerLeft,
        Self::JobTerminated,
        Self::WorkerShutdown,
        Self::AgentEnded,
        Self::RoomClosed,
        Self::MaxDuration,
        Self::Silence,
        Self::NoAudio,
        Self::WorkerLost,
    ];

    /// The name the call record and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallerLeft => "caller_left",
            Self::JobTerminated => "job_terminated",
            Self::WorkerShutdown => "worker_shutdown",
            Self::AgentEnded => "agent_ended",
            Self::RoomClosed => "room_closed",
            Self::MaxDuration => "max_duration",
            Self::Silence => "silence",
            Self::NoAudio => "no_audio",
            Self::WorkerLost => "worker_lost",
        }
    }
}

/// Everything a session needs for one call.
pub struct JobContext {
    /// The job as LiveKit assigned it (id, room, dispatch metadata).
    pub job: pb::Job,
    /// The room, already joined as the agent.
    pub room: Room,
    /// What happens in the room: people joining and leaving, tracks, data, text streams.
    pub events: mpsc::UnboundedReceiver<RoomEvent>,
    /// The agent profile the dispatch or the caller chose (else the default).
    pub profile: Arc<AgentProfile>,
    /// The call's language and voice.
    pub choice: CallChoice,
    /// Values for the profile's `{{name}}` placeholders from the metadata that chose the agent
    /// (its `variables` object and its other plain fields), and `caller_name` when the caller
    /// was in the room before the agent started.
    pub variables: BTreeMap<String, String>,
    /// Says why, once the call must end: the caller left, the job was terminated, or the
    /// worker's drain ran out.
    pub stop: watch::Receiver<Option<EndReason>>,
    /// The worker's metrics: the call's turns, providers and end count into them.
    pub metrics: WorkerMetrics,
}

/// What runs each call; [`crate::agent::per_call`] makes one from an agent builder.
pub trait AgentSession: Send + Sync + 'static {
    /// Runs the call to its end; an error marks the job FAILED with that message.
    fn run(&self, context: JobContext) -> BoxFuture<'static, Result<(), String>>;
}

/// Sends back every audio track and data message, and says it is listening.
#[derive(Debug, Default)]
pub struct LoopbackSession;

impl AgentSession for LoopbackSession {
    fn run(&self, context: JobContext) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let JobContext { room, events, mut stop, .. } = context;
            let listening = HashMap::from([("lk.agent.state".to_owned(), "listening".to_owned())]);
            if let Err(e) = room.set_attributes(listening).await {
                tracing::warn!("cannot publish the agent state: {e}");
            }
            let stopped = async move {
                let _ = stop.wait_for(Option::is_some).await;
            };
            loopback::run(room, events, stopped).await.map(|_| ()).map_err(|e| e.to_string())
        })
    }
}
