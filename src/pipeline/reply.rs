//! One answer of the agent, spoken: the model's words cut into sentences as they stream in, each
//! sentence synthesised and queued on the agent's track while the model writes the next.
//!
//! A reply runs as its own task and reports what it did over a channel; the conversation cancels
//! it on barge-in by aborting the task, which drops the model and synthesis streams (closing
//! their requests) at their next await.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::sentences::SentenceSplitter;
use super::speakable::speakable;
use super::tools::LeadSheet;
use crate::audio::AudioFrame;
use crate::livekit::room::LocalAudioTrack;
use crate::providers::ProviderError;
use crate::providers::llm::{ChatDelta, ChatMessage, ChatModel, ChatRequest, ToolCall, Usage};
use crate::providers::tts::{SpeechRequest, TextToSpeech};

/// A model that calls functions again and again is stuck; its answer ends after this many rounds.
const MAX_TOOL_ROUNDS: usize = 4;

/// What the agent says.
pub enum Script {
    /// The model's answer to this request.
    Answer(ChatRequest),
    /// Fixed words (the greeting), synthesised now.
    Line(String),
    /// Words synthesised earlier (the apology), so they play even when synthesis is down.
    Recorded { text: String, audio: Arc<[AudioFrame]> },
}

/// What a reply reports, in order, to the conversation.
#[derive(Debug)]
pub enum Progress {
    /// The model's first words arrived.
    FirstToken(Instant),
    /// The first sentence's first audio was queued; `synthesis` is how long synthesis took to
    /// start it.
    FirstAudio { synthesis: Duration },
    /// The model called functions and they ran: the exchange for the history (the calls, with
    /// the text spoken meanwhile left to the reply's own message, then the results).
    Tools { messages: Vec<ChatMessage>, end_call: bool },
    /// A sentence's audio is queued whole: it plays from `start` on the track's playout clock.
    Sentence { text: String, start: Duration, duration: Duration },
    /// Everything is queued. `text` is the whole answer as written (what the history keeps when
    /// nobody interrupts).
    Done { text: String, usage: Option<Usage> },
    /// The reply stopped early; what was queued before still plays.
    Failed { stage: Stage, error: ProviderError },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Llm,
    Tts,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Llm => "the language model",
            Stage::Tts => "speech synthesis",
        })
    }
}

/// The providers and track a reply speaks with.
#[derive(Clone)]
pub struct Mouth {
    pub llm: Arc<dyn ChatModel>,
    pub tts: Arc<dyn TextToSpeech>,
    /// The call's voice; each sentence replaces its text.
    pub voice: SpeechRequest,
    pub track: Arc<LocalAudioTrack>,
    /// What the caller told about themselves; the model's `capture_lead` calls fill it.
    pub lead: Arc<Mutex<LeadSheet>>,
}

/// Speaks `script`, reporting to `progress` tagged with `id`; ends when everything is queued or
/// something failed.
pub async fn speak(mouth: Mouth, script: Script, id: u64, progress: mpsc::UnboundedSender<(u64, Progress)>) {
    let report = |event: Progress| {
        let _ = progress.send((id, event));
    };
    match script {
        Script::Recorded { text, audio } => {
            let start = mouth.track.played() + mouth.track.queued();
            let mut duration = Duration::ZERO;
            for frame in audio.iter() {
                duration += frame.duration();
                if let Err(e) = mouth.track.push(frame) {
                    tracing::warn!("cannot queue recorded speech: {e}");
                }
            }
            mouth.track.flush();
            report(Progress::FirstAudio { synthesis: Duration::ZERO });
            report(Progress::Sentence { text: text.clone(), start, duration });
            report(Progress::Done { text, usage: None });
        }
        Script::Line(text) => {
            let mut speaker = Speaker::new(&mouth, &report);
            let mut splitter = SentenceSplitter::default();
            let mut sentences = splitter.push(&text);
            sentences.extend(splitter.finish());
            for sentence in sentences {
                if let Err(error) = speaker.say(&sentence).await {
                    return report(Progress::Failed { stage: Stage::Tts, error });
                }
            }
            report(Progress::Done { text, usage: None });
        }
        Script::Answer(request) => answer(&mouth, request, &report).await,
    }
}

/// Streams the model's answer into sentences and speaks each as soon as it is complete, while
/// the model goes on writing. When the model calls functions, they run and the model is asked
/// again with their results, up to [`MAX_TOOL_ROUNDS`] times.
async fn answer(mouth: &Mouth, mut request: ChatRequest, report: &impl Fn(Progress)) {
    let (sentences_tx, mut sentences) = mpsc::unbounded_channel::<String>();
    let writing = async move {
        let mut text = String::new();
        let mut usage = None;
        let mut first = true;
        for round in 1..=MAX_TOOL_ROUNDS {
            let mut stream = mouth.llm.stream(request.clone()).await?;
            let mut splitter = SentenceSplitter::default();
            let mut calls = Vec::new();
            while let Some(delta) = stream.next().await {
                match delta? {
                    ChatDelta::Text(piece) => {
                        if first {
                            first = false;
                            report(Progress::FirstToken(Instant::now()));
                        }
                        text.push_str(&piece);
                        for sentence in splitter.push(&piece) {
                            let _ = sentences_tx.send(sentence);
                        }
                    }
                    ChatDelta::ToolCall(call) => calls.push(call),
                    ChatDelta::Done { usage: reported, .. } => usage = add(usage, reported),
                }
            }
            if let Some(rest) = splitter.finish() {
                let _ = sentences_tx.send(rest);
            }
            if calls.is_empty() {
                break;
            }
            if round == MAX_TOOL_ROUNDS {
                tracing::warn!("the model kept calling functions; its answer ends here");
                break;
            }
            let (messages, end_call) = run_tools(&mouth.lead, calls);
            request.messages.extend(messages.iter().cloned());
            report(Progress::Tools { messages, end_call });
        }
        Ok((text, usage))
    };
    let speaking = async {
        let mut speaker = Speaker::new(mouth, report);
        while let Some(sentence) = sentences.recv().await {
            speaker.say(&sentence).await?;
        }
        Ok::<(), ProviderError>(())
    };
    let (written, spoken) = tokio::join!(writing, speaking);
    match (written, spoken) {
        (Ok((text, usage)), Ok(())) => report(Progress::Done { text, usage }),
        (Err(error), _) => report(Progress::Failed { stage: Stage::Llm, error }),
        (_, Err(error)) => report(Progress::Failed { stage: Stage::Tts, error }),
    }
}

/// Runs the model's calls: returns the assistant message that made them, then one result per
/// call, and whether one of them ends the call.
fn run_tools(lead: &Mutex<LeadSheet>, calls: Vec<ToolCall>) -> (Vec<ChatMessage>, bool) {
    let mut sheet = lead.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut end_call = false;
    let mut results = Vec::with_capacity(calls.len());
    for call in &calls {
        let outcome = sheet.call(call);
        tracing::info!(tool = %call.name, result = %outcome.result, "the model called a function");
        end_call |= outcome.end_call;
        results.push(ChatMessage::tool(&call.id, outcome.result));
    }
    let mut messages = vec![ChatMessage { tool_calls: calls, ..ChatMessage::assistant("") }];
    messages.extend(results);
    (messages, end_call)
}

fn add(total: Option<Usage>, more: Option<Usage>) -> Option<Usage> {
    match (total, more) {
        (Some(a), Some(b)) => Some(Usage {
            prompt_tokens: a.prompt_tokens + b.prompt_tokens,
            completion_tokens: a.completion_tokens + b.completion_tokens,
            total_tokens: a.total_tokens + b.total_tokens,
        }),
        (a, b) => a.or(b),
    }
}

/// Synthesises sentences one after the other onto the track.
struct Speaker<'a, R> {
    mouth: &'a Mouth,
    report: &'a R,
    first_audio: bool,
}

impl<'a, R: Fn(Progress)> Speaker<'a, R> {
    fn new(mouth: &'a Mouth, report: &'a R) -> Self {
        Self { mouth, report, first_audio: true }
    }

    /// Speaks one sentence; markdown, emoji and anything else unspeakable is dropped first, and
    /// a sentence with nothing left to say is skipped.
    async fn say(&mut self, sentence: &str) -> Result<(), ProviderError> {
        let text = speakable(sentence);
        if text.trim().is_empty() {
            return Ok(());
        }
        let asked = Instant::now();
        let mut audio = self.mouth.tts.synthesize(self.mouth.voice.saying(text.clone())).await?;
        let track = &self.mouth.track;
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
                    (self.report)(Progress::FirstAudio { synthesis: asked.elapsed() });
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
            (self.report)(Progress::Sentence { text, start, duration });
        }
        Ok(())
    }
}
