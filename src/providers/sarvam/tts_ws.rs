//! Sarvam text-to-speech over its streaming WebSocket (providers.md §1d).
//!
//! Each sentence is a config message (voice, language and pace may change between sentences),
//! its text, and a flush; audio then arrives in pieces until the `final` completion event, after
//! which the socket is idle and reusable. Reuse saves a TLS and WebSocket handshake per sentence,
//! which would otherwise sit between the model's text and the caller hearing it.
//!
//! - Idle sockets are kept (the model is a query parameter, fixed per socket) for at most 50 s:
//!   Sarvam closes them after 60 s idle, and a fresh handshake costs less than keeping a ping
//!   task per socket alive. One that was closed anyway is noticed on first use and replaced at
//!   once, without counting as a retry.
//! - When the caller stops listening mid-sentence (a barge-in), the rest of the sentence is read
//!   and dropped in the background so the socket can be reused; otherwise its leftover audio
//!   would start the next sentence.
//! - Audio is asked for as `linear16`, raw little-endian 16-bit PCM at the configured rate, so
//!   pieces need no decoder and pass on as they come. A piece that starts with a RIFF header
//!   is read as a WAV file, in case a server answers `wav` anyway.
//! - The config names the language as `language_code` and the rate as an integer, as Sarvam's
//!   SDK types them (`target_language_code` and a string rate were the old spec's).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{AUTH, PROVIDER, TtsConfig, VoiceSettings, text};
use crate::audio::AudioFrame;
use crate::providers::ProviderError;
use crate::providers::tts::pcm::PcmDecoder;
use crate::providers::tts::{SpeechRequest, TextToSpeech};
use crate::providers::websocket::{self, Socket};

/// How long an idle socket is kept; Sarvam closes it after 60 s without traffic.
const IDLE_LIMIT: Duration = Duration::from_secs(50);
/// Idle sockets kept at most; a call synthesises a sentence or two ahead, no more.
const MAX_IDLE: usize = 2;
/// Characters of text Sarvam buffers before synthesising unprompted; we flush every sentence,
/// so this only matters as a required field.
const MIN_BUFFER_SIZE: u32 = 50;
/// Longest text span synthesised in one go: shorter spans start audio sooner.
const MAX_CHUNK_LENGTH: u32 = 150;

pub(super) struct SarvamStreaming {
    shared: Arc<Shared>,
}

struct Shared {
    config: TtsConfig,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    socket: Socket,
    since: Instant,
}

/// What a sentence's first useful message was.
enum Start {
    Audio(AudioFrame),
    /// The final event came without audio (Sarvam had nothing to say for the text).
    Silent,
}

/// A failed attempt, and whether it failed only because a reused socket had been closed.
struct Failure {
    error: ProviderError,
    stale: bool,
}

/// One server message, as far as synthesis cares.
enum Event {
    Audio(AudioFrame),
    Final,
    Other,
}

impl SarvamStreaming {
    pub(super) fn new(config: TtsConfig) -> Self {
        Self { shared: Arc::new(Shared { config, idle: Mutex::new(Vec::new()) }) }
    }
}

impl TextToSpeech for SarvamStreaming {
    fn synthesize(
        &self,
        request: SpeechRequest,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Result<AudioFrame, ProviderError>>, ProviderError>> {
        Box::pin(async move {
            let texts = text::split(&request.text, text::limit(&self.shared.config.voice.model));
            if texts.is_empty() {
                return Ok(stream::empty().boxed());
            }
            let mut retry = 0;
            loop {
                let mut decoder = PcmDecoder::new(self.shared.config.sample_rate);
                let (mut socket, reused) = match self.shared.take_idle() {
                    Some(socket) => (socket, true),
                    None => match self.shared.connect().await {
                        Ok(socket) => (socket, false),
                        Err(error) => {
                            retry += 1;
                            self.shared.pause(retry, error).await?;
                            continue;
                        }
                    },
                };
                match self.shared.start(&mut socket, &request, &texts, &mut decoder, reused).await {
                    Ok(Start::Silent) => {
                        self.shared.put_idle(socket);
                        return Ok(stream::empty().boxed());
                    }
                    Ok(Start::Audio(first)) => {
                        let (sender, receiver) = mpsc::unbounded_channel();
                        tokio::spawn(self.shared.clone().pump(socket, decoder, sender));
                        let rest =
                            stream::unfold(receiver, |mut r| async move { r.recv().await.map(|item| (item, r)) });
                        return Ok(stream::once(async move { Ok(first) }).chain(rest).boxed());
                    }
                    Err(Failure { error, stale: true }) => {
                        tracing::debug!(%error, "an idle text-to-speech socket was closed; reconnecting");
                    }
                    Err(Failure { error, stale: false }) => {
                        retry += 1;
                        self.shared.pause(retry, error).await?;
                    }
                }
            }
        })
    }
}

impl Shared {
    async fn connect(&self) -> Result<Socket, ProviderError> {
        let query = [("model", self.config.voice.model.as_str()), ("send_completion_event", "true")];
        let url = websocket::url(PROVIDER, &self.config.base_url, "text-to-speech/ws", &query)?;
        websocket::connect(PROVIDER, &url, AUTH, &self.config.api_key, self.config.timeout).await
    }

    /// Waits before retry number `retry`, or gives `error` back when the policy gives up.
    async fn pause(&self, retry: u32, error: ProviderError) -> Result<(), ProviderError> {
        self.config.retry.pause(retry, error, "text-to-speech failed before any audio; retrying").await
    }

    /// Sends one sentence and waits for its first audio.
    async fn start(
        &self,
        socket: &mut Socket,
        request: &SpeechRequest,
        texts: &[String],
        decoder: &mut PcmDecoder,
        reused: bool,
    ) -> Result<Start, Failure> {
        let mut heard = false;
        let fail = |error: ProviderError, heard: bool| {
            let stale = reused && !heard && matches!(error, ProviderError::Network { .. });
            Failure { error, stale }
        };
        let mut messages = vec![config_message(request, &self.config.voice, self.config.sample_rate)];
        // Sarvam joins the texts of a flush as they come; a space keeps pieces' words apart.
        let last = texts.len().saturating_sub(1);
        messages.extend(texts.iter().enumerate().map(|(i, text)| {
            let text = if i < last { format!("{text} ") } else { text.clone() };
            json!({"type": "text", "data": {"text": text}})
        }));
        messages.push(json!({"type": "flush"}));
        for message in &messages {
            websocket::send(PROVIDER, socket, message).await.map_err(|e| fail(e, false))?;
        }
        loop {
            let event = self.next_event(socket, decoder).await.map_err(|e| fail(e, heard))?;
            heard = true;
            match event {
                Event::Audio(frame) => return Ok(Start::Audio(frame)),
                Event::Final => return Ok(Start::Silent),
                Event::Other => {}
            }
        }
    }

    /// Hands the rest of a sentence's audio over until its final event, then keeps the socket
    /// for the next sentence; if the listener has gone, the audio is read and dropped.
    async fn pump(
        self: Arc<Self>,
        mut socket: Socket,
        mut decoder: PcmDecoder,
        listener: mpsc::UnboundedSender<Result<AudioFrame, ProviderError>>,
    ) {
        loop {
            match self.next_event(&mut socket, &mut decoder).await {
                Ok(Event::Audio(frame)) => {
                    let _ = listener.send(Ok(frame));
                }
                Ok(Event::Final) => return self.put_idle(socket),
                Ok(Event::Other) => {}
                Err(error) => {
                    let _ = listener.send(Err(error));
                    return;
                }
            }
        }
    }

    /// The next message, within the timeout; error messages become errors.
    async fn next_event(&self, socket: &mut Socket, decoder: &mut PcmDecoder) -> Result<Event, ProviderError> {
        let timeout = self.config.timeout;
        let message = tokio::time::timeout(timeout, websocket::receive(PROVIDER, socket))
            .await
            .map_err(|_| ProviderError::Timeout { provider: PROVIDER, after: timeout })??;
        let data = &message["data"];
        match message["type"].as_str().unwrap_or_default() {
            "audio" => {
                let audio = data["audio"].as_str().ok_or_else(|| protocol("an audio message without audio"))?;
                let bytes = STANDARD.decode(audio).map_err(|e| protocol(&format!("audio is not base64: {e}")))?;
                Ok(decoder.decode(&bytes).map_err(|e| protocol(&e))?.map_or(Event::Other, Event::Audio))
            }
            "event" if data["event_type"] == "final" => Ok(Event::Final),
            "error" => Err(websocket::error_from(PROVIDER, data, &self.config.api_key)),
            other => {
                tracing::debug!(kind = other, "ignoring a text-to-speech message");
                Ok(Event::Other)
            }
        }
    }

    fn take_idle(&self) -> Option<Socket> {
        let mut idle = self.idle.lock().expect("the idle list is never left half-changed");
        idle.retain(|socket| socket.since.elapsed() < IDLE_LIMIT);
        idle.pop().map(|idle| idle.socket)
    }

    fn put_idle(&self, socket: Socket) {
        let mut idle = self.idle.lock().expect("the idle list is never left half-changed");
        if idle.len() < MAX_IDLE {
            idle.push(Idle { socket, since: Instant::now() });
        }
    }
}

fn config_message(request: &SpeechRequest, voice: &VoiceSettings, sample_rate: u32) -> Value {
    let mut data = json!({
        "language_code": request.language,
        "speaker": request.voice,
        "pace": voice.pace,
        "speech_sample_rate": sample_rate,
        "output_audio_codec": "linear16",
        "min_buffer_size": MIN_BUFFER_SIZE,
        "max_chunk_length": MAX_CHUNK_LENGTH,
    });
    if voice.is_v2() {
        data["pitch"] = json!(voice.pitch);
        data["loudness"] = json!(voice.loudness);
        data["enable_preprocessing"] = json!(true);
    }
    json!({"type": "config", "data": data})
}

fn protocol(message: &str) -> ProviderError {
    ProviderError::Protocol { provider: PROVIDER, message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_asks_for_raw_pcm_at_an_integer_rate_and_v2_fields_only_for_v2() {
        let request = SpeechRequest { text: "hi".into(), language: "en-IN".into(), voice: "shubh".into() };
        let v3 = VoiceSettings { model: "bulbul:v3".into(), pace: 1.25, pitch: 0.1, loudness: 1.0 };
        let message = config_message(&request, &v3, 22_050);
        assert_eq!(message["type"], "config");
        assert_eq!(message["data"]["output_audio_codec"], "linear16");
        assert_eq!(message["data"]["speech_sample_rate"], 22_050, "an integer, as the SDK types it");
        assert_eq!(message["data"]["language_code"], "en-IN");
        assert!(message["data"].get("target_language_code").is_none());
        assert_eq!(message["data"]["pace"], 1.25);
        assert!(message["data"].get("pitch").is_none());
        let v2 = config_message(&request, &VoiceSettings { model: "bulbul:v2".into(), ..v3 }, 22_050);
        assert!(v2["data"]["pitch"].is_number() && v2["data"]["loudness"].is_number());
    }
}
