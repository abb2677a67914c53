//! The voice agent under test: our worker running the real pipeline against the provider mocks,
//! on our dev server, and a caller who talks to it and records what it hears and reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use livekit_api::access_token::{AccessToken, VideoGrants};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;
use voice_agent::audio::{AudioFrame, ROOM_SAMPLE_RATE};
use voice_agent::config::{ProviderSettings, Secret};
use voice_agent::devserver::{DEV_API_KEY, DEV_API_SECRET, DevServer};
use voice_agent::livekit::data::{ATTR_SEGMENT_ID, ATTR_TRANSCRIPTION_FINAL, TOPIC_TRANSCRIPTION, TextStreamEvent};
use voice_agent::livekit::room::{self, ConnectOptions, LocalAudioTrack, ParticipantKind, Room, RoomEvent};
use voice_agent::pipeline::PipelineSession;
use voice_agent::profiles::ProfileStore;
use voice_agent::records::{Outbox, OutboxConfig};
use voice_agent::worker::AgentSession;

use super::livekit::{LOOPBACK, dev_server};
use super::mocks::deepgram::MockDeepgram;
use super::mocks::elevenlabs::MockElevenLabs;
use super::mocks::n8n_leads::MockLeads;
use super::mocks::openai::{Flavour, MockOpenAi};
use super::mocks::sarvam::MockSarvam;
use super::worker::{self, RunningWorker};

pub const SARVAM_KEY: &str = "sarvam-test-key";
pub const GROQ_KEY: &str = "groq-test-key";
pub const OPENAI_KEY: &str = "sk-openai-test-key";
pub const DEEPGRAM_KEY: &str = "deepgram-test-key";
pub const ELEVENLABS_KEY: &str = "elevenlabs-test-key";

/// A dev server, the provider mocks, and our worker with the voice pipeline.
pub struct Stage {
    pub server: DevServer,
    pub sarvam: MockSarvam,
    /// Groq's chat, the default.
    pub llm: MockOpenAi,
    /// OpenAI: chat, transcription and speech.
    pub openai: MockOpenAi,
    pub deepgram: MockDeepgram,
    pub elevenlabs: MockElevenLabs,
    /// n8n's lead-capture webhook, where call records go.
    pub leads: MockLeads,
    pub worker: RunningWorker,
    /// SPOOL_DIR of the worker's outbox.
    pub spool: tempfile::TempDir,
}

/// A call record as n8n received it.
pub struct DeliveredRecord {
    pub body: serde_json::Value,
    pub idempotency_key: Option<String>,
}

impl Stage {
    pub async fn start() -> Self {
        Self::start_with_profiles(worker::profiles()).await
    }

    /// A stage whose worker offers the agents of `profiles` (see [`worker::profiles_in`]).
    pub async fn start_with_profiles(profiles: Arc<ProfileStore>) -> Self {
        Self::start_with_tools(profiles, None, None).await
    }

    /// A stage whose worker registers under `agent_name`, so it only takes explicit dispatches.
    pub async fn start_named(agent_name: &str) -> Self {
        Self::launch(agent_name, worker::profiles(), |providers, outbox| {
            Arc::new(PipelineSession::new(providers, reqwest::Client::new(), outbox))
        })
        .await
    }

    /// A stage whose profiles' tools reach n8n at `n8n` (N8N_BASE_URL), signed with `secret`.
    pub async fn start_with_tools(profiles: Arc<ProfileStore>, n8n: Option<Url>, secret: Option<Secret>) -> Self {
        Self::start_with_session(profiles, move |providers, outbox| {
            Arc::new(PipelineSession::new(providers, reqwest::Client::new(), outbox).with_n8n(n8n, secret))
        })
        .await
    }

    /// A stage whose worker runs the agent `session` makes from the mocks' provider settings and
    /// the stage's outbox (the profile-driven agent, or one written with the public API).
    pub async fn start_with_session(
        profiles: Arc<ProfileStore>,
        session: impl FnOnce(ProviderSettings, Outbox) -> Arc<dyn AgentSession>,
    ) -> Self {
        Self::launch("", profiles, session).await
    }

    async fn launch(
        agent_name: &str,
        profiles: Arc<ProfileStore>,
        session: impl FnOnce(ProviderSettings, Outbox) -> Arc<dyn AgentSession>,
    ) -> Self {
        // `RUST_LOG=voice_agent=debug cargo test ...` shows the worker's logs of a failing test.
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let server = dev_server().await;
        let sarvam = MockSarvam::start(SARVAM_KEY).await;
        let llm = MockOpenAi::start(Flavour::Groq, GROQ_KEY).await;
        let openai = MockOpenAi::start(Flavour::OpenAi, OPENAI_KEY).await;
        let deepgram = MockDeepgram::start(DEEPGRAM_KEY).await;
        let elevenlabs = MockElevenLabs::start(ELEVENLABS_KEY).await;
        let account = |key: &str| Some(Secret::new(key));
        let providers = ProviderSettings::default()
            .with_account("sarvam", account(SARVAM_KEY), sarvam.base_url())
            .with_account("groq", account(GROQ_KEY), llm.base_url())
            .with_account("openai", account(OPENAI_KEY), openai.base_url())
            .with_account("deepgram", account(DEEPGRAM_KEY), deepgram.base_url())
            .with_account("elevenlabs", account(ELEVENLABS_KEY), elevenlabs.base_url());
        let leads = MockLeads::start([]).await;
        let spool = tempfile::tempdir().expect("a spool directory");
        let outbox = OutboxConfig::new(spool.path().to_path_buf(), Some(leads.url()), None);
        let outbox = Outbox::start(outbox).await.expect("the outbox opens");
        let session = session(providers, outbox);
        let worker = worker::start_with_profiles(&server.url(), agent_name, 4, session, profiles);
        worker.registered().await;
        Self { server, sarvam, llm, openai, deepgram, elevenlabs, leads, worker, spool }
    }

    /// The first call record n8n received, waiting up to `limit` for it.
    pub async fn call_record(&self, limit: Duration) -> DeliveredRecord {
        let received = self.leads.until(1, limit).await;
        let first = &received[0];
        DeliveredRecord {
            body: serde_json::from_slice(&first.body).expect("the call record is JSON"),
            idempotency_key: first.header("idempotency-key").map(str::to_owned),
        }
    }

    /// A caller joining `room` with their microphone on, as the page and phones do; `metadata`
    /// is their participant metadata (the agent choice).
    pub async fn call(&self, room: &str, metadata: &str) -> Caller {
        let mut caller = self.call_without_microphone(room, metadata).await;
        caller.open_microphone().await;
        caller
    }

    /// A caller joining `room` who publishes no microphone (yet).
    pub async fn call_without_microphone(&self, room: &str, metadata: &str) -> Caller {
        caller_joining(&self.server.url(), room, metadata).await
    }
}

/// A caller joining `room` on the LiveKit server at `url`, with no microphone yet; `metadata` is
/// their participant metadata (the agent choice).
pub async fn caller_joining(url: &str, room: &str, metadata: &str) -> Caller {
    let grants = VideoGrants { room_join: true, room: room.into(), ..VideoGrants::default() };
    let token = AccessToken::with_api_key(DEV_API_KEY, DEV_API_SECRET)
        .with_identity("caller")
        .with_name("Caller")
        .with_metadata(metadata)
        .with_grants(grants)
        .to_jwt()
        .expect("signs");
    caller_with_token(url, &token).await
}

/// A caller joining with `token` (one the token server issued, say), with no microphone yet.
pub async fn caller_with_token(url: &str, token: &str) -> Caller {
    let options = ConnectOptions { bind_ips: Some(vec![LOOPBACK]), ..ConnectOptions::default() };
    let (room, events) = room::connect(url, token, options).await.expect("the caller joins");
    let heard = Arc::new(Mutex::new(Heard::default()));
    let task = tokio::spawn(record(events, heard.clone()));
    Caller { room, heard, microphone: None, _task: Recorder(task) }
}

/// One transcript segment as the caller's client assembles it.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Whose words: the caller's identity for theirs, the agent's for its own.
    pub speaker: String,
    pub segment_id: String,
    pub text: String,
    pub is_final: bool,
}

impl Heard {
    /// Seconds of agent audio received that are not silence (20 ms frames above −50 dBFS peak).
    pub fn agent_speech_seconds(&self) -> f64 {
        let samples: Vec<i16> = self.audio.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        let frame = ROOM_SAMPLE_RATE as usize / 50;
        let loud = samples.chunks(frame).filter(|f| f.iter().any(|s| s.unsigned_abs() > 100)).count();
        loud as f64 / 50.0
    }
}

/// What the caller received.
#[derive(Default)]
pub struct Heard {
    /// The agent's audio at 48 kHz, with the time each piece arrived.
    pub audio: Vec<(Instant, Vec<i16>)>,
    pub segments: Vec<Segment>,
    /// Every value of the agent's `lk.agent.state`, in order.
    pub states: Vec<String>,
    pub agent_identity: Option<String>,
    /// When the agent left the room, if it did.
    pub agent_left: Option<Instant>,
    /// Why the server disconnected the caller, if it did.
    pub disconnected: Option<String>,
}

pub struct Caller {
    pub room: Room,
    heard: Arc<Mutex<Heard>>,
    microphone: Option<LocalAudioTrack>,
    _task: Recorder,
}

struct Recorder(JoinHandle<()>);

impl Drop for Recorder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Caller {
    pub fn heard<T>(&self, read: impl FnOnce(&Heard) -> T) -> T {
        read(&self.heard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until the agent has spoken its `n`th reply (the greeting counts) and listens again.
    pub async fn listening_after(&self, n: usize, limit: Duration) {
        self.until(&format!("the agent to listen after reply #{n}"), limit, |h| {
            h.states.iter().filter(|s| *s == "speaking").count() >= n
                && h.states.last().is_some_and(|s| s == "listening")
        })
        .await;
    }

    /// Waits until `check` holds for what was received.
    pub async fn until(&self, what: &str, limit: Duration, check: impl Fn(&Heard) -> bool) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.heard(&check) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (segments, states) = self.heard(|h| (h.segments.clone(), h.states.clone()));
        panic!("waited {limit:?} for {what}; transcripts {segments:#?}, agent states {states:?}");
    }

    /// The final transcript segments spoken by the agent (`agent`) or by the caller.
    pub fn finals(&self, agent: bool) -> Vec<String> {
        self.heard(|h| {
            h.segments
                .iter()
                .filter(|s| s.is_final && (s.speaker != "caller") == agent)
                .map(|s| s.text.clone())
                .collect()
        })
    }

    /// Waits for the agent's `n`th final transcript segment (counted from 1) and returns it.
    pub async fn agent_said(&self, n: usize, limit: Duration) -> String {
        self.until(&format!("agent transcript #{n}"), limit, |h| {
            h.segments.iter().filter(|s| s.is_final && s.speaker != "caller").count() >= n
        })
        .await;
        self.finals(true)[n - 1].clone()
    }

    /// Publishes the caller's microphone (silence until something is said).
    pub async fn open_microphone(&mut self) {
        if self.microphone.is_none() {
            let mut track = self.room.publish_audio("microphone").await.expect("the caller publishes a microphone");
            track.ready().await.expect("the microphone is negotiated");
            self.microphone = Some(track);
        }
    }

    /// Speaks `speech` into the caller's microphone (published on first use); returns when it has
    /// been queued, and it plays in real time from then.
    pub async fn say(&mut self, speech: &AudioFrame) {
        self.open_microphone().await;
        let microphone = self.microphone.as_ref().expect("published above");
        microphone.push(speech).expect("speech queues");
        microphone.flush();
    }

    /// Waits until everything said has been sent.
    pub async fn finish_saying(&self) {
        let Some(microphone) = &self.microphone else { return };
        while microphone.queued() > Duration::ZERO {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Seconds of agent audio received that are not silence (20 ms frames above −50 dBFS peak).
    pub fn agent_speech_seconds(&self) -> f64 {
        self.heard(Heard::agent_speech_seconds)
    }

    /// The agent audio received once it stops growing: what the caller heard in all, when the
    /// agent has finished speaking.
    pub async fn settled_speech_seconds(&self, limit: Duration) -> f64 {
        let started = Instant::now();
        let mut last = self.agent_speech_seconds();
        loop {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let now = self.agent_speech_seconds();
            if now == last || started.elapsed() > limit {
                return now;
            }
            last = now;
        }
    }
}

async fn record(mut events: mpsc::UnboundedReceiver<RoomEvent>, heard: Arc<Mutex<Heard>>) {
    let mut open: HashMap<String, (String, HashMap<String, String>)> = HashMap::new();
    let mut listeners = Vec::new();
    while let Some(event) = events.recv().await {
        let mut heard_now = heard.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            RoomEvent::ParticipantConnected(p) if p.kind == ParticipantKind::Agent => {
                heard_now.agent_identity = Some(p.identity.clone());
                if let Some(state) = p.attributes.get("lk.agent.state") {
                    heard_now.states.push(state.clone());
                }
            }
            RoomEvent::AttributesChanged { participant, changed } if participant.kind == ParticipantKind::Agent => {
                if let Some(state) = changed.get("lk.agent.state") {
                    heard_now.states.push(state.clone());
                }
            }
            RoomEvent::ParticipantDisconnected { participant, .. } if participant.kind == ParticipantKind::Agent => {
                heard_now.agent_left = Some(Instant::now());
            }
            RoomEvent::Disconnected { reason } => heard_now.disconnected = Some(reason),
            RoomEvent::TrackSubscribed { mut track } => {
                let heard = heard.clone();
                listeners.push(Recorder(tokio::spawn(async move {
                    while let Some(frame) = track.recv().await {
                        heard
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .audio
                            .push((Instant::now(), frame.samples));
                    }
                })));
            }
            RoomEvent::Text(TextStreamEvent::Opened { stream_id, topic, sender_identity, attributes, .. })
                if topic == TOPIC_TRANSCRIPTION =>
            {
                open.insert(stream_id, (sender_identity, attributes));
            }
            RoomEvent::Text(TextStreamEvent::Closed { stream_id, attributes, full_text, .. }) => {
                if let Some((speaker, _)) = open.remove(&stream_id) {
                    let is_final = attributes.get(ATTR_TRANSCRIPTION_FINAL).is_some_and(|f| f == "true");
                    let segment_id = attributes.get(ATTR_SEGMENT_ID).cloned().unwrap_or_default();
                    // A user segment may come as several streams; the last one holds it all.
                    heard_now.segments.retain(|s| !(s.speaker == speaker && s.segment_id == segment_id));
                    heard_now.segments.push(Segment { speaker, segment_id, text: full_text, is_final });
                }
            }
            _ => {}
        }
    }
}
