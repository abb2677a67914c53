//! The languages and voices our text-to-speech offers (Sarvam bulbul).
//!
//! Pages offer exactly these, and profiles, config and token requests are checked against them,
//! so a typo in a voice name is refused when it is made instead of failing mid-call.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Language {
    /// BCP-47 code as Sarvam spells it (`od-IN` for Odia, not `or-IN`).
    pub code: &'static str,
    pub name: &'static str,
    pub native_name: &'static str,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Female,
    Male,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Voice {
    pub id: &'static str,
    pub name: &'static str,
    pub gender: Gender,
}

/// The TTS model our profiles use unless they name another, as in the Python system.
pub const DEFAULT_TTS_MODEL: &str = "bulbul:v2";

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

const BULBUL_V2_VOICES: &[Voice] = &[
    Voice { id: "anushka", name: "Anushka", gender: Gender::Female },
    Voice { id: "manisha", name: "Manisha", gender: Gender::Female },
    Voice { id: "vidya", name: "Vidya", gender: Gender::Female },
    Voice { id: "arya", name: "Arya", gender: Gender::Female },
    Voice { id: "abhilash", name: "Abhilash", gender: Gender::Male },
    Voice { id: "karun", name: "Karun", gender: Gender::Male },
    Voice { id: "hitesh", name: "Hitesh", gender: Gender::Male },
];

/// bulbul:v3 rejects v2 voices and vice versa, so each model has its own list.
const BULBUL_V3_VOICES: &[Voice] = &[
    Voice { id: "shubh", name: "Shubh", gender: Gender::Male },
    Voice { id: "aditya", name: "Aditya", gender: Gender::Male },
    Voice { id: "rahul", name: "Rahul", gender: Gender::Male },
    Voice { id: "amit", name: "Amit", gender: Gender::Male },
    Voice { id: "ritu", name: "Ritu", gender: Gender::Female },
    Voice { id: "priya", name: "Priya", gender: Gender::Female },
    Voice { id: "neha", name: "Neha", gender: Gender::Female },
    Voice { id: "pooja", name: "Pooja", gender: Gender::Female },
    Voice { id: "kavya", name: "Kavya", gender: Gender::Female },
];

pub const TTS_MODELS: &[&str] = &["bulbul:v2", "bulbul:v3"];

pub fn language(code: &str) -> Option<&'static Language> {
    LANGUAGES.iter().find(|language| language.code == code)
}

/// The voices a model speaks a language with; empty for an unknown model or language.
/// Every bulbul voice speaks every supported language.
pub fn voices(model: &str, language_code: &str) -> &'static [Voice] {
    if language(language_code).is_none() {
        return &[];
    }
    match model {
        "bulbul:v2" => BULBUL_V2_VOICES,
        "bulbul:v3" | "bulbul:v3-beta" => BULBUL_V3_VOICES,
        _ => &[],
    }
}

pub fn offers_voice(model: &str, language_code: &str, voice: &str) -> bool {
    voices(model, language_code).iter().any(|offered| offered.id == voice)
}

/// A readable list for error messages, e.g. "anushka, manisha, ...".
pub fn voice_names(model: &str, language_code: &str) -> String {
    let names: Vec<_> = voices(model, language_code).iter().map(|voice| voice.id).collect();
    names.join(", ")
}

pub fn language_codes() -> String {
    let codes: Vec<_> = LANGUAGES.iter().map(|language| language.code).collect();
    codes.join(", ")
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
    fn voices_belong_to_their_model() {
        assert!(offers_voice("bulbul:v2", "hi-IN", "arya"));
        assert!(!offers_voice("bulbul:v3", "hi-IN", "arya"));
        assert!(offers_voice("bulbul:v3", "ta-IN", "shubh"));
        assert!(!offers_voice("bulbul:v2", "xx-YY", "arya"));
        assert!(!offers_voice("bulbul:v9", "hi-IN", "arya"));
    }
}
