//! Sarvam speech-to-text over its streaming WebSocket (providers.md §1b).
//!
//! Each utterance runs as a task that owns a socket: [`SpeechToText::start`] returns at once
//! and the task connects (or takes an idle socket) while the caller is already speaking, so the
//! handshake is hidden behind speech. Audio is sent as it comes in 50 ms messages; at the end of
//! the turn a flush asks for the transcript.
//!
//! - Connections are reused across utterances of one language, for at most 50 s idle (Sarvam
//!   closes them after 60 s). We do not send keep-alive silence: it would be billed as audio and
//!   hold one of the account's concurrent connections for nothing, while a new connection costs
//!   nothing the caller notices since it opens during speech. A reused socket found closed is
//!   replaced at once without counting as a retry.
//! - The utterance's audio (its last 30 s) is kept until the transcript arrives, so a dropped
//!   connection, an error message or a refused handshake is retried per the [`RetryPolicy`] on a
//!   new connection by sending the audio again. Nothing has been shown to the caller yet, so a
//!   retry is invisible except for its delay.
//! - Sarvam's own voice detection may close a segment (END_SPEECH, which `vad_signals` makes it
//!   tell us) and send its transcript before our flush. Such transcripts are kept and joined
//!   with the flush's; a transcript arriving after the flush belongs to a segment when an
//!   END_SPEECH before the flush still awaited one. After such a segment the flush may have
//!   nothing left to transcribe (the caller was silent since) and Sarvam may not answer it, so
//!   we wait only [`SETTLE`] for it, and do not reuse that socket, whose late answer would
//!   otherwise land in the next utterance. The words of such segments are the utterance's
//!   [`Utterance::partial`] while the caller goes on.
//!
//! [`RetryPolicy`]: crate::providers::RetryPolicy

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::FutureExt;
use futures_util::future::{self, BoxFuture};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::{AUTH, PROVIDER, SttConfig};
use crate::providers::ProviderError;
use crate::providers::stt::{SAMPLE_RATE, SpeechToText, Tail, Transcript, Utterance};
use crate::providers::websocket::{self, Socket};

/// 50 ms of audio per message, as Sarvam's examples and LiveKit send.
const CHUNK_SAMPLES: usize = SAMPLE_RATE as usize / 20;
/// How long an idle socket is kept; Sarvam closes it after 60 s without audio.
const IDLE_LIMIT: Duration = Duration::from_secs(50);
/// Idle sockets kept at most; a call has one utterance at a time.
const MAX_IDLE: usize = 2;
/// After a flush, how long to wait for a last transcript once Sarvam has sent one on its own.
const SETTLE: Duration = Duration::from_millis(300);

pub(super) struct SarvamStreaming {
    shared: Arc<Shared>,
}

struct Shared {
    config: SttConfig,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    language: String,
    socket: Socket,
    since: Instant,
}

/// What the utterance tells its task.
enum Command {
    Audio(Vec<i16>),
    Finish(oneshot::Sender<Result<Heard, ProviderError>>),
}

struct Heard {
    text: String,
    language: Option<String>,
}

struct StreamingUtterance {
    commands: mpsc::UnboundedSender<Command>,
    /// Set by the task when it gives up, so pushes fail early with the reason.
    failure: Arc<OnceLock<ProviderError>>,
    /// The transcripts of the segments Sarvam closed on its own so far.
    heard: Arc<Mutex<String>>,
    /// What [`Utterance::partial`] last returned.
    shown: String,
    timeout: Duration,
    pushed: bool,
}

/// One utterance's task.
struct Session {
    shared: Arc<Shared>,
    language: String,
    commands: mpsc::UnboundedReceiver<Command>,
    failure: Arc<OnceLock<ProviderError>>,
    heard: Arc<Mutex<String>>,
    audio: Tail,
    finish: Option<oneshot::Sender<Result<Heard, ProviderError>>>,
    retries: u32,
}

/// One connection's share of an utterance.
struct Link {
    socket: Socket,
    reused: bool,
    /// Whether the server has said anything on this connection for this utterance.
    heard: bool,
    /// Position (in [`Tail`] terms) of the next sample to send.
    sent: usize,
    sent_any: bool,
    flushed_at: Option<Instant>,
    /// Transcripts received so far, Sarvam's own segments first.
    segments: Vec<String>,
    /// Whether Sarvam closed a segment on its own before our flush.
    segmented: bool,
    /// Segments Sarvam closed (END_SPEECH) before our flush whose transcripts have not come yet.
    owed: u32,
    language: Option<String>,
}

enum Outcome {
    Heard(Heard),
    /// The utterance was dropped, or its finish gave up waiting.
    Abandoned,
}

impl SarvamStreaming {
    pub(super) fn new(config: SttConfig) -> Self {
        Self { shared: Arc::new(Shared { config, idle: Mutex::new(Vec::new()) }) }
    }
}

impl SpeechToText for SarvamStreaming {
    fn start(&self, language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>> {
        let (commands, receiver) = mpsc::unbounded_channel();
        let failure = Arc::new(OnceLock::new());
        let heard = Arc::new(Mutex::new(String::new()));
        let session = Session {
            shared: self.shared.clone(),
            language: language.to_owned(),
            commands: receiver,
            failure: failure.clone(),
            heard: heard.clone(),
            audio: Tail::default(),
            finish: None,
            retries: 0,
        };
        tokio::spawn(session.run());
        let utterance = StreamingUtterance {
            commands,
            failure,
            heard,
            shown: String::new(),
            timeout: self.shared.config.timeout,
            pushed: false,
        };
        Box::pin(future::ready(Ok(Box::new(utterance) as Box<dyn Utterance>)))
    }
}

impl Utterance for StreamingUtterance {
    fn push(&mut self, audio: &[i16]) -> BoxFuture<'_, Result<(), ProviderError>> {
        let result = match self.failure.get() {
            Some(error) => Err(error.clone()),
            None => self.commands.send(Command::Audio(audio.to_vec())).map_err(|_| self.ended()),
        };
        self.pushed |= !audio.is_empty();
        Box::pin(future::ready(result))
    }

    fn partial(&mut self) -> Option<String> {
        let heard = self.heard.lock().expect("the words are never left half-written").clone();
        if heard.is_empty() || heard == self.shown {
            return None;
        }
        self.shown.clone_from(&heard);
        Some(heard)
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Transcript, ProviderError>> {
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        let sent = self.pushed && self.commands.send(Command::Finish(reply)).is_ok();
        Box::pin(async move {
            let transcript =
                |heard: Heard| Transcript { text: heard.text, language: heard.language, latency: started.elapsed() };
            if !self.pushed {
                return Ok(transcript(Heard { text: String::new(), language: None }));
            }
            if !sent {
                return Err(self.ended());
            }
            match tokio::time::timeout(self.timeout, answer).await {
                Err(_) => Err(ProviderError::Timeout { provider: PROVIDER, after: self.timeout }),
                Ok(Err(_)) => Err(self.ended()),
                Ok(Ok(result)) => result.map(transcript),
            }
        })
    }
}

impl StreamingUtterance {
    /// Why the task is gone.
    fn ended(&self) -> ProviderError {
        self.failure.get().cloned().unwrap_or_else(|| ProviderError::Protocol {
            provider: PROVIDER,
            message: "the transcription session ended without a transcript".into(),
        })
    }
}

impl Session {
    async fn run(mut self) {
        loop {
            let failure = match self.open().await {
                Ok(link) => match self.converse(link).await {
                    Ok(()) => return,
                    Err(failure) => failure,
                },
                Err(error) => Failure { error, stale: false },
            };
            if failure.stale {
                tracing::debug!(error = %failure.error, "an idle speech-to-text socket was closed; reconnecting");
            } else if self.pause(failure.error).await.is_err() {
                return;
            }
        }
    }

    /// An idle socket for the language, or a new one; sending restarts at the kept audio.
    async fn open(&self) -> Result<Link, ProviderError> {
        let link = |socket, reused| Link {
            socket,
            reused,
            heard: false,
            sent: self.audio.start(),
            sent_any: false,
            flushed_at: None,
            segments: Vec::new(),
            segmented: false,
            owed: 0,
            language: None,
        };
        if let Some(socket) = self.shared.take_idle(&self.language) {
            return Ok(link(socket, true));
        }
        let config = &self.shared.config;
        let query = [
            ("language-code", self.language.as_str()),
            ("model", config.model.as_str()),
            ("mode", config.mode.as_str()),
            ("sample_rate", "16000"),
            ("vad_signals", "true"),
            ("flush_signal", "true"),
            ("input_audio_codec", "pcm_s16le"),
        ];
        let url = websocket::url(PROVIDER, &config.base_url, "speech-to-text/ws", &query)?;
        let socket = websocket::connect(PROVIDER, &url, AUTH, &config.api_key, config.timeout).await?;
        Ok(link(socket, false))
    }

    /// Waits before the next try, or records the failure and tells the utterance.
    async fn pause(&mut self, error: ProviderError) -> Result<(), ()> {
        self.retries += 1;
        let why = "speech-to-text failed; retrying with the utterance's audio";
        let Err(error) = self.shared.config.retry.pause(self.retries, error, why).await else { return Ok(()) };
        let _ = self.failure.set(error.clone());
        if let Some(reply) = self.finish.take() {
            let _ = reply.send(Err(error));
        }
        Err(())
    }

    /// Streams the utterance over `link` until its transcript is delivered or nobody waits for
    /// it; the socket is kept for the next utterance when nothing of this one can still arrive.
    async fn converse(&mut self, mut link: Link) -> Result<(), Failure> {
        let outcome = self.exchange(&mut link).await.map_err(|error| Failure {
            stale: link.reused && !link.heard && matches!(error, ProviderError::Network { .. }),
            error,
        })?;
        let (heard, reusable) = match outcome {
            Outcome::Heard(heard) => (Some(heard), !link.segmented),
            Outcome::Abandoned => (None, !link.sent_any),
        };
        // Kept before the caller hears back, so that its next utterance finds the socket.
        if reusable {
            self.shared.put_idle(&self.language, link.socket);
        }
        if let (Some(heard), Some(reply)) = (heard, self.finish.take()) {
            let _ = reply.send(Ok(heard));
        }
        Ok(())
    }

    async fn exchange(&mut self, link: &mut Link) -> Result<Outcome, ProviderError> {
        loop {
            self.send_pending(link).await?;
            let settle = link.flushed_at.filter(|_| link.segmented && link.owed == 0).map(|at| at + SETTLE);
            let finishing = self.finish.is_some();
            let finish_dropped = async {
                match self.finish.as_mut() {
                    Some(reply) => reply.closed().await,
                    None => future::pending().await,
                }
            };
            let settled = async {
                match settle {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => future::pending().await,
                }
            };
            tokio::select! {
                command = self.commands.recv(), if !finishing => match command {
                    Some(Command::Audio(audio)) => self.audio.push(&audio),
                    Some(Command::Finish(reply)) => self.finish = Some(reply),
                    None => return Ok(Outcome::Abandoned),
                },
                message = websocket::receive(PROVIDER, &mut link.socket) => {
                    let message = message?;
                    link.heard = true;
                    if self.handle(link, &message)? {
                        return Ok(Outcome::Heard(link.heard_so_far()));
                    }
                }
                () = settled => return Ok(Outcome::Heard(link.heard_so_far())),
                () = finish_dropped => return Ok(Outcome::Abandoned),
            }
        }
    }

    /// Sends the audio not yet sent, in whole 50 ms messages until the turn is finished, then
    /// the rest and a flush.
    async fn send_pending(&self, link: &mut Link) -> Result<(), ProviderError> {
        let finishing = self.finish.is_some();
        let pending = self.audio.since(link.sent);
        link.sent = self.audio.end() - pending.len();
        for chunk in pending.chunks(CHUNK_SAMPLES).filter(|chunk| finishing || chunk.len() == CHUNK_SAMPLES) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|sample| sample.to_le_bytes()).collect();
            let message =
                json!({"audio": {"data": STANDARD.encode(bytes), "encoding": "audio/wav", "sample_rate": SAMPLE_RATE}});
            websocket::send(PROVIDER, &mut link.socket, &message).await?;
            link.sent += chunk.len();
            link.sent_any = true;
        }
        if finishing && link.flushed_at.is_none() {
            websocket::send(PROVIDER, &mut link.socket, &json!({"type": "flush"})).await?;
            link.flushed_at = Some(Instant::now());
        }
        Ok(())
    }

    /// Acts on one server message; true when it is the transcript our flush asked for.
    fn handle(&self, link: &mut Link, message: &Value) -> Result<bool, ProviderError> {
        let data = &message["data"];
        match message["type"].as_str().unwrap_or_default() {
            "data" => {
                let text = data["transcript"].as_str().ok_or_else(|| ProviderError::Protocol {
                    provider: PROVIDER,
                    message: format!("a transcript message without a transcript: {message}"),
                })?;
                if let Some(language) = data["language_code"].as_str() {
                    link.language = Some(language.to_owned());
                }
                if !text.trim().is_empty() {
                    link.segments.push(text.trim().to_owned());
                }
                let own_segment = link.flushed_at.is_none() || link.owed > 0;
                if own_segment {
                    tracing::debug!("Sarvam closed a segment on its own");
                    link.segmented = true;
                    link.owed = link.owed.saturating_sub(1);
                    *self.heard.lock().expect("the words are never left half-written") = link.segments.join(" ");
                }
                Ok(!own_segment)
            }
            "events" => {
                let signal = data["signal_type"].as_str().unwrap_or_default();
                tracing::debug!(signal, "Sarvam voice activity");
                if signal == "END_SPEECH" && link.flushed_at.is_none() {
                    link.segmented = true;
                    link.owed += 1;
                }
                Ok(false)
            }
            "error" => Err(websocket::error_from(PROVIDER, data, &self.shared.config.api_key)),
            other => {
                tracing::debug!(kind = other, "ignoring a speech-to-text message");
                Ok(false)
            }
        }
    }
}

impl Link {
    fn heard_so_far(&self) -> Heard {
        Heard { text: self.segments.join(" "), language: self.language.clone() }
    }
}

/// A failed try, and whether it failed only because a reused socket had been closed.
struct Failure {
    error: ProviderError,
    stale: bool,
}

impl Shared {
    /// An idle socket for `language`, after reading (and dropping) whatever it received while
    /// idle; a socket found closed that way is dropped too.
    fn take_idle(&self, language: &str) -> Option<Socket> {
        loop {
            let mut socket = {
                let mut idle = self.idle.lock().expect("the idle list is never left half-changed");
                idle.retain(|socket| socket.since.elapsed() < IDLE_LIMIT);
                let at = idle.iter().position(|socket| socket.language == language)?;
                idle.swap_remove(at).socket
            };
            let healthy = loop {
                match websocket::receive(PROVIDER, &mut socket).now_or_never() {
                    None => break true,
                    Some(Ok(stray)) => tracing::debug!(%stray, "dropping a message an idle socket received"),
                    Some(Err(_)) => break false,
                }
            };
            if healthy {
                return Some(socket);
            }
        }
    }

    fn put_idle(&self, language: &str, socket: Socket) {
        let mut idle = self.idle.lock().expect("the idle list is never left half-changed");
        if idle.len() < MAX_IDLE {
            idle.push(Idle { language: language.to_owned(), socket, since: Instant::now() });
        }
    }
}
