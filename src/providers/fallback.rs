//! Fallback chains: several providers of one kind serving as one, as LiveKit's
//! `FallbackAdapter` does.
//!
//! Requests go to the first available provider. When one fails after its own retries, the next
//! serves the same request (an utterance's audio is sent again, a sentence synthesised again,
//! a model round asked again), so the caller notices a delay at most; the failed provider is
//! marked unavailable and skipped, and a probe sends it the failed request again in the
//! background, with a growing pause, until it answers and is used again. When every provider
//! fails, the last error is the request's, and the conversation says its apology.
//!
//! A failure after part of an answer has been handed over (audio queued, words spoken) cannot
//! be redone without the caller hearing things twice: it ends that answer, and the provider is
//! marked unavailable for the next.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use tokio::task::JoinSet;

use super::ProviderError;
use super::llm::{ChatDelta, ChatModel, ChatRequest};
use super::stt::{Endpoint, SpeechToText, Tail, Transcript, Utterance};
use super::tts::{SpeechRequest, TextToSpeech};
use crate::audio::AudioFrame;

/// How failed providers are probed.
#[derive(Debug, Clone, Copy)]
pub struct ProbePolicy {
    /// The pause before the first probe, doubled after each failed one.
    pub first: Duration,
    /// The longest pause between probes.
    pub max: Duration,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        Self { first: Duration::from_secs(5), max: Duration::from_secs(60) }
    }
}

/// Whether a member may be asked first, and whether a probe is on it.
#[derive(Default)]
struct Health {
    unavailable: AtomicBool,
    probing: AtomicBool,
}

/// One provider of a chain, with what it speaks with (a chat model's name, a voice).
pub(crate) struct Member<T: ?Sized, B> {
    /// For logs: `deepgram (nova-3)`.
    pub name: String,
    pub inner: Arc<T>,
    pub binding: B,
    health: Arc<Health>,
}

impl<T: ?Sized, B> Member<T, B> {
    pub(crate) fn new(name: String, inner: Arc<T>, binding: B) -> Self {
        Self { name, inner, binding, health: Arc::default() }
    }
}

type Attempt = Box<dyn Fn() -> BoxFuture<'static, Result<(), ProviderError>> + Send + Sync>;

/// What every chain has: its members, in the profile's order, and the probes it runs.
struct Chain<T: ?Sized, B> {
    members: Vec<Member<T, B>>,
    policy: ProbePolicy,
    /// Aborted with the chain, when the call's providers are dropped.
    probes: Mutex<JoinSet<()>>,
}

impl<T: ?Sized, B> Chain<T, B> {
    fn new(members: Vec<Member<T, B>>, policy: ProbePolicy) -> Self {
        Self { members, policy, probes: Mutex::new(JoinSet::new()) }
    }

    /// Member indexes to try: available ones first, then the others (a request is never given
    /// up while some provider has not been asked).
    fn order(&self) -> Vec<usize> {
        let available = |i: &usize| !self.members[*i].health.unavailable.load(Ordering::SeqCst);
        let (mut first, rest): (Vec<usize>, Vec<usize>) = (0..self.members.len()).partition(available);
        first.extend(rest);
        first
    }

    fn succeeded(&self, index: usize) {
        self.members[index].health.unavailable.store(false, Ordering::SeqCst);
    }

    /// Marks a member unavailable and probes it with `attempt` until it answers.
    fn failed(&self, index: usize, error: &ProviderError, attempt: Attempt) {
        let member = &self.members[index];
        let next = self.order().into_iter().find(|i| *i != index).map(|i| self.members[i].name.as_str());
        match next {
            Some(next) => tracing::warn!(%error, "{} failed; {next} takes over", member.name),
            None => tracing::warn!(%error, "{} failed", member.name),
        }
        member.health.unavailable.store(true, Ordering::SeqCst);
        if self.members.len() < 2 || member.health.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let (name, health, policy) = (member.name.clone(), member.health.clone(), self.policy);
        let mut probes = self.probes.lock().expect("the probe set is never left half-changed");
        probes.spawn(async move {
            let mut pause = policy.first;
            loop {
                tokio::time::sleep(pause).await;
                match attempt().await {
                    Ok(()) => {
                        tracing::info!("{name} answers again; it serves before the providers after it");
                        health.unavailable.store(false, Ordering::SeqCst);
                        health.probing.store(false, Ordering::SeqCst);
                        return;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "{name} still fails");
                        pause = (pause * 2).min(policy.max);
                    }
                }
            }
        });
    }
}

/// Speech-to-text providers serving as one.
pub(crate) struct FallbackStt(Arc<Chain<dyn SpeechToText, ()>>);

impl FallbackStt {
    pub(crate) fn new(members: Vec<Member<dyn SpeechToText, ()>>, policy: ProbePolicy) -> Self {
        Self(Arc::new(Chain::new(members, policy)))
    }
}

impl SpeechToText for FallbackStt {
    fn start(&self, language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>> {
        let mut utterance = FallbackUtterance {
            chain: self.0.clone(),
            language: language.to_owned(),
            audio: Tail::default(),
            current: None,
            tried: Vec::new(),
            last_error: None,
        };
        Box::pin(async move {
            utterance.ensure().await?;
            Ok(Box::new(utterance) as Box<dyn Utterance>)
        })
    }
}

struct FallbackUtterance {
    chain: Arc<Chain<dyn SpeechToText, ()>>,
    language: String,
    /// Everything pushed, to send again to the next provider.
    audio: Tail,
    current: Option<(usize, Box<dyn Utterance>)>,
    tried: Vec<usize>,
    last_error: Option<ProviderError>,
}

impl FallbackUtterance {
    /// An utterance on the next provider not yet tried, with the audio so far sent to it.
    async fn ensure(&mut self) -> Result<(), ProviderError> {
        while self.current.is_none() {
            let Some(index) = self.chain.order().into_iter().find(|i| !self.tried.contains(i)) else {
                return Err(self.last_error.clone().unwrap_or_else(|| ProviderError::Protocol {
                    provider: "stt",
                    message: "no speech-to-text provider".into(),
                }));
            };
            self.tried.push(index);
            let member = &self.chain.members[index];
            let started = match member.inner.start(&self.language).await {
                Ok(mut utterance) => {
                    let sent = utterance.push(self.audio.since(0)).await;
                    sent.map(|()| utterance)
                }
                Err(error) => Err(error),
            };
            match started {
                Ok(utterance) => self.current = Some((index, utterance)),
                Err(error) => self.fail(index, error),
            }
        }
        Ok(())
    }

    fn fail(&mut self, index: usize, error: ProviderError) {
        let (inner, language, audio) =
            (self.chain.members[index].inner.clone(), self.language.clone(), self.audio.since(0).to_vec());
        let attempt: Attempt = Box::new(move || {
            let (inner, language, audio) = (inner.clone(), language.clone(), audio.clone());
            Box::pin(async move {
                let mut utterance = inner.start(&language).await?;
                utterance.push(&audio).await?;
                utterance.finish().await.map(|_| ())
            })
        });
        self.chain.failed(index, &error, attempt);
        self.last_error = Some(error);
    }
}

impl Utterance for FallbackUtterance {
    fn push(&mut self, audio: &[i16]) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.audio.push(audio);
        let audio = audio.to_vec();
        Box::pin(async move {
            if let Some((index, utterance)) = self.current.as_mut() {
                let index = *index;
                if let Err(error) = utterance.push(&audio).await {
                    self.current = None;
                    self.fail(index, error);
                }
            }
            self.ensure().await
        })
    }

    fn partial(&mut self) -> Option<String> {
        self.current.as_mut()?.1.partial()
    }

    fn endpoint(&mut self) -> Option<Endpoint> {
        self.current.as_mut()?.1.endpoint()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<Transcript, ProviderError>> {
        Box::pin(async move {
            loop {
                self.ensure().await?;
                let (index, utterance) = self.current.take().expect("ensure leaves an utterance or fails");
                match utterance.finish().await {
                    Ok(transcript) => {
                        self.chain.succeeded(index);
                        return Ok(transcript);
                    }
                    Err(error) => self.fail(index, error),
                }
            }
        })
    }
}

/// Chat models serving as one; each asks for its own model, but the first serves the model a
/// request names (the profile's cheaper analysis model is one of the first provider's).
pub(crate) struct FallbackChat(Arc<Chain<dyn ChatModel, String>>);

impl FallbackChat {
    pub(crate) fn new(members: Vec<Member<dyn ChatModel, String>>, policy: ProbePolicy) -> Self {
        Self(Arc::new(Chain::new(members, policy)))
    }
}

type ChatStream = BoxStream<'static, Result<ChatDelta, ProviderError>>;

impl ChatModel for FallbackChat {
    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream, ProviderError>> {
        Box::pin(async move {
            let chain = &self.0;
            let mut last = None;
            for index in chain.order() {
                let member = &chain.members[index];
                let model = match index {
                    0 if !request.model.is_empty() => request.model.clone(),
                    _ => member.binding.clone(),
                };
                let request = ChatRequest { model, ..request.clone() };
                match member.inner.stream(request.clone()).await {
                    Ok(stream) => {
                        chain.succeeded(index);
                        return Ok(watch_chat(chain.clone(), index, request, stream));
                    }
                    Err(error) => {
                        chain.failed(index, &error, chat_probe(member.inner.clone(), request));
                        last = Some(error);
                    }
                }
            }
            Err(last.unwrap_or_else(|| ProviderError::Protocol { provider: "llm", message: "no chat provider".into() }))
        })
    }
}

/// Passes an answer on, marking its provider unavailable if it breaks off.
fn watch_chat(
    chain: Arc<Chain<dyn ChatModel, String>>,
    index: usize,
    request: ChatRequest,
    stream: ChatStream,
) -> ChatStream {
    let inner = chain.members[index].inner.clone();
    stream
        .inspect(move |item| {
            if let Err(error) = item {
                chain.failed(index, error, chat_probe(inner.clone(), request.clone()));
            }
        })
        .boxed()
}

fn chat_probe(inner: Arc<dyn ChatModel>, request: ChatRequest) -> Attempt {
    Box::new(move || {
        let (inner, request) = (inner.clone(), request.clone());
        Box::pin(async move {
            let mut stream = inner.stream(request).await?;
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok(())
        })
    })
}

/// Voices serving as one: the first speaks the call's voice, the others their own.
pub(crate) struct FallbackTts(Arc<Chain<dyn TextToSpeech, Option<String>>>);

impl FallbackTts {
    pub(crate) fn new(members: Vec<Member<dyn TextToSpeech, Option<String>>>, policy: ProbePolicy) -> Self {
        Self(Arc::new(Chain::new(members, policy)))
    }
}

type AudioStream = BoxStream<'static, Result<AudioFrame, ProviderError>>;

impl TextToSpeech for FallbackTts {
    fn synthesize(&self, request: SpeechRequest) -> BoxFuture<'_, Result<AudioStream, ProviderError>> {
        Box::pin(async move {
            let chain = &self.0;
            let mut last = None;
            for index in chain.order() {
                let member = &chain.members[index];
                let voice = member.binding.clone().unwrap_or_else(|| request.voice.clone());
                let request = SpeechRequest { voice, ..request.clone() };
                match member.inner.synthesize(request.clone()).await {
                    Ok(stream) => {
                        chain.succeeded(index);
                        return Ok(watch_audio(chain.clone(), index, request, stream));
                    }
                    Err(error) => {
                        chain.failed(index, &error, speech_probe(member.inner.clone(), request));
                        last = Some(error);
                    }
                }
            }
            Err(last
                .unwrap_or_else(|| ProviderError::Protocol { provider: "tts", message: "no speech provider".into() }))
        })
    }
}

fn watch_audio(
    chain: Arc<Chain<dyn TextToSpeech, Option<String>>>,
    index: usize,
    request: SpeechRequest,
    stream: AudioStream,
) -> AudioStream {
    let inner = chain.members[index].inner.clone();
    stream
        .inspect(move |item| {
            if let Err(error) = item {
                chain.failed(index, error, speech_probe(inner.clone(), request.clone()));
            }
        })
        .boxed()
}

fn speech_probe(inner: Arc<dyn TextToSpeech>, request: SpeechRequest) -> Attempt {
    Box::new(move || {
        let (inner, request) = (inner.clone(), request.clone());
        Box::pin(async move {
            let mut stream = inner.synthesize(request).await?;
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests;
