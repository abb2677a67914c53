//! Deepgram live transcription: one `/v1/listen` WebSocket per call, shared by its utterances.
//!
//! - A task owned by the provider holds the connection. It opens when the first utterance
//!   starts (while the caller speaks), carries every utterance's audio as binary 50 ms frames,
//!   and between utterances sends `KeepAlive` every few seconds, since Deepgram closes a stream
//!   that hears nothing for 10 s. When the call's providers are dropped it sends `CloseStream`
//!   and ends.
//! - Interim results (`is_final: false`) are the utterance's [`Utterance::partial`] words while
//!   the caller speaks; `speech_final` (endpointing) and `UtteranceEnd` are its
//!   [`Utterance::endpoint`]s.
//! - At the end of the turn a `Finalize` flushes what Deepgram still holds; the results it
//!   answers with carry `from_finalize: true`, and the utterance's final results joined are its
//!   transcript. Should Deepgram have nothing left to flush after a `speech_final`, the
//!   transcript is taken after [`SETTLE`].
//! - An utterance dropped unfinished (a cough) ends the stream with `CloseStream`, so its words
//!   never reach the next one; the next opens a new stream.
//! - The utterance's audio (its last 30 s) is kept until its transcript, so a dropped
//!   connection or a refused handshake is retried per the retry policy on a new connection by
//!   sending the audio again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{self, BoxFuture};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::{AUTH, LiveOptions, PROVIDER, language_code};
use crate::providers::ProviderError;
use crate::providers::registry::Access;
use crate::providers::stt::{Endpoint, SAMPLE_RATE, SpeechToText, Tail, Transcript, Utterance};
use crate::providers::websocket::{self, Socket};

/// 50 ms of audio per frame, as Deepgram recommends for live audio.
const CHUNK_SAMPLES: usize = SAMPLE_RATE as usize / 20;
/// Deepgram closes a stream after 10 s without audio or `KeepAlive`; it asks for one every 3–5 s.
const KEEP_ALIVE: Duration = Duration::from_secs(4);
/// After a `Finalize` that follows a `speech_final`, how long to wait for anything more.
const SETTLE: Duration = Duration::from_millis(500);

pub(super) struct DeepgramLive {
    commands: mpsc::UnboundedSender<Command>,
    timeout: Duration,
    next_id: Mutex<u64>,
}

enum Command {
    Begin { id: u64, language: String, view: Arc<Mutex<View>> },
    Audio { id: u64, samples: Vec<i16> },
    Finish { id: u64, reply: oneshot::Sender<Result<String, ProviderError>> },
    Abandon { id: u64 },
}

/// What an utterance's handle sees of its task.
#[derive(Default)]
struct View {
    /// Final results so far and the latest interim one, joined.
    words: String,
    endpoints: VecDeque<Endpoint>,
    failure: Option<ProviderError>,
}

struct LiveUtterance {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
    view: Arc<Mutex<View>>,
    shown: String,
    timeout: Duration,
    finished: bool,
}

impl DeepgramLive {
    pub(super) fn new(access: Access, options: LiveOptions) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        let timeout = access.timeout;
        let connection = Connection {
            access,
            options,
            commands: receiver,
            socket: None,
            language: None,
            last_sent: Instant::now(),
            current: None,
            retries: 0,
        };
        tokio::spawn(connection.run());
        Self { commands, timeout, next_id: Mutex::new(0) }
    }
}

impl SpeechToText for DeepgramLive {
    fn start(&self, language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>> {
        let id = {
            let mut next = self.next_id.lock().expect("a counter is never left half-changed");
            *next += 1;
            *next
        };
        let view = Arc::new(Mutex::new(View::default()));
        let begun = self.commands.send(Command::Begin { id, language: language.to_owned(), view: view.clone() });
        let result = match begun {
            Ok(()) => Ok(Box::new(LiveUtterance {
                id,
                commands: self.commands.clone(),
                view,
                shown: String::new(),
                timeout: self.timeout,
                finished: false,
            }) as Box<dyn Utterance>),
            Err(_) => Err(ended()),
        };
        Box::pin(future::ready(result))
    }
}

fn ended() -> ProviderError {
    ProviderError::Protocol { provider: PROVIDER, message: "the transcription stream ended".into() }
}

impl LiveUtterance {
    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().expect("the view is never left half-changed")
    }
}

impl Utterance for LiveUtterance {
    fn push(&mut self, audio: &[i16]) -> BoxFuture<'_, Result<(), ProviderError>> {
        let failed = self.view().failure.clone();
        let result = match failed {
            Some(error) => Err(error),
            None => self.commands.send(Command::Audio { id: self.id, samples: audio.to_vec() }).map_err(|_| ended()),
        };
        Box::pin(future::ready(result))
    }

    fn partial(&mut self) -> Option<String> {
        let words = self.view().words.clone();
        if words.is_empty() || words == self.shown {
            return None;
        }
        self.shown.clone_from(&words);
        Some(words)
    }

    fn endpoint(&mut self) -> Option<Endpoint> {
        self.view().endpoints.pop_front()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<Transcript, ProviderError>> {
        let started = Instant::now();
        self.finished = true;
        let (reply, answer) = oneshot::channel();
        let sent = self.commands.send(Command::Finish { id: self.id, reply }).is_ok();
        let timeout = self.timeout;
        Box::pin(async move {
            if !sent {
                return Err(ended());
            }
            let text = match tokio::time::timeout(timeout, answer).await {
                Err(_) => return Err(ProviderError::Timeout { provider: PROVIDER, after: timeout }),
                Ok(Err(_)) => return Err(self.view().failure.clone().unwrap_or_else(ended)),
                Ok(Ok(result)) => result?,
            };
            Ok(Transcript { text, language: None, latency: started.elapsed() })
        })
    }
}

impl Drop for LiveUtterance {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.commands.send(Command::Abandon { id: self.id });
        }
    }
}

/// The utterance the connection is carrying.
struct Current {
    id: u64,
    language: String,
    view: Arc<Mutex<View>>,
    audio: Tail,
    /// Position (in [`Tail`] terms) of the next sample to send on this connection.
    sent: usize,
    finals: Vec<String>,
    interim: String,
    finish: Option<oneshot::Sender<Result<String, ProviderError>>>,
    finalized_at: Option<Instant>,
    /// The last result was `speech_final` and no audio came after it.
    settled: bool,
}

impl Current {
    fn publish(&self) {
        let mut words = self.finals.clone();
        if !self.interim.is_empty() {
            words.push(self.interim.clone());
        }
        self.view.lock().expect("the view is never left half-changed").words = words.join(" ");
    }

    fn endpoint(&self, endpoint: Endpoint) {
        self.view.lock().expect("the view is never left half-changed").endpoints.push_back(endpoint);
    }
}

/// The task holding the call's stream.
struct Connection {
    access: Access,
    options: LiveOptions,
    commands: mpsc::UnboundedReceiver<Command>,
    socket: Option<Socket>,
    /// The language the open stream listens for.
    language: Option<String>,
    last_sent: Instant,
    current: Option<Current>,
    retries: u32,
}

enum Wake {
    Command(Option<Command>),
    Message(Result<Value, ProviderError>),
    KeepAlive,
    Settled,
}

impl Connection {
    async fn run(mut self) {
        loop {
            if let Err(error) = self.connect_if_needed().await {
                self.failed(error).await;
                continue;
            }
            if let Err(error) = self.send_pending().await {
                self.failed(error).await;
                continue;
            }
            match self.wait().await {
                Wake::Command(None) => return self.close().await,
                Wake::Command(Some(command)) => self.command(command).await,
                Wake::Message(Ok(message)) => {
                    if let Err(error) = self.message(&message) {
                        self.failed(error).await;
                    }
                }
                Wake::Message(Err(error)) => self.failed(error).await,
                Wake::KeepAlive => {
                    if let Some(socket) = self.socket.as_mut() {
                        let sent = websocket::send(PROVIDER, socket, &json!({"type": "KeepAlive"})).await;
                        self.last_sent = Instant::now();
                        if sent.is_err() {
                            self.socket = None;
                        }
                    }
                }
                Wake::Settled => self.complete(),
            }
        }
    }

    async fn wait(&mut self) -> Wake {
        let keep_alive = self.last_sent + KEEP_ALIVE;
        let settle = self.current.as_ref().and_then(|c| c.finalized_at.filter(|_| c.settled)).map(|at| at + SETTLE);
        let connected = self.socket.is_some();
        let receiving = async {
            match self.socket.as_mut() {
                Some(socket) => websocket::receive(PROVIDER, socket).await,
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
            command = self.commands.recv() => Wake::Command(command),
            message = receiving => Wake::Message(message),
            () = tokio::time::sleep_until(keep_alive.into()), if connected => Wake::KeepAlive,
            () = settled => Wake::Settled,
        }
    }

    /// Opens a stream for the current utterance's language when there is none (or it listens
    /// for another language); sending restarts at the utterance's kept audio.
    async fn connect_if_needed(&mut self) -> Result<(), ProviderError> {
        let Some(language) = self.current.as_ref().map(|current| current.language.clone()) else { return Ok(()) };
        if self.socket.is_some() && self.language.as_deref() == Some(language.as_str()) {
            return Ok(());
        }
        self.close().await;
        let socket = self.open(&language).await?;
        self.socket = Some(socket);
        self.language = Some(language);
        self.last_sent = Instant::now();
        if let Some(current) = &mut self.current {
            current.sent = current.audio.start();
            current.finals.clear();
            current.interim.clear();
            current.finalized_at = None;
            current.settled = false;
        }
        Ok(())
    }

    async fn open(&self, language: &str) -> Result<Socket, ProviderError> {
        let options = &self.options;
        let endpointing = options.endpointing_ms.to_string();
        let utterance_end = options.utterance_end_ms.to_string();
        let rate = SAMPLE_RATE.to_string();
        let mut query = vec![
            ("model", options.model.as_str()),
            ("language", language_code(language)),
            ("encoding", "linear16"),
            ("sample_rate", rate.as_str()),
            ("channels", "1"),
            ("interim_results", "true"),
            ("endpointing", endpointing.as_str()),
            ("utterance_end_ms", utterance_end.as_str()),
            ("punctuate", "true"),
            ("smart_format", if options.smart_format { "true" } else { "false" }),
        ];
        query.extend(options.keyterms.iter().map(|term| ("keyterm", term.as_str())));
        let url = websocket::url(PROVIDER, &self.access.base_url, "v1/listen", &query)?;
        websocket::connect(PROVIDER, &url, AUTH, &self.access.key, self.access.timeout).await
    }

    /// Sends the audio not yet sent, in whole 50 ms frames until the turn is finished, then the
    /// rest and a `Finalize`.
    async fn send_pending(&mut self) -> Result<(), ProviderError> {
        let (Some(socket), Some(current)) = (self.socket.as_mut(), self.current.as_mut()) else { return Ok(()) };
        let finishing = current.finish.is_some();
        let pending = current.audio.since(current.sent);
        current.sent = current.audio.end() - pending.len();
        for chunk in pending.chunks(CHUNK_SAMPLES).filter(|chunk| finishing || chunk.len() == CHUNK_SAMPLES) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|sample| sample.to_le_bytes()).collect();
            websocket::send_binary(PROVIDER, socket, bytes).await?;
            current.sent += chunk.len();
            current.settled = false;
            self.last_sent = Instant::now();
        }
        if finishing && current.finalized_at.is_none() {
            websocket::send(PROVIDER, socket, &json!({"type": "Finalize"})).await?;
            current.finalized_at = Some(Instant::now());
            self.last_sent = Instant::now();
        }
        Ok(())
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Begin { id, language, view } => {
                if self.current.is_some() {
                    // The pipeline runs one utterance at a time; a new one means the last was
                    // given up without being dropped yet.
                    self.close().await;
                }
                self.retries = 0;
                self.current = Some(Current {
                    id,
                    language,
                    view,
                    audio: Tail::default(),
                    sent: 0,
                    finals: Vec::new(),
                    interim: String::new(),
                    finish: None,
                    finalized_at: None,
                    settled: false,
                });
            }
            Command::Audio { id, samples } => {
                if let Some(current) = self.current.as_mut().filter(|c| c.id == id) {
                    current.audio.push(&samples);
                }
            }
            Command::Finish { id, reply } => match self.current.as_mut().filter(|c| c.id == id) {
                Some(current) if current.audio.end() == 0 => {
                    let _ = reply.send(Ok(String::new()));
                    self.current = None;
                }
                Some(current) => current.finish = Some(reply),
                None => {
                    let _ = reply.send(Err(ended()));
                }
            },
            Command::Abandon { id } => {
                if self.current.as_ref().is_some_and(|c| c.id == id) {
                    let sent_any = self.current.as_ref().is_some_and(|c| c.sent > 0);
                    self.current = None;
                    // Its words must not land in the next utterance.
                    if sent_any {
                        self.close().await;
                    }
                }
            }
        }
    }

    /// Acts on a message; an `Error` message is returned, the stream being unusable after it.
    fn message(&mut self, message: &Value) -> Result<(), ProviderError> {
        self.retries = 0;
        let Some(current) = self.current.as_mut() else { return Ok(()) };
        match message["type"].as_str().unwrap_or_default() {
            "Results" => {
                let text = message["channel"]["alternatives"][0]["transcript"].as_str().unwrap_or_default().trim();
                let is_final = message["is_final"] == true;
                if is_final {
                    if !text.is_empty() {
                        current.finals.push(text.to_owned());
                    }
                    current.interim.clear();
                } else {
                    current.interim = text.to_owned();
                }
                current.publish();
                if message["speech_final"] == true {
                    current.settled = true;
                    current.endpoint(Endpoint::Pause);
                }
                if message["from_finalize"] == true && current.finalized_at.is_some() {
                    self.complete();
                }
            }
            "UtteranceEnd" => current.endpoint(Endpoint::UtteranceEnd),
            "Error" => {
                let description = message["description"].as_str().unwrap_or("no details given");
                let variant = message["variant"].as_str().unwrap_or("error");
                let message = format!("{description} ({variant})");
                // A message of ours Deepgram could not read will not read better a second time.
                return Err(if variant == "SchemaError" {
                    ProviderError::Protocol { provider: PROVIDER, message }
                } else {
                    ProviderError::Server { provider: PROVIDER, status: 500, message }
                });
            }
            other => tracing::debug!(kind = other, "ignoring a Deepgram message"),
        }
        Ok(())
    }

    /// Hands the finished utterance its transcript.
    fn complete(&mut self) {
        let Some(mut current) = self.current.take() else { return };
        match current.finish.take() {
            Some(reply) => {
                let _ = reply.send(Ok(current.finals.join(" ")));
            }
            None => self.current = Some(current),
        }
    }

    /// A failed try: retried on a new connection per the policy, or the utterance fails.
    async fn failed(&mut self, error: ProviderError) {
        self.socket = None;
        self.language = None;
        if self.current.is_none() {
            tracing::debug!(%error, "the idle Deepgram stream ended; the next utterance opens another");
            return;
        }
        self.retries += 1;
        let why = "speech-to-text failed; retrying with the utterance's audio";
        if let Err(error) = self.access.retry.pause(self.retries, error, why).await {
            self.give_up(error);
        }
    }

    fn give_up(&mut self, error: ProviderError) {
        let Some(mut current) = self.current.take() else { return };
        current.view.lock().expect("the view is never left half-changed").failure = Some(error.clone());
        if let Some(reply) = current.finish.take() {
            let _ = reply.send(Err(error));
        }
    }

    /// Ends the stream: Deepgram flushes, answers and closes; we do not wait for it.
    async fn close(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            let _ = websocket::send(PROVIDER, &mut socket, &json!({"type": "CloseStream"})).await;
            websocket::close(&mut socket).await;
        }
        self.language = None;
    }
}
