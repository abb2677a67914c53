//! Text-to-speech: the trait the conversation uses, whoever speaks.
//!
//! The pipeline hands over one sentence at a time, so the first sentence can play while the
//! model still writes the next. Streaming providers start playing sooner: their audio arrives
//! in pieces as it is synthesised.

pub(crate) mod pcm;
pub(crate) mod wav;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use super::ProviderError;
use crate::audio::AudioFrame;

/// The rate synthesis is asked for where a provider lets us choose: plenty for speech, and a
/// cheap step up to the room's 48 kHz.
pub const SAMPLE_RATE: u32 = 24_000;

/// What to say, in which language and voice. Everything else about the voice (model, pace,
/// pitch) is the provider's own option, set in the profile.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechRequest {
    /// One sentence, as it should be spoken (already made speakable).
    pub text: String,
    /// The call's language, e.g. `hi-IN`.
    pub language: String,
    /// A voice of the provider (see [`crate::providers::catalog`]).
    pub voice: String,
}

impl SpeechRequest {
    /// The same voice saying other words: a call keeps one voice for every sentence.
    pub fn saying(&self, text: String) -> SpeechRequest {
        SpeechRequest { text, ..self.clone() }
    }
}

/// A text-to-speech provider (or a fallback chain of them).
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
