//! `POST /audio/transcriptions` (multipart): the utterance is buffered and uploaded as one WAV
//! file when it finishes, with the language as ISO-639-1 (`hi`, not `hi-IN`).

use futures_util::future::BoxFuture;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::{AUTH, PROVIDER, SttOptions, iso_639_1};
use crate::providers::ProviderError;
use crate::providers::http::{Post, endpoint};
use crate::providers::registry::Access;
use crate::providers::stt::whole_file::{FileTranscriber, Heard, WholeFile};

/// OpenAI's transcriptions, one request per utterance.
pub(super) fn transcriber(access: Access, options: SttOptions) -> WholeFile<Client> {
    WholeFile::new(Client { access, options })
}

pub(super) struct Client {
    access: Access,
    options: SttOptions,
}

/// The `json` answer: `{"text": ..., "usage": ...}` (gpt-4o models add usage, whisper-1 not).
#[derive(Deserialize)]
struct Answer {
    text: String,
}

impl FileTranscriber for Client {
    fn transcribe<'a>(&'a self, language: &'a str, file: &'a [u8]) -> BoxFuture<'a, Result<Heard, ProviderError>> {
        Box::pin(async move { Ok(Heard { text: self.upload(language, file).await?, language: None }) })
    }
}

impl Client {
    async fn upload(&self, language: &str, file: &[u8]) -> Result<String, ProviderError> {
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
