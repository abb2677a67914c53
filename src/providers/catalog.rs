//! The languages and voices calls may use, as the profile's providers offer them.
//!
//! Pages offer exactly these, and profiles, settings and token requests are checked against
//! them, so a typo in a voice name is refused when it is made instead of failing mid-call. Each
//! provider owns its own list (see [`super::registry`]); this module answers questions about a
//! profile's providers without knowing which they are.

use serde::Serialize;

use super::registry::{self, Kind, ProviderSetup};

/// A language calls may be held in, as pages show it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Language {
    /// BCP-47 code as the product spells it (`od-IN` for Odia, as Sarvam does, not `or-IN`).
    pub code: &'static str,
    /// The English name.
    pub name: &'static str,
    /// The name in the language itself, in its own script.
    pub native_name: &'static str,
}

/// How a voice sounds, as its provider describes it; pages group voices by it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    /// A female voice.
    Female,
    /// A male voice.
    Male,
    /// Neither, or the provider does not say.
    Neutral,
}

/// A voice a text-to-speech provider offers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Voice {
    /// The id profiles and requests use (`shubh`, `alloy`, an ElevenLabs voice id).
    pub id: String,
    /// The name pages show.
    pub name: String,
    /// How it sounds.
    pub gender: Gender,
}

impl Voice {
    /// A voice entry for a provider's list.
    pub fn new(id: impl Into<String>, name: impl Into<String>, gender: Gender) -> Self {
        Self { id: id.into(), name: name.into(), gender }
    }
}

/// Every language any provider may serve; a provider says which of these it takes.
pub const LANGUAGES: &[Language] = &[
    Language { code: "hi-IN", name: "Hindi", native_name: "हिन्दी" },
    Language { code: "en-IN", name: "English (India)", native_name: "English" },
    Language { code: "bn-IN", name: "Bengali", native_name: "বাংলা" },
    Language { code: "ta-IN", name: "Tamil", native_name: "தமிழ்" },
    Language { code: "te-IN", name: "Telugu", native_name: "తెలుగు" },
    Language { code: "mr-IN", name: "Marathi", native_name: "मराठी" },
    Language { code: "gu-IN", name: "Gujarati", native_name: "ગુજરાતી" },
    Language { code: "kn-IN", name: "Kannada", native_name: "ಕನ್ನಡ" },
    Language { code: "ml-IN", name: "Malayalam", native_name: "മലയാളം" },
    Language { code: "pa-IN", name: "Punjabi", native_name: "ਪੰਜਾਬੀ" },
    Language { code: "od-IN", name: "Odia", native_name: "ଓଡ଼ିଆ" },
];

/// The language with this exact code, if any provider may serve it.
pub fn language(code: &str) -> Option<&'static Language> {
    LANGUAGES.iter().find(|language| language.code == code)
}

/// Every code, comma-separated, for error messages.
pub fn language_codes() -> String {
    let codes: Vec<_> = LANGUAGES.iter().map(|language| language.code).collect();
    codes.join(", ")
}

/// The languages a call with these providers can be held in: every provider of both chains
/// must take it, since any of them may serve the call.
pub fn languages(stt: &[ProviderSetup], tts: &[ProviderSetup]) -> Vec<&'static Language> {
    LANGUAGES.iter().filter(|language| supports(stt, tts, language.code)).collect()
}

/// Whether every provider of both chains takes `language`.
pub fn supports(stt: &[ProviderSetup], tts: &[ProviderSetup], language: &str) -> bool {
    stt.iter().all(|setup| registry::languages(Kind::Stt, setup).contains(&language))
        && tts.iter().all(|setup| registry::languages(Kind::Tts, setup).contains(&language))
}

/// The voices `tts` (the first provider of a profile's chain) speaks `language` with.
pub fn voices(tts: &ProviderSetup, language: &str) -> Vec<Voice> {
    registry::tts(&tts.provider).map(|provider| provider.voices(&tts.options, language)).unwrap_or_default()
}

/// Whether `voice` may be asked of `tts` in `language`: one of its voices, or (for providers
/// whose accounts hold their own voices) a well-formed id of one.
pub fn offers_voice(tts: &ProviderSetup, language: &str, voice: &str) -> bool {
    registry::tts(&tts.provider).is_some_and(|provider| provider.accepts_voice(&tts.options, language, voice))
}

/// A readable list for error messages, e.g. "shubh, aditya, ...".
pub fn voice_names(tts: &ProviderSetup, language: &str) -> String {
    let names: Vec<_> = voices(tts, language).into_iter().map(|voice| voice.id).collect();
    if names.is_empty() { "none (no voice for this language)".to_owned() } else { names.join(", ") }
}

/// The voice a call uses when neither the caller nor the profile names one that `tts` offers.
pub fn default_voice(tts: &ProviderSetup, language: &str) -> Option<String> {
    voices(tts, language).into_iter().next().map(|voice| voice.id)
}

/// Checks `DEFAULT_VOICE` for `DEFAULT_LANGUAGE`: it must be a voice of the default
/// text-to-speech provider (any of its models, since a profile may pick the model).
pub fn check_default_voice(language: &str, voice: &str) -> Result<(), String> {
    if self::language(language).is_none() {
        return Err(format!("`{language}` is not a supported language; use one of {}", language_codes()));
    }
    let provider = registry::default_provider(Kind::Tts);
    let tts = registry::tts(provider).expect("the default text-to-speech provider is registered");
    if tts.knows_voice(language, voice) {
        return Ok(());
    }
    Err(format!("`{voice}` is not a {provider} voice for {language}; use one of {}", tts.all_voice_names(language)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_the_python_systems_languages_plus_english() {
        for code in ["hi-IN", "ta-IN", "te-IN", "bn-IN", "mr-IN", "gu-IN", "kn-IN", "ml-IN", "pa-IN", "od-IN", "en-IN"]
        {
            assert!(language(code).is_some(), "{code} missing");
        }
    }

    #[test]
    fn the_default_voice_must_belong_to_the_default_provider() {
        assert!(check_default_voice("hi-IN", "shubh").is_ok());
        assert!(check_default_voice("hi-IN", "arya").is_ok(), "a bulbul:v2 voice picks bulbul:v2");
        let why = check_default_voice("hi-IN", "alloy").expect_err("an OpenAI voice");
        assert!(why.contains("shubh") && why.contains("anushka"), "{why}");
        assert!(check_default_voice("fr-FR", "shubh").is_err());
    }
}
