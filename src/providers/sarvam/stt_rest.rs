//! Sarvam speech-to-text over REST (providers.md §1a): the utterance is buffered and uploaded
//! as one WAV file in a multipart `POST /speech-to-text` when it finishes.

use futures_util::future::BoxFuture;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::{AUTH, PROVIDER, SttConfig};
use crate::providers::ProviderError;
use crate::providers::http::{Post, endpoint};
use crate::providers::stt::whole_file::{FileTranscriber, Heard, WholeFile};

/// Sarvam's REST speech-to-text, one request per utterance.
pub(super) fn transcriber(config: SttConfig, http: reqwest::Client) -> WholeFile<Client> {
    WholeFile::new(Client { config, http })
}

pub(super) struct Client {
    config: SttConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    transcript: String,
    #[serde(default)]
    language_code: Option<String>,
}

impl FileTranscriber for Client {
    fn transcribe<'a>(&'a self, language: &'a str, file: &'a [u8]) -> BoxFuture<'a, Result<Heard, ProviderError>> {
        Box::pin(async move {
            let answer = self.upload(language, file).await?;
            Ok(Heard { text: answer.transcript, language: answer.language_code })
        })
    }
}

impl Client {
    async fn upload(&self, language: &str, file: &[u8]) -> Result<Answer, ProviderError> {
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
