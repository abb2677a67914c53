//! `POST /audio/transcriptions` (multipart): the utterance is buffered and uploaded as one WAV
//! file when it finishes, with the language as ISO-639-1 (`hi`, not `hi-IN`).

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::{AUTH, PROVIDER, SttOptions, iso_639_1};
use crate::providers::ProviderError;
use crate::providers::http::{Post, endpoint};
use crate::providers::registry::Access;
use crate::providers::stt::{SAMPLE_RATE, SpeechToText, Tail, Transcript, Utterance};
use crate::providers::tts::wav;

pub(super) struct Transcriber {
    client: Arc<Client>,
}

struct Client {
    access: Access,
    options: SttOptions,
}

struct Buffered {
    client: Arc<Client>,
    language: String,
    audio: Tail,
}

/// The `json` answer: `{"text": ..., "usage": ...}` (gpt-4o models add usage, whisper-1 not).
#[derive(Deserialize)]
struct Answer {
    text: String,
}

impl Transcriber {
    pub(super) fn new(access: Access, options: SttOptions) -> Self {
        Self { client: Arc::new(Client { access, options }) }
    }
}

impl SpeechToText for Transcriber {
    fn start(&self, language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>> {
        let utterance = Buffered { client: self.client.clone(), language: language.to_owned(), audio: Tail::default() };
        Box::pin(async move { Ok(Box::new(utterance) as Box<dyn Utterance>) })
    }
}

impl Utterance for Buffered {
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
            let text = self.client.transcribe(&self.language, &file).await?;
            Ok(Transcript { text, language: None, latency: started.elapsed() })
        })
    }
}

impl Client {
    async fn transcribe(&self, language: &str, file: &[u8]) -> Result<String, ProviderError> {
        let access = &self.access;
        let post = Post {
            provider: PROVIDER,
            http: &access.http,
            retry: &access.retry,
            url: endpoint(PROVIDER, &access.base_url, "audio/transcriptions")?,
            auth: AUTH,
            key: &access.key,
            timeout: access.timeout,
        };
        let body = post.send(|request| request.multipart(self.form(language, file))).await?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| ProviderError::Protocol {
            provider: PROVIDER,
            message: format!("the transcription answer: {e}"),
        })?;
        Ok(answer.text.trim().to_owned())
    }

    /// A fresh form per try: a sent form is consumed.
    fn form(&self, language: &str, file: &[u8]) -> Form {
        let part = Part::bytes(file.to_vec())
            .file_name("audio.wav")
            .mime_str("audio/wav")
            .expect("audio/wav is a valid MIME type");
        let mut form =
            Form::new().part("file", part).text("model", self.options.model.clone()).text("response_format", "json");
        if let Some(code) = iso_639_1(language) {
            form = form.text("language", code);
        }
        if let Some(prompt) = &self.options.prompt {
            form = form.text("prompt", prompt.clone());
        }
        form
    }
}
