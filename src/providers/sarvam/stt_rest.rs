//! Sarvam speech-to-text over REST (providers.md §1a): the utterance is buffered and uploaded
//! as one WAV file in a multipart `POST /speech-to-text` when it finishes.

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::{AUTH, PROVIDER, SttConfig};
use crate::providers::ProviderError;
use crate::providers::http::{Post, endpoint};
use crate::providers::stt::{SAMPLE_RATE, SpeechToText, Tail, Transcript, Utterance};
use crate::providers::tts::wav;

pub(super) struct SarvamRest {
    client: Arc<Client>,
}

struct Client {
    config: SttConfig,
    http: reqwest::Client,
}

struct RestUtterance {
    client: Arc<Client>,
    language: String,
    audio: Tail,
}

#[derive(Deserialize)]
struct Answer {
    transcript: String,
    #[serde(default)]
    language_code: Option<String>,
}

impl SarvamRest {
    pub(super) fn new(config: SttConfig, http: reqwest::Client) -> Self {
        Self { client: Arc::new(Client { config, http }) }
    }
}

impl SpeechToText for SarvamRest {
    fn start(&self, language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>> {
        let utterance =
            RestUtterance { client: self.client.clone(), language: language.to_owned(), audio: Tail::default() };
        Box::pin(async move { Ok(Box::new(utterance) as Box<dyn Utterance>) })
    }
}

impl Utterance for RestUtterance {
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
            let answer = self.client.transcribe(&self.language, &file).await?;
            Ok(Transcript { text: answer.transcript, language: answer.language_code, latency: started.elapsed() })
        })
    }
}

impl Client {
    async fn transcribe(&self, language: &str, file: &[u8]) -> Result<Answer, ProviderError> {
        let post = Post {
            provider: PROVIDER,
            http: &self.http,
            retry: &self.config.retry,
            url: endpoint(PROVIDER, &self.config.base_url, "speech-to-text")?,
            auth: AUTH,
            key: &self.config.api_key,
            timeout: self.config.timeout,
        };
        let body = post.send(|request| request.multipart(self.form(language, file))).await?;
        serde_json::from_slice(&body).map_err(|e| ProviderError::Protocol {
            provider: PROVIDER,
            message: format!("the transcription answer: {e}"),
        })
    }

    /// A fresh form per try: a sent form is consumed.
    fn form(&self, language: &str, file: &[u8]) -> Form {
        let part = Part::bytes(file.to_vec())
            .file_name("audio.wav")
            .mime_str("audio/wav")
            .expect("audio/wav is a valid MIME type");
        Form::new()
            .part("file", part)
            .text("model", self.config.model.clone())
            .text("mode", self.config.mode.clone())
            .text("language_code", language.to_owned())
    }
}
