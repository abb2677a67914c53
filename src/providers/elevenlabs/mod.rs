//! ElevenLabs (`https://api.elevenlabs.io`): text-to-speech over the input-streaming WebSocket
//! (`/v1/text-to-speech/{voice_id}/stream-input`), as its official SDK (`elevenlabs` on
//! PyPI) types it (providers.md §5).

mod stream_input;

use std::sync::Arc;

use super::catalog::{Gender, Voice};
use super::http::Auth;
use super::options::Reader;
use super::registry::{Access, Account, Options, TtsProvider, Vendor};
use super::tts::TextToSpeech;
use super::usage::Price;

pub(crate) const NAME: &str = "elevenlabs";
const PROVIDER: &str = NAME;
const AUTH: Auth = Auth::Header("xi-api-key");

/// Flash is the fastest (about 75 ms of model latency); multilingual v2 the most expressive.
const MODELS: &[&str] = &["eleven_flash_v2_5", "eleven_multilingual_v2", "eleven_turbo_v2_5"];

/// Our languages as the codes ElevenLabs takes; every model here speaks all three.
const LANGUAGES: &[(&str, &str)] = &[("hi-IN", "hi"), ("en-IN", "en"), ("ta-IN", "ta")];

/// The premade voices every account has, the default first; each speaks every language of the
/// multilingual models. Accounts may hold more (cloned, from the library), named by id.
const VOICES: &[(&str, &str, Gender)] = &[
    ("21m00Tcm4TlvDq8ikWAM", "Rachel", Gender::Female),
    ("EXAVITQu4vr4xnSDxMaL", "Sarah", Gender::Female),
    ("FGY2WhTYpPnrIDTdsKH5", "Laura", Gender::Female),
    ("Xb7hH8MSUJpSbSDYk0k2", "Alice", Gender::Female),
    ("XrExE9yKIg1WjnnlVkGX", "Matilda", Gender::Female),
    ("cgSgspJ2msm6clMCkdW9", "Jessica", Gender::Female),
    ("pFZP5JQG7iQjIQuC4Bku", "Lily", Gender::Female),
    ("SAz9YHcvj6GT2YYXdXww", "River", Gender::Neutral),
    ("IKne3meq5aSn9XLyUdCD", "Charlie", Gender::Male),
    ("JBFqnCBsd6RMkjVDRZzb", "George", Gender::Male),
    ("N2lVS1w4EtoT3dr4eOWO", "Callum", Gender::Male),
    ("TX3LPaxmHKxFdv7VOQHJ", "Liam", Gender::Male),
    ("bIHbv24MWmeRgasZH58o", "Will", Gender::Male),
    ("cjVigY5qzO86Huf0OWal", "Eric", Gender::Male),
    ("iP95p4xoKVk53GoZ742B", "Chris", Gender::Male),
    ("nPczCjzI2devNBz1zQrb", "Brian", Gender::Male),
    ("onwK4e9ZLuTAKqWW03F9", "Daniel", Gender::Male),
    ("pqHfZKP75CvOlQylNhV4", "Bill", Gender::Male),
];

pub(crate) struct ElevenLabs;

impl Vendor for ElevenLabs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn account(&self) -> Account {
        Account {
            key_setting: "ELEVENLABS_API_KEY",
            key_doc: "ElevenLabs API key; required when a profile that can be dispatched uses elevenlabs.",
            base_url_setting: "ELEVENLABS_BASE_URL",
            default_base_url: "https://api.elevenlabs.io",
            base_url_doc: "ElevenLabs endpoint; streaming uses the matching wss:// URL.",
        }
    }

    fn tts(&self) -> Option<&dyn TtsProvider> {
        Some(&StreamInput)
    }
}

#[derive(Debug, Clone)]
struct StreamOptions {
    model: String,
    stability: f64,
    similarity_boost: f64,
    speed: f64,
}

fn read(options: &Options) -> (StreamOptions, Reader<'_>) {
    let mut reader = Reader::new(NAME, options);
    let model = reader.choice("model", MODELS[0], MODELS);
    let stability = reader.number("stability", 0.5, (0.0, 1.0));
    let similarity_boost = reader.number("similarity_boost", 0.75, (0.0, 1.0));
    let speed = reader.number("speed", 1.0, (0.7, 1.2));
    (StreamOptions { model, stability, similarity_boost, speed }, reader)
}

/// A voice id as ElevenLabs makes them: 20 letters and digits.
fn well_formed(voice: &str) -> bool {
    voice.len() == 20 && voice.chars().all(|c| c.is_ascii_alphanumeric())
}

fn language_code(language: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(ours, _)| *ours == language).map(|(_, theirs)| *theirs)
}

struct StreamInput;

impl TtsProvider for StreamInput {
    fn resolve(
        &self,
        options: &Options,
        voice: Option<&str>,
        _language: &str,
        fallback_voice: &str,
    ) -> Result<(Options, String), Vec<String>> {
        let (_, mut reader) = read(options);
        let voice = match voice {
            Some(voice) if well_formed(voice) => voice.to_owned(),
            Some(voice) => {
                let names: Vec<String> = VOICES.iter().map(|(id, name, _)| format!("{id} ({name})")).collect();
                let why = format!(
                    "`{}` is not an ElevenLabs voice id (20 letters and digits); premade voices are {}",
                    voice.escape_debug(),
                    names.join(", ")
                );
                reader.problem("voice", why);
                voice.to_owned()
            }
            None if well_formed(fallback_voice) => fallback_voice.to_owned(),
            None => VOICES[0].0.to_owned(),
        };
        reader.finish().map(|options| (options, voice))
    }

    fn languages(&self, _options: &Options) -> Vec<&'static str> {
        LANGUAGES.iter().map(|(ours, _)| *ours).collect()
    }

    fn voices(&self, _options: &Options, language: &str) -> Vec<Voice> {
        if language_code(language).is_none() {
            return Vec::new();
        }
        VOICES.iter().map(|(id, name, gender)| Voice::new(*id, *name, *gender)).collect()
    }

    fn accepts_voice(&self, _options: &Options, language: &str, voice: &str) -> bool {
        language_code(language).is_some() && well_formed(voice)
    }

    fn knows_voice(&self, language: &str, voice: &str) -> bool {
        language_code(language).is_some() && VOICES.iter().any(|(id, _, _)| *id == voice)
    }

    fn all_voice_names(&self, _language: &str) -> String {
        VOICES.iter().map(|(id, name, _)| format!("{id} ({name})")).collect::<Vec<_>>().join(", ")
    }

    fn model(&self, options: &Options) -> String {
        read(options).0.model
    }

    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn TextToSpeech>, String> {
        Ok(Arc::new(stream_input::StreamingVoice::new(access.clone(), read(options).0)))
    }

    /// Per-character API prices: flash and turbo at half a credit a character.
    fn default_price(&self, model: &str) -> Option<Price> {
        match model {
            "eleven_flash_v2_5" | "eleven_turbo_v2_5" => Some(Price::UsdPerMillionCharacters(50.0)),
            "eleven_multilingual_v2" => Some(Price::UsdPerMillionCharacters(100.0)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn voices_are_ids_and_the_premade_ones_are_offered() {
        let options = json!({}).as_object().cloned().expect("an object");
        let (_, voice) = StreamInput.resolve(&options, None, "hi-IN", "shubh").expect("defaults");
        assert_eq!(voice, "21m00Tcm4TlvDq8ikWAM");
        let custom = "AbCdEfGhIjKlMnOpQrSt";
        assert!(StreamInput.resolve(&options, Some(custom), "hi-IN", "").is_ok(), "an account's own voice");
        let problems = StreamInput.resolve(&options, Some("Rachel"), "hi-IN", "").expect_err("a name, not an id");
        assert!(problems[0].contains("21m00Tcm4TlvDq8ikWAM (Rachel)"), "{problems:?}");
        assert!(StreamInput.accepts_voice(&options, "hi-IN", custom));
        assert!(StreamInput.voices(&options, "bn-IN").is_empty());
    }
}
