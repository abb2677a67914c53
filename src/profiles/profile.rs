//! What an agent is: its prompt, voice, models and turn-taking, as read from TOML or n8n JSON.
//!
//! A document is parsed strictly (an unknown field is an error naming the field, since a typo
//! would otherwise silently fall back to a default) and then resolved against the deployment's
//! defaults, so the rest of the product only ever sees complete, checked profiles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::analysis::{self, AnalysisOptions};
use super::tools::{self, ToolDef};
use super::variables::{self, DEFAULT_TIME_ZONE};
use crate::config::{LlmProvider, ProfileDefaults};
use crate::providers::tts::catalog;

/// A complete, validated agent profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentProfile {
    pub id: String,
    /// Shown to people choosing an agent and used as the agent participant's name.
    pub name: String,
    pub system_prompt: String,
    /// Said when the caller arrives; empty means the agent waits for the caller to speak.
    pub greeting: String,
    pub language: String,
    pub voice: String,
    pub llm: LlmOptions,
    pub stt: SttOptions,
    pub tts: TtsOptions,
    pub turn: TurnOptions,
    /// What the agent should try to learn from the caller; sent to n8n after the call.
    pub lead_fields: Vec<LeadField>,
    /// Said when a provider fails, so the caller is never left in silence.
    pub apology: String,
    /// Said once while a tool is slow; `None`: a short "one moment" in the call's language.
    pub filler: Option<String>,
    /// How long a tool may run before the filler is said.
    pub filler_after_ms: u32,
    /// Functions answered by webhooks (n8n workflows) during the call.
    pub tools: Vec<ToolDef>,
    /// The IANA time zone of `{{today}}` and `{{now}}` in the prompt and greeting.
    pub time_zone: String,
    /// Values of `{{name}}` placeholders when the call's metadata does not give one.
    pub variables: BTreeMap<String, String>,
    /// What to learn about each call once it is over; `None` for nothing.
    pub analysis: Option<AnalysisOptions>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmOptions {
    pub provider: String,
    pub model: String,
    pub temperature: f32,
    pub max_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttOptions {
    /// Only `sarvam` today.
    pub provider: String,
    /// `saaras:v3` (default), `saaras:v2.5` or `saarika:v2.5`.
    pub model: String,
    /// saaras:v3 only: `transcribe` (default), `translate`, `verbatim`, `translit` or `codemix`.
    pub mode: String,
    /// Stream audio over a WebSocket while the caller speaks (default; the transcript is ready
    /// sooner), or upload each utterance over REST when it ends.
    pub streaming: bool,
}

impl Default for SttOptions {
    fn default() -> Self {
        Self { provider: "sarvam".into(), model: "saaras:v3".into(), mode: "transcribe".into(), streaming: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsOptions {
    /// Only `sarvam` today.
    pub provider: String,
    /// `bulbul:v2` (default) or `bulbul:v3`; each has its own voices.
    pub model: String,
    /// Speaking speed: 0.3–3.0 on bulbul:v2, 0.5–2.0 on bulbul:v3; default 1.0.
    pub pace: f32,
    /// bulbul:v2 only, −0.75–0.75; default 0.
    pub pitch: f32,
    /// bulbul:v2 only, 0.3–3.0; default 1.0.
    pub loudness: f32,
    /// Receive audio in chunks over a WebSocket as it is made (default; speech starts sooner),
    /// or whole sentences over REST.
    pub streaming: bool,
}

impl Default for TtsOptions {
    fn default() -> Self {
        Self {
            provider: "sarvam".into(),
            model: catalog::DEFAULT_TTS_MODEL.into(),
            pace: 1.0,
            pitch: 0.0,
            loudness: 1.0,
            streaming: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnOptions {
    /// Silence after speech before the agent takes its turn; default 500 ms.
    pub min_silence_ms: u32,
    /// Speech needed to interrupt the agent, so coughs and "hmm" do not; default 500 ms.
    pub min_interrupt_speech_ms: u32,
    /// Speech a turn needs; shorter sounds (taps, clicks) are ignored. Default 150 ms, short
    /// enough for a one-word "haan" or "no".
    pub min_speech_ms: u32,
    /// How readily the voice detector calls a frame silence, 0 (least) to 3 (most); default 3,
    /// the only level that keeps background hiss from counting as speech. Lower it for callers
    /// who speak very softly.
    pub vad_aggressiveness: u8,
}

impl Default for TurnOptions {
    fn default() -> Self {
        Self { min_silence_ms: 500, min_interrupt_speech_ms: 500, min_speech_ms: 150, vad_aggressiveness: 3 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadField {
    /// A snake_case key such as `phone` or `preferred_time`.
    pub name: String,
    /// Tells the model what to ask for; default empty.
    #[serde(default)]
    pub description: String,
    /// How values are checked: `text` (default), `phone` or `email`.
    #[serde(default)]
    pub kind: LeadFieldKind,
    /// Whether the agent should insist on getting it; default false.
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LeadFieldKind {
    #[default]
    Text,
    Phone,
    Email,
}

/// A profile as written, before defaults are applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDoc {
    /// Optional in a local file (the file name is the id), required from n8n.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub system_prompt: String,
    #[serde(default)]
    pub greeting: String,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub voice: Option<String>,
    #[serde(default)]
    pub llm: LlmDoc,
    #[serde(default)]
    pub stt: SttOptions,
    #[serde(default)]
    pub tts: TtsOptions,
    #[serde(default)]
    pub turn: TurnOptions,
    #[serde(default)]
    pub lead_fields: Vec<LeadField>,
    #[serde(default)]
    pub apology: Option<String>,
    #[serde(default)]
    pub filler: Option<String>,
    #[serde(default)]
    pub filler_after_ms: Option<u32>,
    #[serde(default)]
    pub tools: Vec<ToolDef>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub analysis: Option<AnalysisOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmDoc {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

pub const DEFAULT_TEMPERATURE: f32 = 0.7;
/// Spoken answers should be a few sentences; this also bounds TTS cost per turn.
pub const DEFAULT_MAX_TOKENS: u32 = 256;
/// A tool answering within this needs no filler; a longer silence on a call feels broken.
pub const DEFAULT_FILLER_AFTER_MS: u32 = 700;
pub const DEFAULT_APOLOGY: &str = "Sorry, I'm having trouble right now. Could you give me a moment and say that again?";
const STT_MODELS: &[&str] = &["saaras:v3", "saaras:v2.5", "saarika:v2.5"];
const STT_MODES: &[&str] = &["transcribe", "translate", "verbatim", "translit", "codemix"];

/// Agent ids appear in URLs, file names and room names, so they are kept plain.
/// The message never repeats more than the first 64 characters of `id`, so a hostile id cannot
/// make errors and logs as long as itself.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if id.len() > 64 {
        return Err(format!("must be at most 64 characters long (it has {})", id.chars().count()));
    }
    match id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))) {
        Some(bad) => Err(format!(
            "`{}` contains `{}`; use letters, digits, `-` and `_` only",
            id.escape_debug(),
            bad.escape_debug()
        )),
        None => Ok(()),
    }
}

impl ProfileDoc {
    /// Applies defaults and checks every value; the error lists every problem, each naming its
    /// field.
    pub fn resolve(self, id: &str, defaults: &ProfileDefaults) -> Result<AgentProfile, Vec<String>> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, field: &str, why: String| {
            if !ok {
                problems.push(format!("{field}: {why}"));
            }
        };
        if let Err(why) = check_id(id) {
            check(false, "id", why);
        }
        if let Some(written) = &self.id {
            check(written == id, "id", format!("`{written}` does not match the expected id `{id}`"));
        }
        let name = self.name.unwrap_or_else(|| id.to_owned());
        check(!name.trim().is_empty() && name.chars().count() <= 100, "name", "must be 1 to 100 characters".into());
        check(!self.system_prompt.trim().is_empty(), "system_prompt", "must not be empty".into());
        check(self.system_prompt.len() <= 32_000, "system_prompt", "is longer than 32000 bytes".into());

        let language = self.language.unwrap_or_else(|| defaults.language.clone());
        let voice = self.voice.unwrap_or_else(|| defaults.voice.clone());
        if catalog::language(&language).is_none() {
            check(
                false,
                "language",
                format!("`{language}` is not supported; use one of {}", catalog::language_codes()),
            );
        } else if catalog::TTS_MODELS.contains(&self.tts.model.as_str()) {
            let offered = catalog::offers_voice(&self.tts.model, &language, &voice);
            let names = catalog::voice_names(&self.tts.model, &language);
            check(
                offered,
                "voice",
                format!("`{voice}` is not a {} voice for {language}; use one of {names}", self.tts.model),
            );
        }

        let provider = self.llm.provider.unwrap_or_else(|| defaults.llm_provider.as_str().to_owned());
        let parsed = LlmProvider::parse(&provider);
        check(parsed.is_some(), "llm.provider", format!("`{provider}` is not supported; use groq or openai"));
        let model = self.llm.model.unwrap_or_else(|| match parsed {
            Some(p) if p == defaults.llm_provider => defaults.llm_model.clone(),
            Some(p) => p.default_model().to_owned(),
            None => String::new(),
        });
        check(parsed.is_none() || !model.trim().is_empty(), "llm.model", "must not be empty".into());
        let temperature = self.llm.temperature.unwrap_or(DEFAULT_TEMPERATURE);
        check((0.0..=2.0).contains(&temperature), "llm.temperature", format!("{temperature} is outside 0.0 to 2.0"));
        let max_tokens = self.llm.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        check((1..=4096).contains(&max_tokens), "llm.max_tokens", format!("{max_tokens} is outside 1 to 4096"));

        check(
            self.stt.provider == "sarvam",
            "stt.provider",
            format!("`{}` is not supported; use sarvam", self.stt.provider),
        );
        check(
            STT_MODELS.contains(&self.stt.model.as_str()),
            "stt.model",
            format!("`{}` is not one of {}", self.stt.model, STT_MODELS.join(", ")),
        );
        check(
            STT_MODES.contains(&self.stt.mode.as_str()),
            "stt.mode",
            format!("`{}` is not one of {}", self.stt.mode, STT_MODES.join(", ")),
        );

        let tts = &self.tts;
        check(tts.provider == "sarvam", "tts.provider", format!("`{}` is not supported; use sarvam", tts.provider));
        let v2 = tts.model == "bulbul:v2";
        check(
            catalog::TTS_MODELS.contains(&tts.model.as_str()),
            "tts.model",
            format!("`{}` is not one of {}", tts.model, catalog::TTS_MODELS.join(", ")),
        );
        let pace = if v2 { 0.3..=3.0 } else { 0.5..=2.0 };
        check(
            pace.contains(&tts.pace),
            "tts.pace",
            format!("{} is outside {} to {} for {}", tts.pace, pace.start(), pace.end(), tts.model),
        );
        check((-0.75..=0.75).contains(&tts.pitch), "tts.pitch", format!("{} is outside -0.75 to 0.75", tts.pitch));
        check((0.3..=3.0).contains(&tts.loudness), "tts.loudness", format!("{} is outside 0.3 to 3.0", tts.loudness));

        let turn = &self.turn;
        check(
            (100..=5000).contains(&turn.min_silence_ms),
            "turn.min_silence_ms",
            format!("{} is outside 100 to 5000", turn.min_silence_ms),
        );
        check(
            (100..=5000).contains(&turn.min_interrupt_speech_ms),
            "turn.min_interrupt_speech_ms",
            format!("{} is outside 100 to 5000", turn.min_interrupt_speech_ms),
        );
        check(
            (20..=2000).contains(&turn.min_speech_ms),
            "turn.min_speech_ms",
            format!("{} is outside 20 to 2000", turn.min_speech_ms),
        );
        check(
            turn.vad_aggressiveness <= 3,
            "turn.vad_aggressiveness",
            format!("{} is outside 0 to 3", turn.vad_aggressiveness),
        );

        for (index, field) in self.lead_fields.iter().enumerate() {
            let snake = !field.name.is_empty()
                && field.name.starts_with(|c: char| c.is_ascii_lowercase())
                && field.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            check(
                snake,
                &format!("lead_fields[{index}].name"),
                format!("`{}` must be snake_case, such as preferred_time", field.name),
            );
            let repeated = self.lead_fields[..index].iter().any(|earlier| earlier.name == field.name);
            check(!repeated, &format!("lead_fields[{index}].name"), format!("`{}` appears twice", field.name));
        }
        let apology = self.apology.unwrap_or_else(|| DEFAULT_APOLOGY.to_owned());
        check(!apology.trim().is_empty(), "apology", "must not be empty".into());
        let filler_ok = self.filler.as_deref().is_none_or(|filler| !filler.trim().is_empty());
        check(filler_ok, "filler", "must not be empty (leave it out for the default)".into());
        let filler_after_ms = self.filler_after_ms.unwrap_or(DEFAULT_FILLER_AFTER_MS);
        check(filler_after_ms <= 10_000, "filler_after_ms", format!("{filler_after_ms} is outside 0 to 10000"));
        let time_zone = self.time_zone.unwrap_or_else(|| DEFAULT_TIME_ZONE.to_owned());
        tools::check(&self.tools, &mut problems);
        variables::check(&time_zone, &self.variables, &mut problems);
        if let Some(options) = &self.analysis {
            analysis::check(options, &mut problems);
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(AgentProfile {
            id: id.to_owned(),
            name,
            system_prompt: self.system_prompt,
            greeting: self.greeting,
            language,
            voice,
            llm: LlmOptions { provider, model, temperature, max_tokens },
            stt: self.stt,
            tts: self.tts,
            turn: self.turn,
            lead_fields: self.lead_fields,
            apology,
            filler: self.filler,
            filler_after_ms,
            tools: self.tools,
            time_zone,
            variables: self.variables,
            analysis: self.analysis,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::profiles::tests::defaults;

    fn parse(text: &str) -> Result<ProfileDoc, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_minimal_profile_takes_documented_defaults() {
        let profile =
            parse("system_prompt = \"Be brief.\"").expect("parses").resolve("sales", &defaults()).expect("valid");
        assert_eq!(profile.name, "sales");
        assert_eq!(profile.language, "hi-IN");
        assert_eq!(profile.voice, "arya");
        assert_eq!(
            profile.llm,
            LlmOptions {
                provider: "groq".into(),
                model: "llama-3.3-70b-versatile".into(),
                temperature: 0.7,
                max_tokens: 256
            }
        );
        assert_eq!(profile.stt, SttOptions::default());
        assert_eq!(profile.tts, TtsOptions::default());
        assert_eq!(profile.turn, TurnOptions::default());
        assert_eq!(profile.apology, DEFAULT_APOLOGY);
        assert!(profile.greeting.is_empty() && profile.lead_fields.is_empty());
    }

    #[test]
    fn another_provider_gets_its_own_default_model() {
        let doc = parse("system_prompt = \"x\"\n[llm]\nprovider = \"openai\"").expect("parses");
        assert_eq!(doc.resolve("a", &defaults()).expect("valid").llm.model, "gpt-4o-mini");
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let error = parse("system_prompt = \"x\"\ntemprature = 0.3").expect_err("unknown field");
        assert!(error.contains("unknown field `temprature`"), "{error}");
        let error = parse("system_prompt = \"x\"\n[tts]\nspeaker = \"arya\"").expect_err("unknown nested field");
        assert!(error.contains("unknown field `speaker`"), "{error}");
        let error = parse("greeting = \"hi\"").expect_err("missing prompt");
        assert!(error.contains("missing field `system_prompt`"), "{error}");
    }

    #[test]
    fn every_invalid_value_is_reported_with_its_field() {
        let doc = parse(
            r#"
            id = "other"
            system_prompt = " "
            language = "hi-IN"
            voice = "shubh"
            [llm]
            provider = "anthropic"
            temperature = 3.5
            max_tokens = 0
            [stt]
            model = "whisper"
            [tts]
            pace = 9.0
            [turn]
            min_silence_ms = 20
            [[lead_fields]]
            name = "Phone Number"
            [[lead_fields]]
            name = "email"
            kind = "email"
            [[lead_fields]]
            name = "email"
            "#,
        )
        .expect("parses");
        let problems = doc.resolve("clinic", &defaults()).expect_err("invalid").join("\n");
        for field in [
            "id: `other` does not match",
            "system_prompt: must not be empty",
            "voice: `shubh` is not a bulbul:v2 voice",
            "llm.provider: `anthropic`",
            "llm.temperature: 3.5",
            "llm.max_tokens: 0",
            "stt.model: `whisper`",
            "tts.pace: 9",
            "turn.min_silence_ms: 20",
            "lead_fields[0].name: `Phone Number` must be snake_case",
            "lead_fields[2].name: `email` appears twice",
        ] {
            assert!(problems.contains(field), "missing `{field}` in:\n{problems}");
        }
    }

    #[test]
    fn tools_variables_and_analysis_are_read_with_defaults_and_checked_by_field() {
        let minimal = parse("system_prompt = \"x\"").expect("parses").resolve("a", &defaults()).expect("valid");
        assert_eq!((minimal.filler.as_deref(), minimal.filler_after_ms), (None, DEFAULT_FILLER_AFTER_MS));
        assert_eq!(minimal.time_zone, "Asia/Kolkata");
        assert!(minimal.tools.is_empty() && minimal.variables.is_empty() && minimal.analysis.is_none());

        let full = parse(
            r#"
            system_prompt = "Today is {{today}}."
            filler = "One moment."
            filler_after_ms = 400
            time_zone = "Europe/London"
            [variables]
            clinic = "Sharma"
            [[tools]]
            name = "check_availability"
            description = "Free slots."
            webhook = "/webhook/clinic-availability"
            [analysis]
            outcomes = ["booked"]
            "#,
        )
        .expect("parses")
        .resolve("a", &defaults())
        .expect("valid");
        assert_eq!((full.filler_after_ms, full.time_zone.as_str()), (400, "Europe/London"));
        assert_eq!(full.tools[0].timeout_ms, 5_000, "the documented default");
        assert_eq!(full.tools[0].parameters, serde_json::json!({"type": "object", "properties": {}}));
        assert_eq!(full.analysis.as_ref().map(|a| a.timeout_secs), Some(20));

        let bad = parse(
            r#"
            system_prompt = "x"
            filler = " "
            filler_after_ms = 20000
            time_zone = "IST"
            [[tools]]
            name = "capture_lead"
            description = "x"
            webhook = "/w"
            [analysis]
            "#,
        )
        .expect("parses")
        .resolve("a", &defaults())
        .expect_err("invalid")
        .join("\n");
        for expected in [
            "filler: must not be empty",
            "filler_after_ms: 20000 is outside 0 to 10000",
            "time_zone: `IST` is not a time zone",
            "tools[0].name: `capture_lead` is a built-in function",
            "analysis: asks for nothing",
        ] {
            assert!(bad.contains(expected), "missing `{expected}` in:\n{bad}");
        }
        let error = parse("system_prompt = \"x\"\n[[tools]]\nname = \"a\"\nurl = \"/w\"").expect_err("unknown field");
        assert!(error.contains("unknown field `url`"), "{error}");
    }

    #[test]
    fn bad_ids_are_refused() {
        assert!(check_id("clinic-hi_2").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("../etc/passwd").is_err());
        assert!(check_id(&"a".repeat(65)).is_err());
        let why = check_id(&"x".repeat(60_000)).expect_err("too long");
        assert_eq!(why, "must be at most 64 characters long (it has 60000)", "the id is not repeated");
        let why = check_id("a\u{202e}b").expect_err("a bidi override");
        assert!(why.contains("a\\u{202e}b"), "hidden characters are shown escaped: {why}");
    }
}
