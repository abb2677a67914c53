//! Providers that count what they are used for into the call's [`UsageMeter`]: each wraps one
//! provider's client for one model, and implements the same trait.
//!
//! [`UsageMeter`]: super::usage::UsageMeter

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};

use super::ProviderError;
use super::llm::{ChatDelta, ChatModel, ChatRequest};
use super::stt::{Endpoint, SAMPLE_RATE, SpeechToText, Transcript, Utterance};
use super::tts::{SpeechRequest, TextToSpeech};
use super::usage::Counter;
use crate::audio::AudioFrame;

pub(crate) struct MeteredStt {
    pub inner: Arc<dyn SpeechToText>,
    pub counter: Counter,
}

/// Counts the audio sent, when the utterance finishes or is dropped (streamed audio is billed
/// either way).
struct MeteredUtterance {
    inner: Option<Box<dyn Utterance>>,
    counter: Counter,
    samples: usize,
    /// Whether a failure was counted (a failed push fails the whole utterance).
    failed: bool,
}

impl SpeechToText for MeteredStt {
    fn start(&self, language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>> {
        let language = language.to_owned();
        Box::pin(async move {
            match self.inner.start(&language).await {
                Ok(inner) => Ok(Box::new(MeteredUtterance {
                    inner: Some(inner),
                    counter: self.counter.clone(),
                    samples: 0,
                    failed: false,
                }) as Box<dyn Utterance>),
                Err(error) => {
                    self.counter.add(|tally| tally.failures += 1);
                    Err(error)
                }
            }
        })
    }
}

impl MeteredUtterance {
    fn count_audio(&mut self) {
        let seconds = std::mem::take(&mut self.samples) as f64 / f64::from(SAMPLE_RATE);
        self.counter.add(|tally| tally.audio_seconds += seconds);
    }
}

impl Utterance for MeteredUtterance {
    fn push(&mut self, audio: &[i16]) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.samples += audio.len();
        let (Some(inner), failed, counter) = (self.inner.as_mut(), &mut self.failed, &self.counter) else {
            return Box::pin(async { Ok(()) });
        };
        let pushed = inner.push(audio);
        Box::pin(async move {
            let result = pushed.await;
            if result.is_err() && !std::mem::replace(failed, true) {
                counter.add(|tally| tally.failures += 1);
            }
            result
        })
    }

    fn partial(&mut self) -> Option<String> {
        self.inner.as_mut()?.partial()
    }

    fn endpoint(&mut self) -> Option<Endpoint> {
        self.inner.as_mut()?.endpoint()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<Transcript, ProviderError>> {
        let inner = self.inner.take().expect("only finishing takes the utterance, and it consumes the wrapper");
        self.count_audio();
        let (counter, failed) = (self.counter.clone(), self.failed);
        Box::pin(async move {
            let result = inner.finish().await;
            counter.add(|tally| match &result {
                Ok(_) => tally.requests += 1,
                Err(_) if !failed => tally.failures += 1,
                Err(_) => {}
            });
            result
        })
    }
}

impl Drop for MeteredUtterance {
    fn drop(&mut self) {
        self.count_audio();
    }
}

pub(crate) struct MeteredChat {
    pub inner: Arc<dyn ChatModel>,
    pub counter: Counter,
}

impl ChatModel for MeteredChat {
    fn stream(
        &self,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Result<ChatDelta, ProviderError>>, ProviderError>> {
        Box::pin(async move {
            let stream = match self.inner.stream(request).await {
                Ok(stream) => stream,
                Err(error) => {
                    self.counter.add(|tally| tally.failures += 1);
                    return Err(error);
                }
            };
            let counter = self.counter.clone();
            Ok(stream
                .inspect(move |item| match item {
                    Ok(ChatDelta::Done { usage, .. }) => {
                        let (prompt, completion) = usage
                            .as_ref()
                            .map_or((0, 0), |u| (u64::from(u.prompt_tokens), u64::from(u.completion_tokens)));
                        counter.add(|tally| {
                            tally.requests += 1;
                            tally.prompt_tokens += prompt;
                            tally.completion_tokens += completion;
                        });
                    }
                    Err(_) => counter.add(|tally| tally.failures += 1),
                    Ok(_) => {}
                })
                .boxed())
        })
    }
}

pub(crate) struct MeteredTts {
    pub inner: Arc<dyn TextToSpeech>,
    pub counter: Counter,
}

impl TextToSpeech for MeteredTts {
    fn synthesize(
        &self,
        request: SpeechRequest,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Result<AudioFrame, ProviderError>>, ProviderError>> {
        let characters = request.text.trim().chars().count() as u64;
        Box::pin(async move {
            let result = self.inner.synthesize(request).await;
            self.counter.add(|tally| match &result {
                Ok(_) => {
                    tally.requests += 1;
                    tally.characters += characters;
                }
                Err(_) => tally.failures += 1,
            });
            result
        })
    }
}
