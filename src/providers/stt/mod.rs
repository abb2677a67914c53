//! Speech-to-text: Sarvam saaras/saarika over REST or its streaming WebSocket.
//!
//! The pipeline opens an utterance when the caller starts speaking, pushes audio while they
//! speak, and finishes it at the end of their turn; the transcript's latency is what the caller
//! waits for. The streaming WebSocket should be the default: it uploads audio while the caller
//! speaks and opens (or reuses) its connection meanwhile, so at the end of the turn only a flush
//! and the transcript cross the network. REST uploads the whole utterance after the turn ends.

mod sarvam_rest;
mod sarvam_ws;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use url::Url;

use super::{ProviderError, RetryPolicy};
use crate::config::Secret;

/// The rate of the audio utterances take: Sarvam's native rate for both transports.
pub const SAMPLE_RATE: u32 = 16_000;

/// Sarvam transcribes at most about 30 s per REST request; a turn that long is rare, and its
/// end matters most for the reply, so both transports keep only the last 30 s.
const MAX_SAMPLES: usize = 30 * SAMPLE_RATE as usize;

/// Every message and log line names the provider this way.
const PROVIDER: &str = "sarvam";

#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// The language Sarvam heard, when it says.
    pub language: Option<String>,
    /// From the [`Utterance::finish`] call to the transcript: what the caller waited for.
    pub latency: Duration,
}

/// One utterance of the caller, 16 kHz mono i16 PCM.
pub trait Utterance: Send {
    fn push(&mut self, audio: &[i16]) -> BoxFuture<'_, Result<(), ProviderError>>;
    /// Words recognised so far, when the provider tells them while the caller speaks and they
    /// changed since the last call; `None` otherwise. Interruptions are confirmed by them.
    fn partial(&mut self) -> Option<String> {
        None
    }
    /// The utterance ended (end of turn): its transcript.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Transcript, ProviderError>>;
}

pub trait SpeechToText: Send + Sync {
    /// Starts an utterance in `language` (e.g. "hi-IN", or "unknown" to have it detected).
    fn start(&self, language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>>;
}

#[derive(Debug, Clone)]
pub struct SttConfig {
    /// `https://api.sarvam.ai` or a proxy or mock; the WebSocket uses the matching `wss`/`ws`.
    pub base_url: Url,
    pub api_key: Secret,
    /// `saaras:v3` or `saarika:v2.5`.
    pub model: String,
    /// saaras:v3's `transcribe`, `translate`, `verbatim`, `translit` or `codemix`.
    pub mode: String,
    /// For one REST request; for the WebSocket, for connecting and from the end of the turn to
    /// the transcript.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// Buffers the whole utterance and uploads it as a WAV file when it finishes.
pub fn sarvam_rest(config: SttConfig, http: reqwest::Client) -> Arc<dyn SpeechToText> {
    Arc::new(sarvam_rest::SarvamRest::new(config, http))
}

/// Streams audio over `/speech-to-text/ws` while the caller speaks; see `sarvam_ws` for how
/// connections are reused and failures recovered.
pub fn sarvam_streaming(config: SttConfig) -> Arc<dyn SpeechToText> {
    Arc::new(sarvam_ws::SarvamStreaming::new(config))
}

impl SttConfig {
    /// Only saaras models take a mode; saarika refuses the field.
    fn mode(&self) -> Option<&str> {
        (!self.model.starts_with("saarika")).then_some(self.mode.as_str())
    }
}

/// The last [`MAX_SAMPLES`] of an utterance, trimmed in batches so pushing stays cheap.
#[derive(Default)]
struct Tail {
    samples: Vec<i16>,
    /// Samples trimmed from the front so far, so positions stay comparable across trims.
    trimmed: usize,
}

impl Tail {
    fn push(&mut self, audio: &[i16]) {
        self.samples.extend_from_slice(audio);
        if self.samples.len() > 2 * MAX_SAMPLES {
            let cut = self.samples.len() - MAX_SAMPLES;
            self.samples.drain(..cut);
            self.trimmed += cut;
        }
    }

    /// Position just past the last sample, counted from the utterance's start.
    fn end(&self) -> usize {
        self.trimmed + self.samples.len()
    }

    /// Position of the first sample worth sending (the last 30 s).
    fn start(&self) -> usize {
        self.end().saturating_sub(MAX_SAMPLES).max(self.trimmed)
    }

    /// Samples from position `from` (clamped to what is kept) to the end.
    fn since(&self, from: usize) -> &[i16] {
        let from = from.max(self.start()) - self.trimmed;
        &self.samples[from.min(self.samples.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_thirty_seconds() {
        let mut tail = Tail::default();
        let second: Vec<i16> = vec![1; SAMPLE_RATE as usize];
        for _ in 0..75 {
            tail.push(&second);
        }
        tail.push(&[9]);
        assert_eq!(tail.end(), 75 * SAMPLE_RATE as usize + 1);
        assert_eq!(tail.since(0).len(), MAX_SAMPLES);
        assert_eq!(tail.since(0).last(), Some(&9));
        assert_eq!(tail.since(tail.end() - 1), &[9]);
        assert!(tail.since(tail.end()).is_empty());
        assert!(tail.samples.len() <= 2 * MAX_SAMPLES);
    }

    #[test]
    fn only_saaras_takes_a_mode() {
        let config = |model: &str| SttConfig {
            base_url: Url::parse("https://api.sarvam.ai").expect("valid"),
            api_key: Secret::new("k"),
            model: model.into(),
            mode: "transcribe".into(),
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        };
        assert_eq!(config("saaras:v3").mode(), Some("transcribe"));
        assert_eq!(config("saarika:v2.5").mode(), None);
    }
}
