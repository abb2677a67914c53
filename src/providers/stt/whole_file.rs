//! Speech-to-text by REST providers that take a whole utterance at once (Sarvam's REST, OpenAI's
//! transcriptions): the audio is buffered while the caller speaks and uploaded as one WAV file
//! when the turn ends.

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;

use super::{SAMPLE_RATE, SpeechToText, Tail, Transcript, Utterance};
use crate::providers::ProviderError;
use crate::providers::tts::wav;

/// What a provider heard in one uploaded file.
pub(crate) struct Heard {
    pub(crate) text: String,
    /// The language the provider detected, when it says.
    pub(crate) language: Option<String>,
}

/// A provider's upload of one utterance.
pub(crate) trait FileTranscriber: Send + Sync + 'static {
    /// Transcribes `file` (16 kHz mono WAV) spoken in `language`.
    fn transcribe<'a>(&'a self, language: &'a str, file: &'a [u8]) -> BoxFuture<'a, Result<Heard, ProviderError>>;
}

/// A [`SpeechToText`] uploading each utterance whole to `C`.
pub(crate) struct WholeFile<C>(Arc<C>);

impl<C: FileTranscriber> WholeFile<C> {
    pub(crate) fn new(client: C) -> Self {
        Self(Arc::new(client))
    }
}

struct Buffered<C> {
    client: Arc<C>,
    language: String,
    audio: Tail,
}

impl<C: FileTranscriber> SpeechToText for WholeFile<C> {
    fn start(&self, language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>> {
        let utterance = Buffered { client: self.0.clone(), language: language.to_owned(), audio: Tail::default() };
        Box::pin(async move { Ok(Box::new(utterance) as Box<dyn Utterance>) })
    }
}

impl<C: FileTranscriber> Utterance for Buffered<C> {
    fn push(&mut self, audio: &[i16]) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.audio.push(audio);
        Box::pin(async { Ok(()) })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Transcript, ProviderError>> {
        let started = Instant::now();
        Box::pin(async move {
            let samples = self.audio.since(0);
            if samples.is_empty() {
                return Ok(Transcript { text: String::new(), language: None, latency: started.elapsed() });
            }
            let file = wav::encode(samples, SAMPLE_RATE);
            let heard = self.client.transcribe(&self.language, &file).await?;
            Ok(Transcript { text: heard.text, language: heard.language, latency: started.elapsed() })
        })
    }
}
