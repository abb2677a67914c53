//! ElevenLabs' input-streaming WebSocket, one stream per sentence.
//!
//! A stream is opened with the voice in its path and the model, `pcm_24000` output and
//! language in its query, and initialised with a single-space text and the voice settings. A
//! sentence is sent with `flush: true` (generate now, whatever the buffer holds) and the stream
//! ended with an empty text; audio arrives as base64 raw PCM until `isFinal`, after which
//! ElevenLabs closes the stream. The stream for the next sentence is opened and initialised
//! while this one plays, so the handshake is not waited for; an unused one is dropped well
//! before ElevenLabs' inactivity timeout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{AUTH, PROVIDER, StreamOptions, language_code};
use crate::audio::AudioFrame;
use crate::providers::ProviderError;
use crate::providers::registry::Access;
use crate::providers::tts::pcm::PcmDecoder;
use crate::providers::tts::{SpeechRequest, TextToSpeech};
use crate::providers::websocket::{self, Socket};

/// The output format asked for: raw 16-bit mono PCM at 24 kHz.
const OUTPUT_FORMAT: &str = "pcm_24000";
const RATE: u32 = 24_000;
/// How long ElevenLabs keeps a stream without text (seconds); the default is 20.
const INACTIVITY_TIMEOUT_SECS: u64 = 60;
/// How long a spare stream is kept unused: well inside the inactivity timeout.
const SPARE_LIMIT: Duration = Duration::from_secs(50);

pub(super) struct StreamingVoice {
    shared: Arc<Shared>,
    /// Opening the next sentence's stream.
    warming: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    access: Access,
    options: StreamOptions,
    spare: Mutex<Option<Spare>>,
}

/// An opened and initialised stream waiting for a sentence.
struct Spare {
    voice: String,
    language: String,
    socket: Socket,
    since: Instant,
}

/// One server message, as far as synthesis cares.
enum Event {
    Audio(Option<AudioFrame>),
    Final,
}

type Item = Result<AudioFrame, ProviderError>;

impl StreamingVoice {
    pub(super) fn new(access: Access, options: StreamOptions) -> Self {
        Self { shared: Arc::new(Shared { access, options, spare: Mutex::new(None) }), warming: Mutex::new(None) }
    }

    /// Opens the next sentence's stream in the background, unless one is being opened.
    fn warm(&self, voice: &str, language: &str) {
        let mut warming = self.warming.lock().expect("the warming handle is never left half-changed");
        if warming.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let (shared, voice, language) = (self.shared.clone(), voice.to_owned(), language.to_owned());
        *warming = Some(tokio::spawn(async move {
            match shared.open(&voice, &language).await {
                Ok(socket) => {
                    let spare = Spare { voice, language, socket, since: Instant::now() };
                    *shared.spare.lock().expect("the spare is never left half-changed") = Some(spare);
                }
                Err(error) => tracing::debug!(%error, "could not open the next text-to-speech stream ahead"),
            }
        }));
    }
}

impl Drop for StreamingVoice {
    fn drop(&mut self) {
        if let Some(task) = self.warming.lock().ok().and_then(|mut warming| warming.take()) {
            task.abort();
        }
    }
}

impl TextToSpeech for StreamingVoice {
    fn synthesize(&self, request: SpeechRequest) -> BoxFuture<'_, Result<BoxStream<'static, Item>, ProviderError>> {
        Box::pin(async move {
            let text = request.text.trim();
            if text.is_empty() {
                return Ok(stream::empty().boxed());
            }
            let mut retry = 0;
            loop {
                let (mut socket, spare) = match self.shared.take_spare(&request.voice, &request.language) {
                    Some(socket) => (socket, true),
                    None => match self.shared.open(&request.voice, &request.language).await {
                        Ok(socket) => (socket, false),
                        Err(error) => {
                            retry += 1;
                            self.shared.pause(retry, error).await?;
                            continue;
                        }
                    },
                };
                let mut decoder = PcmDecoder::new(RATE);
                match self.shared.start(&mut socket, text, &mut decoder).await {
                    Ok(None) => return Ok(stream::empty().boxed()),
                    Ok(Some(first)) => {
                        self.warm(&request.voice, &request.language);
                        let (sender, receiver) = mpsc::unbounded_channel();
                        tokio::spawn(self.shared.clone().pump(socket, decoder, sender));
                        let rest =
                            stream::unfold(receiver, |mut r| async move { r.recv().await.map(|item| (item, r)) });
                        return Ok(stream::once(async move { Ok(first) }).chain(rest).boxed());
                    }
                    // A spare ElevenLabs closed meanwhile costs no retry.
                    Err(error) if spare && matches!(error, ProviderError::Network { .. }) => {
                        tracing::debug!(%error, "a spare text-to-speech stream was closed; opening another");
                    }
                    Err(error) => {
                        retry += 1;
                        self.shared.pause(retry, error).await?;
                    }
                }
            }
        })
    }
}

impl Shared {
    /// Opens a stream for `voice` and `language` and initialises it.
    async fn open(&self, voice: &str, language: &str) -> Result<Socket, ProviderError> {
        let access = &self.access;
        let inactivity = INACTIVITY_TIMEOUT_SECS.to_string();
        let mut query = vec![
            ("model_id", self.options.model.as_str()),
            ("output_format", OUTPUT_FORMAT),
            ("inactivity_timeout", inactivity.as_str()),
        ];
        // The v2.5 models can be held to a language; multilingual v2 detects it.
        if self.options.model.ends_with("v2_5") {
            query.extend(language_code(language).map(|code| ("language_code", code)));
        }
        let path = format!("v1/text-to-speech/{voice}/stream-input");
        let url = websocket::url(PROVIDER, &access.base_url, &path, &query)?;
        let mut socket = websocket::connect(PROVIDER, &url, AUTH, &access.key, access.timeout).await?;
        let options = &self.options;
        let initialise = json!({
            "text": " ",
            "voice_settings": {
                "stability": options.stability,
                "similarity_boost": options.similarity_boost,
                "speed": options.speed,
            },
        });
        websocket::send(PROVIDER, &mut socket, &initialise).await?;
        Ok(socket)
    }

    fn take_spare(&self, voice: &str, language: &str) -> Option<Socket> {
        let mut spare = self.spare.lock().expect("the spare is never left half-changed");
        let fits = spare.as_ref().is_some_and(|s| s.voice == voice && s.language == language);
        let fresh = spare.as_ref().is_some_and(|s| s.since.elapsed() < SPARE_LIMIT);
        let taken = spare.take()?;
        (fits && fresh).then_some(taken.socket)
    }

    /// Waits before retry number `retry`, or gives `error` back when the policy gives up.
    async fn pause(&self, retry: u32, error: ProviderError) -> Result<(), ProviderError> {
        self.access.retry.pause(retry, error, "text-to-speech failed before any audio; retrying").await
    }

    /// Sends the sentence and ends the stream's input; the first audio, or `None` when the
    /// stream finished without any.
    async fn start(
        &self,
        socket: &mut Socket,
        text: &str,
        decoder: &mut PcmDecoder,
    ) -> Result<Option<AudioFrame>, ProviderError> {
        // Each chunk should end with a space, as the SDK's chunker makes them.
        websocket::send(PROVIDER, socket, &json!({"text": format!("{text} "), "flush": true})).await?;
        websocket::send(PROVIDER, socket, &json!({"text": ""})).await?;
        loop {
            match self.next_event(socket, decoder).await? {
                Event::Audio(Some(frame)) => return Ok(Some(frame)),
                Event::Audio(None) => {}
                Event::Final => return Ok(None),
            }
        }
    }

    /// Hands the rest of the sentence's audio over until `isFinal`; stops reading (dropping
    /// the stream) when the listener has gone.
    async fn pump(self: Arc<Self>, mut socket: Socket, mut decoder: PcmDecoder, listener: mpsc::UnboundedSender<Item>) {
        loop {
            let item = match self.next_event(&mut socket, &mut decoder).await {
                Ok(Event::Audio(Some(frame))) => Ok(frame),
                Ok(Event::Audio(None)) => continue,
                Ok(Event::Final) => return,
                Err(error) => Err(error),
            };
            let failed = item.is_err();
            if listener.send(item).is_err() || failed {
                return;
            }
        }
    }

    async fn next_event(&self, socket: &mut Socket, decoder: &mut PcmDecoder) -> Result<Event, ProviderError> {
        let timeout = self.access.timeout;
        let message = tokio::time::timeout(timeout, websocket::receive(PROVIDER, socket))
            .await
            .map_err(|_| ProviderError::Timeout { provider: PROVIDER, after: timeout })??;
        if let Some(audio) = message.get("audio").and_then(Value::as_str) {
            let bytes = STANDARD.decode(audio).map_err(|e| protocol(format!("audio is not base64: {e}")))?;
            return decoder.decode(&bytes).map(Event::Audio).map_err(protocol);
        }
        if message.get("isFinal").and_then(Value::as_bool) == Some(true) {
            return Ok(Event::Final);
        }
        if message.get("message").is_some() || message.get("error").is_some() {
            return Err(error_of(&message, &self.access));
        }
        Ok(Event::Audio(None))
    }
}

/// An error message (`{"message","error","code"}`), classified like the REST API's answers.
fn error_of(message: &Value, access: &Access) -> ProviderError {
    let status = message["error"].as_str().unwrap_or_default();
    let text = message["message"].as_str().or_else(|| message["error"].as_str()).unwrap_or("no details given");
    let http = match status {
        s if s.contains("quota") || s.contains("auth") || s.contains("api_key") => 401,
        s if s.contains("too_many") || s.contains("rate") || s.contains("busy") => 429,
        s if s.contains("internal") || s.contains("unavailable") => 500,
        _ => 400,
    };
    let body = json!({"detail": {"status": status, "message": text}}).to_string();
    ProviderError::from_status(PROVIDER, http, None, &body, &access.key)
}

fn protocol(message: String) -> ProviderError {
    ProviderError::Protocol { provider: PROVIDER, message }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;
    use crate::config::Secret;
    use crate::providers::RetryPolicy;

    #[test]
    fn stream_errors_are_classified() {
        let access = Access {
            key: Secret::new("k"),
            base_url: Url::parse("https://api.elevenlabs.io").expect("valid"),
            http: reqwest::Client::new(),
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        };
        let quota = json!({"message": "You have run out of credits", "error": "quota_exceeded", "code": 1008});
        assert!(matches!(error_of(&quota, &access), ProviderError::QuotaExhausted { .. }));
        let busy = json!({"message": "Too many concurrent requests", "error": "too_many_concurrent_requests"});
        assert!(error_of(&busy, &access).retryable());
        let bad = json!({"message": "Invalid model", "error": "invalid_request"});
        assert!(matches!(error_of(&bad, &access), ProviderError::Rejected { .. }));
    }
}
