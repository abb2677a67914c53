//! The providers a call uses: built from the deployment's keys and endpoints and the agent's
//! profile (models, streaming or not).

use std::sync::Arc;
use std::time::Duration;

use crate::config::{LlmProvider, ProviderSettings, Secret};
use crate::profiles::AgentProfile;
use crate::providers::RetryPolicy;
use crate::providers::llm::{self, ChatModel, LlmConfig};
use crate::providers::stt::{self, SpeechToText, SttConfig};
use crate::providers::tts::{self, TextToSpeech, TtsConfig};

/// Each provider request gets this long before it counts as failed (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The rate we ask speech synthesis for: plenty for speech, and a cheap step up to the room's
/// 48 kHz.
const TTS_SAMPLE_RATE: u32 = 24_000;

pub struct Providers {
    pub stt: Arc<dyn SpeechToText>,
    pub llm: Arc<dyn ChatModel>,
    pub tts: Arc<dyn TextToSpeech>,
}

/// The providers for `profile`, or what is missing to make them.
pub fn for_profile(
    settings: &ProviderSettings,
    profile: &AgentProfile,
    http: &reqwest::Client,
) -> Result<Providers, String> {
    let sarvam = key(&settings.sarvam_api_key, "SARVAM_API_KEY", profile)?;
    let stt_config = SttConfig {
        base_url: settings.sarvam_base_url.clone(),
        api_key: sarvam.clone(),
        model: profile.stt.model.clone(),
        mode: profile.stt.mode.clone(),
        timeout: REQUEST_TIMEOUT,
        retry: RetryPolicy::default(),
    };
    let stt = if profile.stt.streaming {
        stt::sarvam_streaming(stt_config)
    } else {
        stt::sarvam_rest(stt_config, http.clone())
    };
    let tts_config = TtsConfig {
        base_url: settings.sarvam_base_url.clone(),
        api_key: sarvam,
        sample_rate: TTS_SAMPLE_RATE,
        timeout: REQUEST_TIMEOUT,
        retry: RetryPolicy::default(),
    };
    let tts = if profile.tts.streaming {
        tts::sarvam_streaming(tts_config)
    } else {
        tts::sarvam_rest(tts_config, http.clone())
    };
    let (provider, base_url, api_key) = match LlmProvider::parse(&profile.llm.provider) {
        Some(LlmProvider::OpenAi) => {
            ("openai", &settings.openai_base_url, key(&settings.openai_api_key, "OPENAI_API_KEY", profile)?)
        }
        _ => ("groq", &settings.groq_base_url, key(&settings.groq_api_key, "GROQ_API_KEY", profile)?),
    };
    let llm_config = LlmConfig {
        provider,
        base_url: base_url.clone(),
        api_key,
        timeout: REQUEST_TIMEOUT,
        retry: RetryPolicy::default(),
    };
    Ok(Providers { stt, tts, llm: llm::openai_compatible(llm_config, http.clone()) })
}

fn key(value: &Option<Secret>, name: &str, profile: &AgentProfile) -> Result<Secret, String> {
    value.clone().ok_or_else(|| format!("{name} is not set; agent `{}` needs it", profile.id))
}
