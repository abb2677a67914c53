//! Running one job: choose the profile from the dispatch metadata, join the room, run the
//! session, and end when the caller leaves or the job is stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as pb;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use super::AGENT_ID_ATTRIBUTE;
use super::session::{AgentSession, CallChoice, EndReason, JobContext};
use crate::livekit::room::{self, ConnectOptions, Participant, ParticipantKind, RoomEvent};
use crate::metrics::WorkerMetrics;
use crate::profiles::{AgentProfile, ProfileStore};
use crate::providers::catalog;

/// Joining a room normally takes well under a second; longer means the server is unreachable.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
/// A caller who never arrives (or left before the agent joined) ends the call after this.
const CALLER_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_AGENT: &str = "default";

/// Placeholder values taken from one call's metadata, at most; the rest are dropped with a
/// warning. Each ends up in the system prompt.
const MAX_VARIABLES: usize = 64;
/// The longest value taken for a placeholder.
const MAX_VARIABLE_CHARS: usize = 1_000;

/// What the token server writes, as dispatch metadata (explicit dispatch) and always as the
/// caller's participant metadata: `{"agentId","language","voice","variables"}`. An n8n workflow
/// that creates a call may add fields of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    agent_id: Option<String>,
    language: Option<String>,
    voice: Option<String>,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl Metadata {
    /// The values for `{{name}}` placeholders: the metadata's plain fields (text, numbers, true
    /// or false), then its `variables` object over them. Names that cannot be placeholders and
    /// values that are not plain are skipped.
    fn variables(&self) -> BTreeMap<String, String> {
        let mut found = BTreeMap::new();
        let mut skipped = 0_usize;
        let own = match &self.variables {
            Some(Value::Object(own)) => Some(own),
            Some(Value::Null) | None => None,
            Some(_) => {
                tracing::warn!("the metadata's `variables` is not a JSON object; it is ignored");
                None
            }
        };
        for (name, value) in self.other.iter().chain(own.into_iter().flatten()) {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => continue,
            };
            let fits = crate::profiles::valid_variable_name(name)
                && text.chars().count() <= MAX_VARIABLE_CHARS
                && (found.len() < MAX_VARIABLES || found.contains_key(name));
            if fits {
                found.insert(name.clone(), text);
            } else {
                skipped += 1;
            }
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "metadata values that cannot fill a placeholder were skipped (bad name, longer than {MAX_VARIABLE_CHARS} characters, or more than {MAX_VARIABLES})"
            );
        }
        found
    }

    /// `None` unless the JSON names an agent.
    fn naming_an_agent(json: &str, source: &str) -> Option<Self> {
        if json.trim().is_empty() {
            return None;
        }
        match serde_json::from_str::<Self>(json) {
            Ok(metadata) if metadata.agent_id.is_some() => Some(metadata),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("the {source} metadata is not {{agentId, language, voice, variables}} JSON ({e})");
                None
            }
        }
    }
}

/// The profile the worker offers when LiveKit asks about a job: the dispatch metadata's agent,
/// else the default (the caller's own metadata, read after joining, may still name another).
pub async fn prepare(job: &pb::Job, profiles: &ProfileStore) -> Result<Arc<AgentProfile>, String> {
    let metadata = Metadata::naming_an_agent(&job.metadata, "dispatch").unwrap_or_default();
    Ok(choose(metadata, profiles).await?.0)
}

/// The profile and choices for the metadata; an unknown agent, language or voice falls back to
/// the default profile or the profile's own, with a warning, never a failed call.
async fn choose(metadata: Metadata, profiles: &ProfileStore) -> Result<(Arc<AgentProfile>, CallChoice), String> {
    let requested = metadata.agent_id.as_deref().unwrap_or(DEFAULT_AGENT);
    let profile = match profiles.get(requested).await {
        Ok(profile) => profile,
        Err(e) if requested != DEFAULT_AGENT => {
            tracing::warn!(agent_id = requested, "{e}; using the default agent");
            profiles.get(DEFAULT_AGENT).await.map_err(|e| format!("no usable profile: {e}"))?
        }
        Err(e) => return Err(format!("no usable profile: {e}")),
    };
    let (stt, tts) = (&profile.stt.providers, &profile.tts.providers);
    let language =
        metadata.language.filter(|l| catalog::supports(stt, tts, l)).unwrap_or_else(|| profile.language.clone());
    let offered = |voice: &String| tts.first().is_some_and(|first| catalog::offers_voice(first, &language, voice));
    let voice = metadata
        .voice
        .filter(offered)
        .or_else(|| Some(profile.voice.clone()).filter(offered))
        .unwrap_or_else(|| default_voice(&profile, &language));
    Ok((profile, CallChoice { language, voice }))
}

fn default_voice(profile: &AgentProfile, language: &str) -> String {
    profile
        .tts
        .providers
        .first()
        .and_then(|tts| catalog::default_voice(tts, language))
        .unwrap_or_else(|| profile.voice.clone())
}

/// Where and how the job joins.
pub struct Assignment {
    pub job: pb::Job,
    pub url: String,
    pub token: String,
}

/// Runs a job to its end. `running` is told once the agent is in the room.
pub async fn run(
    assignment: Assignment,
    profiles: Arc<ProfileStore>,
    session: Arc<dyn AgentSession>,
    stop: watch::Sender<Option<EndReason>>,
    metrics: WorkerMetrics,
    running: impl FnOnce(),
    chosen: impl FnOnce(&str),
) -> Result<(), String> {
    let Assignment { job, url, token } = assignment;
    let dispatched = Metadata::naming_an_agent(&job.metadata, "dispatch");
    let connecting = room::connect(&url, &token, ConnectOptions::default());
    let (room, mut events) = match tokio::time::timeout(JOIN_TIMEOUT, connecting).await {
        Ok(Ok(joined)) => joined,
        Ok(Err(e)) => return Err(format!("cannot join the room: {e}")),
        Err(_) => return Err(format!("cannot join the room within {JOIN_TIMEOUT:?}")),
    };
    running();
    let mut early = Vec::new();
    let (metadata, from_caller, caller_name) = match dispatched {
        Some(metadata) => (metadata, false, None),
        None => {
            // Automatic dispatch carries no metadata; the token server wrote the same choices
            // into the caller's participant metadata.
            let caller = first_caller(&mut events, &mut early).await;
            let chosen = caller.as_ref().and_then(|p| Metadata::naming_an_agent(&p.metadata, "caller's"));
            if chosen.is_none() {
                tracing::warn!(job = %job.id, "neither the dispatch nor the caller's metadata names an agent; using the default agent");
            }
            let name = caller.map(|p| p.name).filter(|name| !name.trim().is_empty());
            (chosen.unwrap_or_default(), true, name)
        }
    };
    let mut variables = metadata.variables();
    if let Some(name) = caller_name {
        variables.entry("caller_name".to_owned()).or_insert(name);
    }
    let (profile, choice) = choose(metadata, &profiles).await?;
    chosen(&profile.id);
    if from_caller
        && profile.id != DEFAULT_AGENT
        && let Err(e) = room.set_name(&profile.name).await
    {
        tracing::warn!(job = %job.id, "cannot take the agent's name: {e}");
    }
    let agent_id = HashMap::from([(AGENT_ID_ATTRIBUTE.to_owned(), profile.id.clone())]);
    if let Err(e) = room.set_attributes(agent_id).await {
        tracing::warn!(job = %job.id, "cannot say which agent this is: {e}");
    }
    tracing::info!(job = %job.id, room = %room.name(), agent = %profile.id, language = %choice.language, voice = %choice.voice, "agent joined");
    let (relayed, relay_events) = mpsc::unbounded_channel();
    let relay = Relay(tokio::spawn(relay(early, events, relayed, stop.clone())));
    let context = JobContext {
        job,
        room: room.clone(),
        events: relay_events,
        profile,
        choice,
        variables,
        stop: stop.subscribe(),
        metrics,
    };
    let result = session.run(context).await;
    drop(relay);
    room.disconnect().await;
    result
}

/// Reads events until the first person (not an agent) is in the room, keeping what was read.
async fn first_caller(
    events: &mut mpsc::UnboundedReceiver<RoomEvent>,
    read: &mut Vec<RoomEvent>,
) -> Option<Participant> {
    let waiting = async {
        while let Some(event) = events.recv().await {
            let caller = match &event {
                RoomEvent::ParticipantConnected(p) if p.kind != ParticipantKind::Agent => Some(p.clone()),
                _ => None,
            };
            read.push(event);
            if caller.is_some() {
                return caller;
            }
        }
        None
    };
    tokio::time::timeout(CALLER_GRACE, waiting).await.ok().flatten()
}

/// Passes room events (first those already read) to the session, and ends the call when the
/// last person leaves (agents don't count), or when nobody shows up.
async fn relay(
    early: Vec<RoomEvent>,
    mut events: mpsc::UnboundedReceiver<RoomEvent>,
    to_session: mpsc::UnboundedSender<RoomEvent>,
    stop: watch::Sender<Option<EndReason>>,
) {
    let mut people = HashSet::new();
    for event in early {
        if !pass(event, &mut people, &to_session, &stop) {
            return;
        }
    }
    let grace = tokio::time::sleep(CALLER_GRACE);
    tokio::pin!(grace);
    let mut gave_up = false;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                if !pass(event, &mut people, &to_session, &stop) {
                    return;
                }
            }
            () = &mut grace, if people.is_empty() && !gave_up => {
                tracing::info!("no caller in the room; ending the call");
                stop.send_replace(Some(EndReason::CallerLeft));
                gave_up = true;
            }
        }
    }
}

/// Notes who is in the room and forwards the event; false once the session stopped listening.
fn pass(
    event: RoomEvent,
    people: &mut HashSet<String>,
    to_session: &mpsc::UnboundedSender<RoomEvent>,
    stop: &watch::Sender<Option<EndReason>>,
) -> bool {
    match &event {
        RoomEvent::ParticipantConnected(p) if p.kind != ParticipantKind::Agent => {
            people.insert(p.sid.clone());
        }
        RoomEvent::ParticipantDisconnected { participant, .. }
            if people.remove(&participant.sid) && people.is_empty() =>
        {
            tracing::info!(caller = %crate::telemetry::personal(&participant.identity), "the caller left; ending the call");
            stop.send_replace(Some(EndReason::CallerLeft));
        }
        _ => {}
    }
    to_session.send(event).is_ok()
}

/// Stops the relay with the job, whichever way the job ends (a panic included).
struct Relay(tokio::task::JoinHandle<()>);

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fills_placeholders_with_its_plain_fields_and_its_variables() {
        let json = r#"{"agentId":"clinic-hi","language":"hi-IN","patient":"Asha","visits":3,"vip":true,
            "nested":{"a":1},"bad name":"x","variables":{"patient":"Asha Verma","plan":"gold","list":[1]}}"#;
        let metadata = Metadata::naming_an_agent(json, "test").expect("names an agent");
        let variables = metadata.variables();
        let expected = [("patient", "Asha Verma"), ("plan", "gold"), ("visits", "3"), ("vip", "true")];
        assert_eq!(
            variables,
            expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
            "`variables` win over plain fields; objects, lists and bad names are skipped"
        );
        let long = format!(r#"{{"agentId":"a","variables":{{"note":"{}"}}}}"#, "x".repeat(1_001));
        assert!(Metadata::naming_an_agent(&long, "test").expect("parses").variables().is_empty());
        let odd = Metadata::naming_an_agent(r#"{"agentId":"a","variables":"x"}"#, "test").expect("still names it");
        assert!(odd.variables().is_empty());
    }
}
