//! Text-to-speech: Sarvam bulbul over REST or its streaming WebSocket.
//!
//! The pipeline hands over one sentence at a time, so the first sentence can play while the
//! model still writes the next. Of the two transports, the WebSocket starts playing sooner: its
//! audio arrives in pieces as it is synthesised and its connection is reused across sentences,
//! while REST answers with the whole sentence after a fresh request.

pub mod catalog;
mod sarvam_rest;
mod sarvam_ws;
mod text;
pub(crate) mod wav;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use url::Url;

use super::{ProviderError, RetryPolicy};
use crate::audio::AudioFrame;
use crate::config::Secret;

/// What to say and how.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechRequest {
    pub text: String,
    /// Sarvam's language code, e.g. `hi-IN`.
    pub language: String,
    /// A voice of `model` (see [`catalog`]): bulbul:v3 refuses v2 voices and vice versa.
    pub voice: String,
    /// `bulbul:v2` or `bulbul:v3`.
    pub model: String,
    pub pace: f32,
    /// bulbul:v2 only; v3 ignores it, so it is not sent.
    pub pitch: f32,
    /// bulbul:v2 only; v3 ignores it, so it is not sent.
    pub loudness: f32,
}

impl SpeechRequest {
    /// The same voice saying other words: a call keeps one voice for every sentence.
    pub fn saying(&self, text: String) -> SpeechRequest {
        SpeechRequest { text, ..self.clone() }
    }
}

pub trait TextToSpeech: Send + Sync {
    /// Synthesises one sentence; audio comes as one or more chunks (mono i16 at the chunk's rate).
    ///
    /// Failures before any audio are retried and returned here; once audio has been handed over
    /// a failure ends the stream with an error item instead, because repeating the sentence
    /// from its start would make the caller hear words twice.
    fn synthesize(
        &self,
        request: SpeechRequest,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Result<AudioFrame, ProviderError>>, ProviderError>>;
}

#[derive(Debug, Clone)]
pub struct TtsConfig {
    /// `https://api.sarvam.ai` or a proxy or mock; the WebSocket uses the matching `wss`/`ws`.
    pub base_url: Url,
    pub api_key: Secret,
    /// The rate audio is asked for (8000, 16000, 22050 or 24000 for every model and transport).
    pub sample_rate: u32,
    /// Per request over REST; over the WebSocket, for connecting and between two messages.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// Every message and log line names the provider this way.
const PROVIDER: &str = "sarvam";

/// `POST /text-to-speech`, one request per sentence (texts over the model's limit are split at
/// sentence ends and sent as several requests, played in order).
pub fn sarvam_rest(config: TtsConfig, http: reqwest::Client) -> Arc<dyn TextToSpeech> {
    Arc::new(sarvam_rest::SarvamRest::new(config, http))
}

/// The `/text-to-speech/ws` WebSocket: audio streamed as raw PCM while it is synthesised, the
/// connection kept for the next sentence.
pub fn sarvam_streaming(config: TtsConfig) -> Arc<dyn TextToSpeech> {
    Arc::new(sarvam_ws::SarvamStreaming::new(config))
}

/// Whether `model` takes the bulbul:v2-only fields (pitch, loudness, preprocessing switch).
fn is_v2(model: &str) -> bool {
    model.starts_with("bulbul:v2")
}
