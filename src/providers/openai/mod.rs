//! OpenAI (`https://api.openai.com/v1`): chat models, transcription (`/audio/transcriptions`)
//! and speech (`/audio/speech`, raw PCM streamed), as its official SDK (`openai` on PyPI)
//! types them (providers.md §2, §3).

mod speech;
mod transcribe;

use std::sync::Arc;

use super::catalog::{Gender, Voice};
use super::http::Auth;
use super::llm::compatible::CompatibleChat;
use super::options::Reader;
use super::registry::{Access, Account, ChatProvider, Options, SttProvider, TtsProvider, Vendor};
use super::stt::SpeechToText;
use super::tts::TextToSpeech;
use super::usage::Price;

pub(crate) const NAME: &str = "openai";
const PROVIDER: &str = NAME;
const AUTH: Auth = Auth::Bearer;

pub(crate) struct OpenAi;

static CHAT: CompatibleChat = CompatibleChat {
    name: NAME,
    default_model: "gpt-4.1-mini",
    retired: &[("gpt-4-32k", "gpt-4.1"), ("gpt-3.5-turbo-0613", "gpt-4.1-mini"), ("gpt-4-vision-preview", "gpt-4.1")],
    efforts: &["minimal", "low", "medium", "high"],
    default_effort: |model| model.starts_with("gpt-5").then_some("minimal"),
    prices: &[
        ("gpt-4.1-mini", 0.40, 1.60),
        ("gpt-4.1-nano", 0.10, 0.40),
        ("gpt-4.1", 2.00, 8.00),
        ("gpt-4o-mini", 0.15, 0.60),
        ("gpt-4o", 2.50, 10.00),
        ("gpt-5-mini", 0.25, 2.00),
        ("gpt-5-nano", 0.05, 0.40),
        ("gpt-5", 1.25, 10.00),
    ],
};

impl Vendor for OpenAi {
    fn name(&self) -> &'static str {
        NAME
    }

    fn account(&self) -> Account {
        Account {
            key_setting: "OPENAI_API_KEY",
            key_doc: "OpenAI API key; required when a profile that can be dispatched uses openai (chat, transcription or speech).",
            base_url_setting: "OPENAI_BASE_URL",
            default_base_url: "https://api.openai.com/v1",
            base_url_doc: "OpenAI endpoint (or any OpenAI-compatible server).",
        }
    }

    fn stt(&self) -> Option<&dyn SttProvider> {
        Some(&Transcription)
    }

    fn chat(&self) -> Option<&dyn ChatProvider> {
        Some(&CHAT)
    }

    fn tts(&self) -> Option<&dyn TtsProvider> {
        Some(&Speech)
    }
}

/// Our languages as the ISO-639-1 codes OpenAI takes; Whisper has no Odia.
const LANGUAGES: &[(&str, &str)] = &[
    ("hi-IN", "hi"),
    ("en-IN", "en"),
    ("bn-IN", "bn"),
    ("ta-IN", "ta"),
    ("te-IN", "te"),
    ("mr-IN", "mr"),
    ("gu-IN", "gu"),
    ("kn-IN", "kn"),
    ("ml-IN", "ml"),
    ("pa-IN", "pa"),
];

fn iso_639_1(language: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(ours, _)| *ours == language).map(|(_, theirs)| *theirs)
}

const STT_MODELS: &[&str] = &["gpt-4o-mini-transcribe", "gpt-4o-transcribe", "whisper-1"];

#[derive(Debug, Clone)]
struct SttOptions {
    model: String,
    /// Words to expect (names, products), given to the model as context.
    prompt: Option<String>,
}

fn read_stt(options: &Options) -> (SttOptions, Reader<'_>) {
    let mut reader = Reader::new(NAME, options);
    let model = reader.choice("model", STT_MODELS[0], STT_MODELS);
    let prompt = reader.optional("prompt");
    (SttOptions { model, prompt }, reader)
}

struct Transcription;

impl SttProvider for Transcription {
    fn resolve(&self, options: &Options) -> Result<Options, Vec<String>> {
        read_stt(options).1.finish()
    }

    fn languages(&self, _options: &Options) -> Vec<&'static str> {
        LANGUAGES.iter().map(|(ours, _)| *ours).collect()
    }

    fn model(&self, options: &Options) -> String {
        read_stt(options).0.model
    }

    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn SpeechToText>, String> {
        Ok(Arc::new(transcribe::transcriber(access.clone(), read_stt(options).0)))
    }

    fn default_price(&self, model: &str) -> Option<Price> {
        match model {
            "gpt-4o-mini-transcribe" => Some(Price::UsdPerMinute(0.003)),
            "gpt-4o-transcribe" | "whisper-1" => Some(Price::UsdPerMinute(0.006)),
            _ => None,
        }
    }
}

const TTS_MODELS: &[&str] = &["gpt-4o-mini-tts", "tts-1", "tts-1-hd"];

/// The built-in voices, the default first; the last four only for gpt-4o-mini-tts.
const VOICES: &[(&str, Gender)] = &[
    ("coral", Gender::Female),
    ("alloy", Gender::Neutral),
    ("ash", Gender::Male),
    ("echo", Gender::Male),
    ("fable", Gender::Male),
    ("nova", Gender::Female),
    ("onyx", Gender::Male),
    ("sage", Gender::Female),
    ("shimmer", Gender::Female),
    ("ballad", Gender::Male),
    ("verse", Gender::Male),
    ("marin", Gender::Female),
    ("cedar", Gender::Male),
];
const TTS_1_VOICES: usize = 9;

#[derive(Debug, Clone)]
struct TtsOptions {
    model: String,
    speed: f64,
    /// How to speak (accent, tone); gpt-4o-mini-tts only.
    instructions: Option<String>,
}

fn read_tts(options: &Options) -> (TtsOptions, Reader<'_>) {
    let mut reader = Reader::new(NAME, options);
    let model = reader.choice("model", TTS_MODELS[0], TTS_MODELS);
    let speed = reader.number("speed", 1.0, (0.25, 4.0));
    let instructions = reader.optional("instructions");
    if instructions.is_some() && model != TTS_MODELS[0] {
        reader.problem("instructions", format!("only gpt-4o-mini-tts takes instructions; {model} does not"));
    }
    (TtsOptions { model, speed, instructions }, reader)
}

fn voices_of(model: &str) -> &'static [(&'static str, Gender)] {
    if model == TTS_MODELS[0] { VOICES } else { &VOICES[..TTS_1_VOICES] }
}

struct Speech;

impl TtsProvider for Speech {
    fn resolve(
        &self,
        options: &Options,
        voice: Option<&str>,
        _language: &str,
        fallback_voice: &str,
    ) -> Result<(Options, String), Vec<String>> {
        let (read, mut reader) = read_tts(options);
        let offered = voices_of(&read.model);
        let names = || offered.iter().map(|(id, _)| *id).collect::<Vec<_>>().join(", ");
        let voice = match voice {
            Some(voice) if offered.iter().any(|(id, _)| *id == voice) => voice.to_owned(),
            Some(voice) => {
                reader.problem(
                    "voice",
                    format!("`{}` is not a {} voice; use one of {}", voice.escape_debug(), read.model, names()),
                );
                voice.to_owned()
            }
            None if offered.iter().any(|(id, _)| *id == fallback_voice) => fallback_voice.to_owned(),
            None => offered[0].0.to_owned(),
        };
        reader.finish().map(|options| (options, voice))
    }

    fn languages(&self, _options: &Options) -> Vec<&'static str> {
        LANGUAGES.iter().map(|(ours, _)| *ours).collect()
    }

    fn voices(&self, options: &Options, language: &str) -> Vec<Voice> {
        if iso_639_1(language).is_none() {
            return Vec::new();
        }
        let model = read_tts(options).0.model;
        voices_of(&model).iter().map(|(id, gender)| Voice::new(*id, capitalised(id), *gender)).collect()
    }

    fn knows_voice(&self, language: &str, voice: &str) -> bool {
        iso_639_1(language).is_some() && VOICES.iter().any(|(id, _)| *id == voice)
    }

    fn all_voice_names(&self, _language: &str) -> String {
        VOICES.iter().map(|(id, _)| *id).collect::<Vec<_>>().join(", ")
    }

    fn model(&self, options: &Options) -> String {
        read_tts(options).0.model
    }

    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn TextToSpeech>, String> {
        Ok(Arc::new(speech::Speaker::new(access.clone(), read_tts(options).0)))
    }

    /// tts-1 and tts-1-hd are priced per character; gpt-4o-mini-tts per token, which OpenAI
    /// estimates at $0.015 a minute of speech, about $15 per million characters.
    fn default_price(&self, model: &str) -> Option<Price> {
        match model {
            "gpt-4o-mini-tts" | "tts-1" => Some(Price::UsdPerMillionCharacters(15.0)),
            "tts-1-hd" => Some(Price::UsdPerMillionCharacters(30.0)),
            _ => None,
        }
    }
}

fn capitalised(id: &str) -> String {
    id.chars().take(1).flat_map(char::to_uppercase).chain(id.chars().skip(1)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn speech_options_and_voices_are_checked_per_model() {
        let options = |value: Value| value.as_object().cloned().expect("an object");
        let (resolved, voice) = Speech.resolve(&options(json!({})), None, "hi-IN", "shubh").expect("defaults");
        assert_eq!((resolved["model"].as_str(), voice.as_str()), (Some("gpt-4o-mini-tts"), "coral"));
        let problems = Speech
            .resolve(&options(json!({"model": "tts-1", "instructions": "warm"})), Some("marin"), "hi-IN", "")
            .expect_err("marin and instructions are gpt-4o-mini-tts only");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(Speech.voices(&options(json!({})), "od-IN").is_empty(), "no Odia");
        assert_eq!(iso_639_1("hi-IN"), Some("hi"));
    }
}
