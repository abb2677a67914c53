//! Providers that count what they are used for into the call's [`UsageMeter`], and their
//! requests and failures into the worker's metrics: each wraps one provider's client for one
//! model, and implements the same trait.
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
use crate::metrics::ProviderMetrics;

pub(crate) struct MeteredStt {
    pub inner: Arc<dyn SpeechToText>,
    pub counter: Counter,
    pub requests: ProviderMetrics,
}

/// Counts the audio sent, when the utterance finishes or is dropped (streamed audio is billed
/// either way).
struct MeteredUtterance {
    inner: Option<Box<dyn Utterance>>,
    counter: Counter,
    requests: ProviderMetrics,
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
                    requests: self.requests.clone(),
                    samples: 0,
                    failed: false,
                }) as Box<dyn Utterance>),
                Err(error) => {
                    self.counter.add(|tally| tally.failures += 1);
                    self.requests.failure(&error);
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
        let (Some(inner), failed, counter, requests) =
            (self.inner.as_mut(), &mut self.failed, &self.counter, &self.requests)
        else {
            return Box::pin(async { Ok(()) });
        };
        let pushed = inner.push(audio);
        Box::pin(async move {
            let result = pushed.await;
            if let Err(error) = &result
                && !std::mem::replace(failed, true)
            {
                counter.add(|tally| tally.failures += 1);
                requests.failure(error);
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
        let (counter, requests, failed) = (self.counter.clone(), self.requests.clone(), self.failed);
        Box::pin(async move {
            let result = inner.finish().await;
            counter.add(|tally| match &result {
                Ok(_) => tally.requests += 1,
                Err(_) if !failed => tally.failures += 1,
                Err(_) => {}
            });
            match &result {
                Ok(_) => requests.request(),
                Err(error) if !failed => requests.failure(error),
                Err(_) => {}
            }
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
    pub requests: ProviderMetrics,
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
                    self.requests.failure(&error);
                    return Err(error);
                }
            };
            let counter = self.counter.clone();
            let requests = self.requests.clone();
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
                        requests.request();
                    }
                    Err(error) => {
                        counter.add(|tally| tally.failures += 1);
                        requests.failure(error);
                    }
                    Ok(_) => {}
                })
                .boxed())
        })
    }
}

pub(crate) struct MeteredTts {
    pub inner: Arc<dyn TextToSpeech>,
    pub counter: Counter,
    pub requests: ProviderMetrics,
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
            match &result {
                Ok(_) => self.requests.request(),
                Err(error) => self.requests.failure(error),
            }
            result
        })
    }
}
