//! `POST /audio/speech` with `response_format: "pcm"`: raw 24 kHz 16-bit mono audio, chunked,
//! passed on as it arrives.
//!
//! A try ends successfully with the first bytes of audio, so retries (with the first-byte
//! timeout) cover connecting, queueing and error statuses, and never repeat words the caller
//! may already have heard.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use url::Url;

use super::{AUTH, PROVIDER, TtsOptions};
use crate::audio::AudioFrame;
use crate::providers::http::endpoint;
use crate::providers::registry::Access;
use crate::providers::tts::pcm::PcmDecoder;
use crate::providers::tts::{SpeechRequest, TextToSpeech};
use crate::providers::{ProviderError, retry_after};

/// The rate of OpenAI's `pcm` format.
const PCM_RATE: u32 = 24_000;

pub(super) struct Speaker {
    access: Access,
    options: TtsOptions,
}

type Body = BoxStream<'static, reqwest::Result<Bytes>>;
type Item = Result<AudioFrame, ProviderError>;

/// The rest of a sentence's audio being read.
struct Reader {
    body: Body,
    decoder: PcmDecoder,
    timeout: Duration,
    ended: bool,
}

impl Speaker {
    pub(super) fn new(access: Access, options: TtsOptions) -> Self {
        Self { access, options }
    }

    fn payload(&self, request: &SpeechRequest) -> Value {
        let mut payload = json!({
            "model": self.options.model,
            "input": request.text.trim(),
            "voice": request.voice,
            "response_format": "pcm",
            "speed": self.options.speed,
        });
        if let Some(instructions) = &self.options.instructions {
            payload["instructions"] = json!(instructions);
        }
        payload
    }

    /// One try: the answer's status and its first bytes, within the timeout.
    async fn open(&self, url: &Url, payload: &Value) -> Result<(Body, Bytes), ProviderError> {
        let timeout = self.access.timeout;
        let (name, value) = AUTH.header(PROVIDER, &self.access.key)?;
        let attempt = async {
            let response = self
                .access
                .http
                .post(url.clone())
                .header(name, value)
                .json(payload)
                .send()
                .await
                .map_err(|e| ProviderError::from_reqwest(PROVIDER, e, timeout))?;
            let status = response.status();
            if !status.is_success() {
                let after = retry_after(response.headers());
                let body = response.text().await.unwrap_or_default();
                return Err(ProviderError::from_status(PROVIDER, status.as_u16(), after, &body, &self.access.key));
            }
            let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if kind.starts_with("application/json") || kind.starts_with("text/") {
                return Err(ProviderError::Protocol {
                    provider: PROVIDER,
                    message: format!("audio was asked for, {kind} came"),
                });
            }
            let mut body = response.bytes_stream().boxed();
            loop {
                match body.next().await {
                    Some(Ok(first)) if first.is_empty() => {}
                    Some(Ok(first)) => return Ok((body, first)),
                    Some(Err(e)) => return Err(ProviderError::from_reqwest(PROVIDER, e, timeout)),
                    None => {
                        return Err(ProviderError::Protocol {
                            provider: PROVIDER,
                            message: "the audio was empty".into(),
                        });
                    }
                }
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| ProviderError::Timeout { provider: PROVIDER, after: timeout })?
    }
}

impl TextToSpeech for Speaker {
    fn synthesize(&self, request: SpeechRequest) -> BoxFuture<'_, Result<BoxStream<'static, Item>, ProviderError>> {
        Box::pin(async move {
            if request.text.trim().is_empty() {
                return Ok(stream::empty().boxed());
            }
            let url = endpoint(PROVIDER, &self.access.base_url, "audio/speech")?;
            let payload = self.payload(&request);
            let (body, first) = self.access.retry.run(|| self.open(&url, &payload)).await?;
            let mut decoder = PcmDecoder::new(PCM_RATE);
            let first = decoder.decode(&first).map_err(protocol)?;
            let reader = Reader { body, decoder, timeout: self.access.timeout, ended: false };
            Ok(stream::iter(first.map(Ok)).chain(stream::unfold(reader, Reader::next)).boxed())
        })
    }
}

impl Reader {
    async fn next(mut self) -> Option<(Item, Self)> {
        while !self.ended {
            match tokio::time::timeout(self.timeout, self.body.next()).await {
                Err(_) => {
                    self.ended = true;
                    return Some((Err(ProviderError::Timeout { provider: PROVIDER, after: self.timeout }), self));
                }
                Ok(None) => self.ended = true,
                Ok(Some(Err(e))) => {
                    self.ended = true;
                    return Some((Err(ProviderError::from_reqwest(PROVIDER, e, self.timeout)), self));
                }
                Ok(Some(Ok(bytes))) => match self.decoder.decode(&bytes) {
                    Ok(Some(frame)) => return Some((Ok(frame), self)),
                    Ok(None) => {}
                    Err(why) => {
                        self.ended = true;
                        return Some((Err(protocol(why)), self));
                    }
                },
            }
        }
        None
    }
}

fn protocol(message: String) -> ProviderError {
    ProviderError::Protocol { provider: PROVIDER, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::providers::RetryPolicy;

    #[test]
    fn the_request_asks_for_raw_pcm_in_the_calls_voice() {
        let access = Access {
            key: Secret::new("k"),
            base_url: Url::parse("https://api.openai.com/v1").expect("valid"),
            http: reqwest::Client::new(),
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        };
        let options = TtsOptions { model: "gpt-4o-mini-tts".into(), speed: 1.1, instructions: Some("Warm.".into()) };
        let speaker = Speaker::new(access, options);
        let request =
            SpeechRequest { text: " नमस्ते। ".into(), language: "hi-IN".into(), voice: "coral".into() };
        assert_eq!(
            speaker.payload(&request),
            json!({"model": "gpt-4o-mini-tts", "input": "नमस्ते।", "voice": "coral", "response_format": "pcm",
                   "speed": 1.1, "instructions": "Warm."})
        );
    }
}
