//! The worker's metrics: calls, the stages of every turn, providers, load and jobs.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::pipeline::metrics::TurnMetrics;
use crate::providers::ProviderError;
use crate::providers::registry::Kind;
use crate::worker::EndReason;

/// Bounds of the turn histograms, in seconds: from a fast end-of-turn decision (tens of ms) to
/// a model that takes its time (several seconds), dense where voice-to-voice targets lie.
const TURN_BUCKETS: [f64; 14] = [0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];

/// A stage of a turn, as `voice_agent_turn_seconds{stage}` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The caller's last speech to the end of turn being decided.
    EndOfUtterance,
    /// The end of turn to the transcript.
    Stt,
    /// The model request to its first token.
    LlmFirstToken,
    /// The first sentence sent to speech synthesis to its first audio.
    TtsFirstAudio,
    /// The caller's last speech to the first packet of the answer leaving.
    VoiceToVoice,
}

impl Stage {
    /// Every stage, in the order a turn goes through them.
    pub const ALL: [Stage; 5] =
        [Self::EndOfUtterance, Self::Stt, Self::LlmFirstToken, Self::TtsFirstAudio, Self::VoiceToVoice];

    /// The `stage` label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndOfUtterance => "end_of_utterance",
            Self::Stt => "stt",
            Self::LlmFirstToken => "llm_first_token",
            Self::TtsFirstAudio => "tts_first_audio",
            Self::VoiceToVoice => "voice_to_voice",
        }
    }

    fn of(self, turn: &TurnMetrics) -> Option<u64> {
        match self {
            Self::EndOfUtterance => turn.end_of_utterance_ms,
            Self::Stt => turn.stt_ms,
            Self::LlmFirstToken => turn.llm_first_token_ms,
            Self::TtsFirstAudio => turn.tts_first_audio_ms,
            Self::VoiceToVoice => turn.voice_to_voice_ms,
        }
    }
}

/// How a job ended, as `voice_agent_jobs_total{result}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    /// The call ran to its end.
    Completed,
    /// The job failed or panicked (LiveKit was told FAILED).
    Failed,
    /// The worker did not take it: full, draining, or its profile could not be had.
    Declined,
}

impl JobResult {
    /// Every result, for counting each from zero.
    pub const ALL: [JobResult; 3] = [Self::Completed, Self::Failed, Self::Declined];

    /// The `result` label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Declined => "declined",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    end_reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
    service: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    provider: String,
    service: &'static str,
    kind: &'static str,
}

fn turn_histogram() -> Histogram {
    Histogram::new(TURN_BUCKETS)
}

/// The worker's metrics; cheap to clone, every clone counts into the same series.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    calls_active: Gauge,
    calls: Family<EndLabels, Counter>,
    turns: Family<StageLabels, Histogram, fn() -> Histogram>,
    /// `turns`' series, looked up once: a turn records without hashing or locking the family.
    stages: [Histogram; 5],
    interruptions: Counter,
    provider_requests: Family<ProviderLabels, Counter>,
    provider_errors: Family<ErrorLabels, Counter>,
    load: Gauge<f64, AtomicU64>,
    jobs: Family<ResultLabels, Counter>,
}

impl Default for WorkerMetrics {
    /// Every known label set starts at zero, so dashboards show a flat line rather than nothing
    /// before the first call.
    fn default() -> Self {
        let turns: Family<StageLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(turn_histogram as fn() -> Histogram);
        let stages = Stage::ALL.map(|stage| turns.get_or_create_owned(&StageLabels { stage: stage.as_str() }));
        let calls = Family::<EndLabels, Counter>::default();
        for reason in EndReason::ALL {
            let _ = calls.get_or_create(&EndLabels { end_reason: reason.as_str() });
        }
        let jobs = Family::<ResultLabels, Counter>::default();
        for result in JobResult::ALL {
            let _ = jobs.get_or_create(&ResultLabels { result: result.as_str() });
        }
        Self {
            calls_active: Gauge::default(),
            calls,
            turns,
            stages,
            interruptions: Counter::default(),
            provider_requests: Family::default(),
            provider_errors: Family::default(),
            load: Gauge::default(),
            jobs,
        }
    }
}

impl WorkerMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register("calls_active", "Calls running now", self.calls_active.clone());
        registry.register("calls", "Calls ended, by why they ended", self.calls.clone());
        registry.register(
            "turn_seconds",
            "How long each stage of an answered turn took: end_of_utterance (last speech to end of turn), stt (end of turn to transcript), llm_first_token, tts_first_audio, voice_to_voice (last speech to the answer's first packet)",
            self.turns.clone(),
        );
        registry.register(
            "interruptions",
            "Answers to a turn that the caller talked over and cut off",
            self.interruptions.clone(),
        );
        registry.register(
            "provider_requests",
            "Requests to speech and language model providers (a request's retries inside one provider count once), by provider and service (stt, llm, tts)",
            self.provider_requests.clone(),
        );
        registry.register(
            "provider_errors",
            "Provider requests that failed after their retries, by provider, service and kind (timeout, rate_limited, quota, auth, rejected, server, network, protocol)",
            self.provider_errors.clone(),
        );
        registry.register(
            "worker_load",
            "The load the worker reports to LiveKit: the higher of its CPU share and the share of MAX_JOBS in use (0 to 1)",
            self.load.clone(),
        );
        registry.register(
            "jobs",
            "Jobs offered to the worker, by result: completed, failed, declined",
            self.jobs.clone(),
        );
    }

    /// A job was assigned and its call starts.
    pub fn call_started(&self) {
        self.calls_active.inc();
    }

    /// The call of a job assigned with [`Self::call_started`] is over, however it went.
    pub fn call_finished(&self, result: JobResult) {
        self.calls_active.dec();
        self.job(result);
    }

    /// Counts a job that ended without a call ([`JobResult::Declined`]) or a call's job.
    pub fn job(&self, result: JobResult) {
        self.jobs.get_or_create(&ResultLabels { result: result.as_str() }).inc();
    }

    /// Why a conversation ended.
    pub fn call_ended(&self, reason: EndReason) {
        self.calls.get_or_create(&EndLabels { end_reason: reason.as_str() }).inc();
    }

    /// One answered turn: each stage it went through, and whether the caller cut the answer off.
    pub fn turn(&self, turn: &TurnMetrics) {
        for (stage, histogram) in Stage::ALL.iter().zip(&self.stages) {
            if let Some(ms) = stage.of(turn) {
                histogram.observe(ms as f64 / 1000.0);
            }
        }
        if turn.interrupted {
            self.interruptions.inc();
        }
    }

    /// The load last reported to LiveKit.
    pub fn set_load(&self, load: f64) {
        self.load.set(load);
    }

    /// What one provider of a call counts into; `provider` is a registry name (bounded).
    pub fn provider(&self, service: Kind, provider: &str) -> ProviderMetrics {
        let labels = ProviderLabels { provider: provider.to_owned(), service: service.section() };
        let requests = self.provider_requests.get_or_create_owned(&labels);
        ProviderMetrics { requests, errors: self.provider_errors.clone(), labels }
    }
}

/// One provider's requests and errors, resolved once per call so a request counts without a
/// lookup.
#[derive(Debug, Clone)]
pub struct ProviderMetrics {
    requests: Counter,
    errors: Family<ErrorLabels, Counter>,
    labels: ProviderLabels,
}

impl ProviderMetrics {
    /// A request that succeeded.
    pub fn request(&self) {
        self.requests.inc();
    }

    /// A request that failed, after the provider's own retries.
    pub fn failure(&self, error: &ProviderError) {
        self.requests.inc();
        let labels =
            ErrorLabels { provider: self.labels.provider.clone(), service: self.labels.service, kind: error.kind() };
        self.errors.get_or_create(&labels).inc();
    }
}
