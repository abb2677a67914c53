//! Every provider the product can use, by kind (speech-to-text, chat, text-to-speech) and name.
//!
//! A vendor (an account with a key and an endpoint: Sarvam, Groq, OpenAI, Deepgram,
//! ElevenLabs) offers one provider per kind it serves. Each provider checks its own options
//! (the `stt`, `llm` and `tts` sections of a profile), owns its catalog (models, voices,
//! languages) and builds its clients, so nothing outside `providers/` knows any of them by
//! name: adding one means a module here and a line in `VENDORS`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use super::RetryPolicy;
use super::catalog::Voice;
use super::llm::ChatModel;
use super::stt::SpeechToText;
use super::tts::TextToSpeech;
use super::usage::Price;
use super::{deepgram, elevenlabs, groq, openai, sarvam};
use crate::config::Secret;

/// A provider's options as a profile writes them (JSON or TOML), and once checked, complete with
/// their defaults.
pub type Options = Map<String, Value>;

/// What a provider does; serialized as `stt`, `llm`, `tts` (in records' usage lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Speech-to-text.
    Stt,
    /// Chat models.
    Llm,
    /// Text-to-speech.
    Tts,
}

impl Kind {
    /// The profile section naming providers of this kind.
    pub fn section(self) -> &'static str {
        match self {
            Self::Stt => "stt",
            Self::Llm => "llm",
            Self::Tts => "tts",
        }
    }

    /// The kind in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Stt => "speech-to-text",
            Self::Llm => "chat",
            Self::Tts => "text-to-speech",
        }
    }
}

/// One provider of a profile's chain for a kind, with its checked options.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSetup {
    /// The registry name (`sarvam`, `openai`...).
    pub provider: String,
    /// Complete: every option the provider takes, defaults filled in.
    pub options: Options,
    /// For a text-to-speech provider after the first: the voice it speaks with when it stands
    /// in (the first speaks the call's voice).
    pub voice: Option<String>,
    /// The profile's own price for this provider's model, over the settings' and the defaults.
    pub price: Option<Price>,
}

impl Serialize for ProviderSetup {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = Map::new();
        map.insert("provider".into(), Value::String(self.provider.clone()));
        map.extend(self.options.clone());
        if let Some(voice) = &self.voice {
            map.insert("voice".into(), Value::String(voice.clone()));
        }
        if let Some(price) = &self.price {
            map.insert("price".into(), price.to_value());
        }
        map.serialize(serializer)
    }
}

/// The settings of a vendor's account: its key and its endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Account {
    pub key_setting: &'static str,
    pub key_doc: &'static str,
    pub base_url_setting: &'static str,
    pub default_base_url: &'static str,
    pub base_url_doc: &'static str,
}

/// What a provider's clients are built with.
#[derive(Debug, Clone)]
pub struct Access {
    /// The vendor's API key.
    pub key: Secret,
    /// The vendor's API root (its setting, or the vendor's default).
    pub base_url: Url,
    /// Shared by every call, so HTTP connections are reused.
    pub http: reqwest::Client,
    /// Each request gets this long before it counts as failed (and is retried).
    pub timeout: Duration,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
}

pub(crate) trait Vendor: Sync {
    /// The name profiles use (`stt.provider = "deepgram"`).
    fn name(&self) -> &'static str;
    fn account(&self) -> Account;
    fn stt(&self) -> Option<&dyn SttProvider> {
        None
    }
    fn chat(&self) -> Option<&dyn ChatProvider> {
        None
    }
    fn tts(&self) -> Option<&dyn TtsProvider> {
        None
    }
}

/// A speech-to-text provider of the registry: checks a profile's options and builds clients.
pub trait SttProvider: Sync {
    /// Checks options as written and returns them complete; each problem starts with the
    /// option's name (`model: ...`).
    fn resolve(&self, options: &Options) -> Result<Options, Vec<String>>;
    /// The language codes (of [`super::catalog::LANGUAGES`]) it transcribes with these options.
    fn languages(&self, options: &Options) -> Vec<&'static str>;
    /// The model usage and prices are counted under.
    fn model(&self, options: &Options) -> String;
    /// A client with these (resolved) options; the error names what is missing.
    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn SpeechToText>, String>;
    /// List price in USD per minute of audio, with the date it was known.
    fn default_price(&self, model: &str) -> Option<Price>;
}

/// A chat provider of the registry: checks a profile's options and builds clients.
pub trait ChatProvider: Sync {
    /// The model used when neither the profile nor `LLM_MODEL` names one.
    fn default_model(&self) -> &'static str;
    /// Checks options as written and returns them complete; `model` is used when they name none.
    fn resolve(&self, options: &Options, model: &str) -> Result<Options, Vec<String>>;
    /// The model usage and prices are counted under.
    fn model(&self, options: &Options) -> String;
    /// A client with these (resolved) options; the error names what is missing.
    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn ChatModel>, String>;
    /// Whether `GET {base}/models` lists the models it serves, so configured models can be
    /// checked at start-up.
    fn lists_models(&self) -> bool;
    /// List prices in USD per million prompt and completion tokens.
    fn default_price(&self, model: &str) -> Option<Price>;
}

/// A text-to-speech provider of the registry: checks options and voices, and builds clients.
pub trait TtsProvider: Sync {
    /// Checks options as written for a profile speaking `language`, whose voice is `voice` when
    /// it names one (`fallback_voice` is the deployment's default voice, used when this
    /// provider offers it); returns the complete options and the voice.
    fn resolve(
        &self,
        options: &Options,
        voice: Option<&str>,
        language: &str,
        fallback_voice: &str,
    ) -> Result<(Options, String), Vec<String>>;
    /// The language codes (of [`super::catalog::LANGUAGES`]) it speaks with these options.
    fn languages(&self, options: &Options) -> Vec<&'static str>;
    /// The voices offered for `language` with these options, the default first.
    fn voices(&self, options: &Options, language: &str) -> Vec<Voice>;
    /// Whether a call may ask for `voice`; providers whose accounts hold voices of their own
    /// accept any well-formed id.
    fn accepts_voice(&self, options: &Options, language: &str, voice: &str) -> bool {
        self.voices(options, language).iter().any(|offered| offered.id == voice)
    }
    /// Whether `voice` is one of its voices for `language` with any options.
    fn knows_voice(&self, language: &str, voice: &str) -> bool;
    /// Every voice of every model for `language`, for error messages.
    fn all_voice_names(&self, language: &str) -> String;
    /// The model usage and prices are counted under.
    fn model(&self, options: &Options) -> String;
    /// A client with these (resolved) options; the error names what is missing.
    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn TextToSpeech>, String>;
    /// List price in USD per million characters.
    fn default_price(&self, model: &str) -> Option<Price>;
}

/// Every vendor, in the order settings and documentation list them.
pub(crate) const VENDORS: &[&dyn Vendor] =
    &[&sarvam::Sarvam, &groq::Groq, &openai::OpenAi, &deepgram::Deepgram, &elevenlabs::ElevenLabs];

pub(crate) fn vendor(name: &str) -> Option<&'static dyn Vendor> {
    VENDORS.iter().copied().find(|vendor| vendor.name() == name)
}

/// The speech-to-text provider with this registry name.
pub fn stt(name: &str) -> Option<&'static dyn SttProvider> {
    vendor(name)?.stt()
}

/// The chat provider with this registry name.
pub fn chat(name: &str) -> Option<&'static dyn ChatProvider> {
    vendor(name)?.chat()
}

/// The text-to-speech provider with this registry name.
pub fn tts(name: &str) -> Option<&'static dyn TtsProvider> {
    vendor(name)?.tts()
}

/// The names of the providers of `kind`, for error messages: "sarvam, deepgram, openai".
pub fn names(kind: Kind) -> String {
    let names: Vec<_> = VENDORS.iter().filter(|vendor| offers(**vendor, kind)).map(|vendor| vendor.name()).collect();
    names.join(", ")
}

fn offers(vendor: &dyn Vendor, kind: Kind) -> bool {
    match kind {
        Kind::Stt => vendor.stt().is_some(),
        Kind::Llm => vendor.chat().is_some(),
        Kind::Tts => vendor.tts().is_some(),
    }
}

/// Whether a provider of `kind` is called `name`.
pub fn exists(kind: Kind, name: &str) -> bool {
    vendor(name).is_some_and(|vendor| offers(vendor, kind))
}

/// The provider a profile gets when its section names none. Chat's default is a setting
/// (`LLM_PROVIDER`); speech is Sarvam's, the product being made for Indian languages.
pub fn default_provider(kind: Kind) -> &'static str {
    match kind {
        Kind::Stt | Kind::Tts => sarvam::NAME,
        Kind::Llm => groq::NAME,
    }
}

/// The language codes a provider takes with these options; empty for an unknown provider.
pub fn languages(kind: Kind, setup: &ProviderSetup) -> Vec<&'static str> {
    match kind {
        Kind::Stt => stt(&setup.provider).map(|p| p.languages(&setup.options)).unwrap_or_default(),
        Kind::Tts => tts(&setup.provider).map(|p| p.languages(&setup.options)).unwrap_or_default(),
        Kind::Llm => Vec::new(),
    }
}

/// The model a setup's usage is counted under.
pub fn model(kind: Kind, setup: &ProviderSetup) -> String {
    let model = match kind {
        Kind::Stt => stt(&setup.provider).map(|p| p.model(&setup.options)),
        Kind::Llm => chat(&setup.provider).map(|p| p.model(&setup.options)),
        Kind::Tts => tts(&setup.provider).map(|p| p.model(&setup.options)),
    };
    model.unwrap_or_default()
}

/// The list price of a provider's model, when the provider publishes one.
pub fn default_price(kind: Kind, provider: &str, model: &str) -> Option<Price> {
    match kind {
        Kind::Stt => stt(provider)?.default_price(model),
        Kind::Llm => chat(provider)?.default_price(model),
        Kind::Tts => tts(provider)?.default_price(model),
    }
}

/// The setting an operator fixes when a provider refuses the key.
pub fn key_setting(provider: &str) -> Option<&'static str> {
    vendor(provider).map(|vendor| vendor.account().key_setting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_providers_and_a_registered_default() {
        assert_eq!(names(Kind::Stt), "sarvam, openai, deepgram");
        assert_eq!(names(Kind::Llm), "groq, openai");
        assert_eq!(names(Kind::Tts), "sarvam, openai, elevenlabs");
        for kind in [Kind::Stt, Kind::Llm, Kind::Tts] {
            assert!(exists(kind, default_provider(kind)), "{kind:?}");
        }
        assert!(!exists(Kind::Llm, "deepgram"));
    }

    #[test]
    fn each_vendor_has_its_own_settings() {
        let mut settings: Vec<_> = VENDORS
            .iter()
            .flat_map(|vendor| [vendor.account().key_setting, vendor.account().base_url_setting])
            .collect();
        let count = settings.len();
        settings.sort_unstable();
        settings.dedup();
        assert_eq!(settings.len(), count, "no two vendors share a setting");
        assert_eq!(key_setting("elevenlabs"), Some("ELEVENLABS_API_KEY"));
    }
}
