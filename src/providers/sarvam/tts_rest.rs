//! Sarvam text-to-speech over REST (providers.md §1c): `POST /text-to-speech` answers a JSON
//! list of base64 WAV files.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AUTH, PROVIDER, TtsConfig, VoiceSettings, text};
use crate::audio::AudioFrame;
use crate::providers::ProviderError;
use crate::providers::http::{Post, endpoint};
use crate::providers::tts::{SpeechRequest, TextToSpeech, wav};

pub(super) struct SarvamRest {
    client: Arc<Client>,
}

struct Client {
    config: TtsConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    audios: Vec<String>,
}

/// The pieces of one request's text still to synthesise, and audio ready to hand over.
struct Pending {
    client: Arc<Client>,
    request: SpeechRequest,
    texts: VecDeque<String>,
    ready: VecDeque<AudioFrame>,
}

impl SarvamRest {
    pub(super) fn new(config: TtsConfig, http: reqwest::Client) -> Self {
        Self { client: Arc::new(Client { config, http }) }
    }
}

impl TextToSpeech for SarvamRest {
    fn synthesize(
        &self,
        request: SpeechRequest,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Result<AudioFrame, ProviderError>>, ProviderError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let mut texts: VecDeque<String> =
                text::split(&request.text, text::limit(&client.config.voice.model)).into();
            let Some(first) = texts.pop_front() else { return Ok(stream::empty().boxed()) };
            // The first piece is fetched here so that its failures reach the caller before any
            // audio, as the trait promises; later pieces are fetched as the audio is consumed.
            let ready = client.synthesize(&request, &first).await?.into();
            Ok(stream::unfold(Pending { client, request, texts, ready }, next).boxed())
        })
    }
}

async fn next(mut pending: Pending) -> Option<(Result<AudioFrame, ProviderError>, Pending)> {
    loop {
        if let Some(frame) = pending.ready.pop_front() {
            return Some((Ok(frame), pending));
        }
        let text = pending.texts.pop_front()?;
        match pending.client.synthesize(&pending.request, &text).await {
            Ok(frames) => pending.ready = frames.into(),
            Err(error) => {
                pending.texts.clear();
                return Some((Err(error), pending));
            }
        }
    }
}

impl Client {
    async fn synthesize(&self, request: &SpeechRequest, text: &str) -> Result<Vec<AudioFrame>, ProviderError> {
        let payload = payload(request, &self.config.voice, text, self.config.sample_rate);
        let post = Post {
            provider: PROVIDER,
            http: &self.http,
            retry: &self.config.retry,
            url: endpoint(PROVIDER, &self.config.base_url, "text-to-speech")?,
            auth: AUTH,
            key: &self.config.api_key,
            timeout: self.config.timeout,
        };
        decode(&post.send(|request| request.json(&payload)).await?)
    }
}

/// The body of `POST /text-to-speech`; `language_code` is the field's current name
/// (`target_language_code` was the old one).
fn payload(request: &SpeechRequest, voice: &VoiceSettings, text: &str, sample_rate: u32) -> Value {
    let mut payload = json!({
        "text": text,
        "language_code": request.language,
        "speaker": request.voice,
        "model": voice.model,
        "pace": voice.pace,
        "speech_sample_rate": sample_rate,
    });
    if voice.is_v2() {
        payload["pitch"] = json!(voice.pitch);
        payload["loudness"] = json!(voice.loudness);
        // v3 always normalises numbers, dates and mixed scripts; v2 only when asked, and model
        // answers are full of them.
        payload["enable_preprocessing"] = json!(true);
    }
    payload
}

fn decode(body: &[u8]) -> Result<Vec<AudioFrame>, ProviderError> {
    let protocol = |message: String| ProviderError::Protocol { provider: PROVIDER, message };
    let answer: Answer = serde_json::from_slice(body).map_err(|e| protocol(format!("the synthesis answer: {e}")))?;
    if answer.audios.is_empty() {
        return Err(protocol("the synthesis answer holds no audio".into()));
    }
    answer
        .audios
        .iter()
        .map(|audio| {
            let bytes = STANDARD.decode(audio).map_err(|e| protocol(format!("audio is not base64: {e}")))?;
            wav::decode(&bytes).map_err(|e| protocol(format!("audio is not a 16-bit PCM WAV file: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice(model: &str) -> VoiceSettings {
        VoiceSettings { model: model.into(), pace: 1.0, pitch: 0.25, loudness: 1.5 }
    }

    #[test]
    fn v2_only_fields_are_sent_to_v2_only() {
        let request =
            SpeechRequest { text: "नमस्ते".into(), language: "hi-IN".into(), voice: "anushka".into() };
        let v2 = payload(&request, &voice("bulbul:v2"), "hello", 24_000);
        assert_eq!(v2["pitch"], 0.25);
        assert_eq!(v2["loudness"], 1.5);
        assert_eq!(v2["enable_preprocessing"], true);
        assert_eq!(v2["speech_sample_rate"], 24_000);
        assert_eq!(v2["text"], "hello");
        assert_eq!(v2["language_code"], "hi-IN");
        assert!(v2.get("target_language_code").is_none(), "the old name is gone");
        let v3 = payload(&request, &voice("bulbul:v3"), "hello", 24_000);
        assert!(v3.get("pitch").is_none() && v3.get("loudness").is_none() && v3.get("enable_preprocessing").is_none());
    }

    #[test]
    fn answers_decode_or_fail_as_protocol_errors() {
        let audio = STANDARD.encode(wav::encode(&[1, 2, 3], 22_050));
        let body = format!(r#"{{"request_id":"r","audios":["{audio}","{audio}"]}}"#);
        let frames = decode(body.as_bytes()).expect("valid");
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], AudioFrame { samples: vec![1, 2, 3], sample_rate: 22_050 });
        for bad in [r#"{"audios":[]}"#, r#"{"audios":["!!"]}"#, r#"{"audios":["aGVsbG8="]}"#, "<html>"] {
            assert!(matches!(decode(bad.as_bytes()), Err(ProviderError::Protocol { .. })), "{bad}");
        }
    }
}
