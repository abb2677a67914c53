//! Running a job of the agent's speech: one model round streamed into sentences, each sentence
//! synthesised and queued on the agent's track while the model writes the next; or fixed words;
//! or the rehearsed apology. A job reports its progress and decides nothing; the conversation
//! core cancels it by dropping its task, which closes the model and synthesis streams at their
//! next await.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::agent::{AgentHooks, TurnContext};
use crate::audio::AudioFrame;
use crate::livekit::room::LocalAudioTrack;
use crate::pipeline::core::{Input, Job, JobEvent, Stage};
use crate::pipeline::sentences::SentenceSplitter;
use crate::pipeline::speakable::speakable;
use crate::providers::ProviderError;
use crate::providers::llm::{ChatDelta, ChatModel, ChatRequest, Role};
use crate::providers::tts::{SpeechRequest, TextToSpeech};

/// Sentences a held answer may write ahead of being released; a model's answer has a handful.
const SENTENCES_AHEAD: usize = 64;

/// What jobs speak with.
#[derive(Clone)]
pub(crate) struct Voice {
    pub llm: Arc<dyn ChatModel>,
    pub tts: Arc<dyn TextToSpeech>,
    /// The call's voice; each sentence replaces its text.
    pub voice: SpeechRequest,
    pub track: Arc<LocalAudioTrack>,
    pub hooks: Arc<dyn AgentHooks>,
}

/// Runs `work`, reporting on `report`; `release` turns true when a held answer may speak.
pub(crate) async fn run(
    voice: Voice,
    job: u64,
    work: Job,
    release: watch::Receiver<bool>,
    apology: Option<(String, Arc<[AudioFrame]>)>,
    report: mpsc::Sender<Input>,
) {
    let reporter = Reporter { job, report };
    match work {
        Job::PlayApology => match apology {
            Some((text, audio)) => play(&voice.track, &text, &audio, &reporter).await,
            None => reporter.send(JobEvent::Failed { stage: Stage::Tts, error: "no rehearsed apology".into() }).await,
        },
        Job::Say(text) => {
            let mut speaker = Speaker::new(&voice, &reporter);
            let mut splitter = SentenceSplitter::default();
            let mut sentences = splitter.push(&text);
            sentences.extend(splitter.finish());
            for sentence in sentences {
                if let Err(error) = speaker.say(&sentence).await {
                    return reporter.failed(Stage::Tts, &error).await;
                }
            }
            reporter.send(JobEvent::Done { text }).await;
        }
        Job::Generate { request, hold, new_turn } => {
            generate(&voice, request, new_turn, hold.then_some(release), &reporter).await
        }
    }
}

struct Reporter {
    job: u64,
    report: mpsc::Sender<Input>,
}

impl Reporter {
    async fn send(&self, event: JobEvent) {
        let _ = self.report.send(Input::Job { job: self.job, event }).await;
    }

    async fn failed(&self, stage: Stage, error: &ProviderError) {
        self.send(JobEvent::Failed { stage, error: error.to_string() }).await;
    }
}

/// Queues recorded speech whole.
async fn play(track: &LocalAudioTrack, text: &str, audio: &[AudioFrame], reporter: &Reporter) {
    let start = track.played() + track.queued();
    let mut duration = Duration::ZERO;
    for frame in audio {
        duration += frame.duration();
        if let Err(e) = track.push(frame) {
            tracing::warn!("cannot queue recorded speech: {e}");
        }
    }
    track.flush();
    reporter.send(JobEvent::FirstAudio { synthesis: Duration::ZERO }).await;
    reporter.send(JobEvent::Sentence { text: text.to_owned(), start, duration }).await;
    reporter.send(JobEvent::Done { text: text.to_owned() }).await;
}

/// Streams one model round into sentences and speaks each as soon as it is complete, while the
/// model goes on writing. A held round asks the model at once but speaks only once `release`
/// turns true.
async fn generate(
    voice: &Voice,
    mut request: ChatRequest,
    new_turn: bool,
    release: Option<watch::Receiver<bool>>,
    reporter: &Reporter,
) {
    let (sentences_tx, mut sentences) = mpsc::channel::<String>(SENTENCES_AHEAD);
    let writing = async move {
        if new_turn {
            let text = request
                .messages
                .iter()
                .rev()
                .find(|message| message.role == Role::User)
                .map(|message| message.content.clone())
                .unwrap_or_default();
            let mut turn = TurnContext { text, messages: std::mem::take(&mut request.messages) };
            voice.hooks.user_turn_completed(&mut turn).await;
            request.messages = turn.messages;
        }
        let mut stream = voice.llm.stream(request).await?;
        let mut splitter = SentenceSplitter::default();
        let mut text = String::new();
        let mut calls = Vec::new();
        let mut first = true;
        while let Some(delta) = stream.next().await {
            match delta? {
                ChatDelta::Text(piece) => {
                    if std::mem::take(&mut first) {
                        reporter.send(JobEvent::FirstToken).await;
                    }
                    text.push_str(&piece);
                    for sentence in splitter.push(&piece) {
                        let _ = sentences_tx.send(sentence).await;
                    }
                }
                ChatDelta::ToolCall(call) => calls.push(call),
                ChatDelta::Done { usage, .. } => {
                    if let Some(usage) = usage {
                        tracing::debug!(prompt = usage.prompt_tokens, completion = usage.completion_tokens, "tokens");
                    }
                }
            }
        }
        if let Some(rest) = splitter.finish() {
            let _ = sentences_tx.send(rest).await;
        }
        if !calls.is_empty() {
            reporter.send(JobEvent::ToolCalls(calls)).await;
        }
        Ok::<_, ProviderError>(text)
    };
    let speaking = async {
        if let Some(mut release) = release {
            let _ = release.wait_for(|released| *released).await;
        }
        let mut speaker = Speaker::new(voice, reporter);
        while let Some(sentence) = sentences.recv().await {
            speaker.say(&sentence).await?;
        }
        Ok::<(), ProviderError>(())
    };
    let (written, spoken) = tokio::join!(writing, speaking);
    match (written, spoken) {
        (Ok(text), Ok(())) => reporter.send(JobEvent::Done { text }).await,
        (Err(error), _) => reporter.failed(Stage::Llm, &error).await,
        (_, Err(error)) => reporter.failed(Stage::Tts, &error).await,
    }
}

/// Synthesises sentences one after the other onto the track.
struct Speaker<'a> {
    voice: &'a Voice,
    reporter: &'a Reporter,
    first_audio: bool,
}

impl<'a> Speaker<'a> {
    fn new(voice: &'a Voice, reporter: &'a Reporter) -> Self {
        Self { voice, reporter, first_audio: true }
    }

    /// Speaks one sentence; markdown, emoji and anything else unspeakable is dropped first, and
    /// a sentence with nothing left to say is skipped.
    async fn say(&mut self, sentence: &str) -> Result<(), ProviderError> {
        let text = speakable(sentence);
        if text.trim().is_empty() {
            return Ok(());
        }
        let asked = Instant::now();
        let mut audio = self.voice.tts.synthesize(self.voice.voice.saying(text.clone())).await?;
        let track = &self.voice.track;
        let mut start = None;
        let mut duration = Duration::ZERO;
        let mut failure = None;
        while let Some(frame) = audio.next().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            if frame.samples.is_empty() {
                continue;
            }
            if start.is_none() {
                start = Some(track.played() + track.queued());
                if std::mem::take(&mut self.first_audio) {
                    self.reporter.send(JobEvent::FirstAudio { synthesis: asked.elapsed() }).await;
                }
            }
            duration += frame.duration();
            if let Err(e) = track.push(&frame) {
                tracing::warn!("cannot queue synthesised speech: {e}");
            }
        }
        track.flush();
        if let Some(error) = failure {
            // The audio queued still plays, but which of the words it covers is unknown: the
            // transcript leaves the sentence out rather than show words that were not said.
            return Err(error);
        }
        if let Some(start) = start {
            self.reporter.send(JobEvent::Sentence { text, start, duration }).await;
        }
        Ok(())
    }
}
