//! Sarvam AI (`https://api.sarvam.ai`): saaras speech-to-text and bulbul text-to-speech, each
//! over REST or a streaming WebSocket, checked against Sarvam's official SDK (`sarvamai`
//! 0.1.39, providers.md §1).

mod catalog;
mod stt_rest;
mod stt_ws;
mod text;
mod tts_rest;
mod tts_ws;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::RetryPolicy;
use super::catalog::Voice;
use super::http::Auth;
use super::options::Reader;
use super::registry::{Access, Account, Options, SttProvider, TtsProvider, Vendor};
use super::stt::SpeechToText;
use super::tts::{SAMPLE_RATE, TextToSpeech};
use super::usage::Price;
use crate::config::Secret;

pub(crate) const NAME: &str = "sarvam";
/// Every message and log line names the provider this way.
const PROVIDER: &str = NAME;
/// Sarvam's header for the key (the WebSocket specs spell it `Api-Subscription-Key`; header
/// names ignore case).
const AUTH: Auth = Auth::Header("api-subscription-key");

/// The models `/speech-to-text` and its WebSocket serve.
const STT_MODELS: &[&str] = &["saaras:v3", "saaras:v4"];
/// Models Sarvam has retired from `/speech-to-text`; profiles naming them are told what to use.
const RETIRED_STT_MODELS: &[&str] = &["saarika:v2.5", "saaras:v2.5", "saarika:v2", "saarika:v1", "saaras:v2"];
const STT_MODES: &[&str] = &["transcribe", "translate", "verbatim", "translit", "codemix"];
const STT_LANGUAGES: &[&str] =
    &["hi-IN", "en-IN", "bn-IN", "ta-IN", "te-IN", "mr-IN", "gu-IN", "kn-IN", "ml-IN", "pa-IN", "od-IN"];

pub(crate) struct Sarvam;

impl Vendor for Sarvam {
    fn name(&self) -> &'static str {
        NAME
    }

    fn account(&self) -> Account {
        Account {
            key_setting: "SARVAM_API_KEY",
            key_doc: "Sarvam AI subscription key; required when a profile that can be dispatched uses sarvam (the default speech provider; `dev` without it only echoes).",
            base_url_setting: "SARVAM_BASE_URL",
            default_base_url: "https://api.sarvam.ai",
            base_url_doc: "Sarvam API endpoint (override for a proxy or a mock).",
        }
    }

    fn stt(&self) -> Option<&dyn SttProvider> {
        Some(&SarvamStt)
    }

    fn tts(&self) -> Option<&dyn TtsProvider> {
        Some(&SarvamTts)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SttConfig {
    /// `https://api.sarvam.ai` or a proxy or mock; the WebSocket uses the matching `wss`/`ws`.
    pub base_url: Url,
    pub api_key: Secret,
    /// `saaras:v3` or `saaras:v4`.
    pub model: String,
    /// `transcribe`, `translate`, `verbatim`, `translit` or `codemix`.
    pub mode: String,
    /// For one REST request; for the WebSocket, for connecting and from the end of the turn to
    /// the transcript.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

struct SttOptions {
    model: String,
    mode: String,
    streaming: bool,
}

fn read_stt(options: &Options) -> (SttOptions, Reader<'_>) {
    let mut reader = Reader::new(NAME, options);
    let model = reader.string("model", STT_MODELS[0]);
    if RETIRED_STT_MODELS.contains(&model.as_str()) {
        reader.problem(
            "model",
            format!("`{model}` is retired from Sarvam's speech-to-text; use {}", STT_MODELS.join(" or ")),
        );
    } else if !STT_MODELS.contains(&model.as_str()) {
        reader.problem("model", format!("`{}` is not one of {}", model.escape_debug(), STT_MODELS.join(", ")));
    }
    let mode = reader.choice("mode", STT_MODES[0], STT_MODES);
    let streaming = reader.flag("streaming", true);
    (SttOptions { model, mode, streaming }, reader)
}

struct SarvamStt;

impl SttProvider for SarvamStt {
    fn resolve(&self, options: &Options) -> Result<Options, Vec<String>> {
        read_stt(options).1.finish()
    }

    fn languages(&self, _options: &Options) -> Vec<&'static str> {
        STT_LANGUAGES.to_vec()
    }

    fn model(&self, options: &Options) -> String {
        read_stt(options).0.model
    }

    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn SpeechToText>, String> {
        let (options, _) = read_stt(options);
        let config = SttConfig {
            base_url: access.base_url.clone(),
            api_key: access.key.clone(),
            model: options.model,
            mode: options.mode,
            timeout: access.timeout,
            retry: access.retry.clone(),
        };
        Ok(if options.streaming {
            Arc::new(stt_ws::SarvamStreaming::new(config))
        } else {
            Arc::new(stt_rest::transcriber(config, access.http.clone()))
        })
    }

    /// About ₹30 an hour of audio for saaras, converted at ₹85 to the dollar.
    fn default_price(&self, model: &str) -> Option<Price> {
        STT_MODELS.contains(&model).then_some(Price::UsdPerMinute(0.0059))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TtsConfig {
    /// `https://api.sarvam.ai` or a proxy or mock; the WebSocket uses the matching `wss`/`ws`.
    pub base_url: Url,
    pub api_key: Secret,
    /// The rate audio is asked for (8000, 16000, 22050 or 24000 for every model and transport).
    pub sample_rate: u32,
    /// Per request over REST; over the WebSocket, for connecting and between two messages.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub voice: VoiceSettings,
}

/// How bulbul speaks, from the profile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VoiceSettings {
    pub model: String,
    pub pace: f64,
    /// bulbul:v2 only.
    pub pitch: f64,
    /// bulbul:v2 only.
    pub loudness: f64,
}

impl VoiceSettings {
    /// Whether the model takes the bulbul:v2-only fields (pitch, loudness, preprocessing switch).
    fn is_v2(&self) -> bool {
        self.model == catalog::V2
    }
}

struct TtsOptions {
    voice: VoiceSettings,
    streaming: bool,
}

/// `model` is the one the profile's voice belongs to when it names none.
fn read_tts<'a>(options: &'a Options, model: &str) -> (TtsOptions, Reader<'a>) {
    let mut reader = Reader::new(NAME, options);
    let model = reader.choice("model", model, catalog::MODELS);
    let v2 = model == catalog::V2;
    let pace = reader.number("pace", 1.0, if v2 { (0.3, 3.0) } else { (0.5, 2.0) });
    let pitch = reader.number("pitch", 0.0, (-0.75, 0.75));
    let loudness = reader.number("loudness", 1.0, (0.3, 3.0));
    if !v2 && (pitch != 0.0 || loudness != 1.0) {
        reader.problem(
            if pitch != 0.0 { "pitch" } else { "loudness" },
            format!("only bulbul:v2 takes pitch and loudness; {model} ignores them"),
        );
    }
    let streaming = reader.flag("streaming", true);
    (TtsOptions { voice: VoiceSettings { model, pace, pitch, loudness }, streaming }, reader)
}

fn model_option(options: &Options) -> String {
    options.get("model").and_then(|m| m.as_str()).unwrap_or(catalog::DEFAULT_MODEL).to_owned()
}

struct SarvamTts;

impl TtsProvider for SarvamTts {
    fn resolve(
        &self,
        options: &Options,
        voice: Option<&str>,
        language: &str,
        fallback_voice: &str,
    ) -> Result<(Options, String), Vec<String>> {
        // The model the voice belongs to, unless the profile names one: voices name their model.
        let written_model = options.get("model").and_then(|m| m.as_str());
        let model = written_model
            .or_else(|| voice.and_then(catalog::model_of))
            .or_else(|| (voice.is_none()).then(|| catalog::model_of(fallback_voice)).flatten())
            .unwrap_or(catalog::DEFAULT_MODEL);
        let (read, mut reader) = read_tts(options, model);
        let model = &read.voice.model;
        let offered = catalog::voice_ids(model, language);
        let voice = match voice {
            Some(voice) if offered.contains(&voice) => voice.to_owned(),
            Some(voice) => {
                let why = match catalog::model_of(voice) {
                    Some(other) => format!("`{voice}` is a {other} voice; {model} offers {}", offered.join(", ")),
                    None if offered.is_empty() => format!("{model} has no voice for {language}"),
                    None => format!(
                        "`{}` is not a {model} voice for {language}; use one of {}",
                        voice.escape_debug(),
                        offered.join(", ")
                    ),
                };
                reader.problem("voice", why);
                voice.to_owned()
            }
            None if offered.contains(&fallback_voice) => fallback_voice.to_owned(),
            None => match offered.first() {
                Some(first) => (*first).to_owned(),
                None => {
                    reader.problem("voice", format!("{model} has no voice for {language}"));
                    String::new()
                }
            },
        };
        reader.finish().map(|options| (options, voice))
    }

    fn languages(&self, options: &Options) -> Vec<&'static str> {
        catalog::languages(&model_option(options))
    }

    fn voices(&self, options: &Options, language: &str) -> Vec<Voice> {
        catalog::voices(&model_option(options), language)
    }

    fn knows_voice(&self, language: &str, voice: &str) -> bool {
        catalog::model_of(voice).is_some_and(|model| catalog::voice_ids(model, language).contains(&voice))
    }

    fn all_voice_names(&self, language: &str) -> String {
        let all: Vec<String> = catalog::MODELS
            .iter()
            .map(|model| format!("{model}: {}", catalog::voice_ids(model, language).join(", ")))
            .collect();
        all.join("; ")
    }

    fn model(&self, options: &Options) -> String {
        model_option(options)
    }

    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn TextToSpeech>, String> {
        let (options, _) = read_tts(options, &model_option(options));
        let config = TtsConfig {
            base_url: access.base_url.clone(),
            api_key: access.key.clone(),
            sample_rate: SAMPLE_RATE,
            timeout: access.timeout,
            retry: access.retry.clone(),
            voice: options.voice,
        };
        Ok(if options.streaming {
            Arc::new(tts_ws::SarvamStreaming::new(config))
        } else {
            Arc::new(tts_rest::SarvamRest::new(config, access.http.clone()))
        })
    }

    /// About ₹15 (bulbul:v2) and ₹30 (v3, v4-flash) per 10,000 characters, at ₹85 to the dollar.
    fn default_price(&self, model: &str) -> Option<Price> {
        match model {
            catalog::V2 => Some(Price::UsdPerMillionCharacters(17.65)),
            catalog::V3 | catalog::V4_FLASH => Some(Price::UsdPerMillionCharacters(35.29)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn options(value: Value) -> Options {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn retired_speech_models_are_refused_naming_the_current_ones() {
        for retired in ["saarika:v2.5", "saaras:v2.5"] {
            let problems = SarvamStt.resolve(&options(json!({"model": retired}))).expect_err("retired");
            assert_eq!(
                problems,
                [format!("model: `{retired}` is retired from Sarvam's speech-to-text; use saaras:v3 or saaras:v4")]
            );
        }
        let resolved = SarvamStt.resolve(&options(json!({"model": "saaras:v4"}))).expect("current");
        assert_eq!(Value::Object(resolved), json!({"model": "saaras:v4", "mode": "transcribe", "streaming": true}));
    }

    #[test]
    fn the_voice_names_its_model_and_the_default_is_current() {
        let resolve =
            |written: Value, voice: Option<&str>| SarvamTts.resolve(&options(written), voice, "hi-IN", "shubh");
        let (resolved, voice) = resolve(json!({}), None).expect("defaults");
        assert_eq!((resolved["model"].as_str(), voice.as_str()), (Some("bulbul:v3"), "shubh"));
        let (resolved, _) = resolve(json!({"pace": 0.95}), Some("manisha")).expect("a v2 voice");
        assert_eq!(resolved["model"], "bulbul:v2", "a bulbul:v2 voice keeps bulbul:v2");
        let (resolved, _) = resolve(json!({}), Some("ritu_hi_banking")).expect("a persona");
        assert_eq!(resolved["model"], "bulbul:v4-flash");
        let (_, voice) = resolve(json!({"model": "bulbul:v4-flash"}), None).expect("v4 default voice");
        assert_eq!(voice, "shubh_enhi_ads");
        let problems = resolve(json!({"model": "bulbul:v3"}), Some("arya")).expect_err("a v2 voice on v3");
        assert!(problems[0].starts_with("voice: `arya` is a bulbul:v2 voice; bulbul:v3 offers shubh"), "{problems:?}");
        let problems = resolve(json!({"pitch": 0.2}), None).expect_err("pitch on v3");
        assert!(problems[0].starts_with("pitch: only bulbul:v2"), "{problems:?}");
        let problems = resolve(json!({"model": "bulbul:v9"}), None).expect_err("unknown model");
        assert!(problems[0].contains("bulbul:v2, bulbul:v3, bulbul:v4-flash"), "{problems:?}");
    }
}
