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
use crate::config::ProfileDefaults;
use crate::pipeline::vad::{NOISE_MARGIN_RANGE, THRESHOLD_RANGE, VadConfig, VadKind};
use crate::providers::registry::ProviderSetup;
use crate::providers::setup::{self, Problems, SectionDefaults};
use crate::providers::{Chains, catalog};

/// A complete, validated agent profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentProfile {
    /// The agent id callers and n8n name it by (see [`check_id`]).
    pub id: String,
    /// Shown to people choosing an agent and used as the agent participant's name.
    pub name: String,
    /// The LLM's instructions, `{{name}}` placeholders not yet filled.
    pub system_prompt: String,
    /// Said when the caller arrives; empty means the agent waits for the caller to speak.
    pub greeting: String,
    /// The BCP 47 code (`hi-IN`) every provider in the chains speaks.
    pub language: String,
    /// The first TTS provider's voice id, checked against its catalog.
    pub voice: String,
    /// The chat model chain and sampling.
    pub llm: LlmOptions,
    /// The speech-to-text chain.
    pub stt: SttOptions,
    /// The text-to-speech chain.
    pub tts: TtsOptions,
    /// Turn-taking: silences, interruptions, the voice detector.
    pub turn: TurnOptions,
    /// What the agent should try to learn from the caller; sent to n8n after the call.
    pub lead_fields: Vec<LeadField>,
    /// Said when a provider fails, so the caller is never left in silence.
    pub apology: String,
    /// When the call ends on its own.
    pub limits: CallLimits,
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

/// The chat providers, first choice first (later ones serve when it fails), and the
/// agent's sampling settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmOptions {
    /// First choice first; never empty.
    pub providers: Vec<ProviderSetup>,
    /// Sampling temperature; default 0.7.
    pub temperature: f32,
    /// The longest answer in tokens; default 256.
    pub max_tokens: u32,
}

/// The speech-to-text providers, first choice first, each with its checked options.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct SttOptions {
    /// First choice first; never empty.
    pub providers: Vec<ProviderSetup>,
}

/// The text-to-speech providers, first choice first; the first speaks the profile's `voice`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct TtsOptions {
    /// First choice first; never empty.
    pub providers: Vec<ProviderSetup>,
}

impl AgentProfile {
    /// The profile's providers of every kind.
    pub fn chains(&self) -> Chains<'_> {
        Chains { stt: &self.stt.providers, llm: &self.llm.providers, tts: &self.tts.providers }
    }
}

/// A profile's `[turn]` table; every key is optional.
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
    /// The voice detector: `silero` (default; a neural network that tells speech from fans,
    /// traffic, hum and music), `earshot` (a smaller network, cheaper, confused by tones) or
    /// `webrtc` (the cheapest; it takes steady noise for speech, so in a noisy room turns never
    /// end).
    pub vad: String,
    /// silero and earshot: the speech probability from which a frame is speech, 0.2 to 0.95;
    /// default 0.4 for silero, 0.5 for earshot. Lower it for callers who speak very softly,
    /// raise it if noise starts turns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vad_threshold: Option<f32>,
    /// webrtc: how readily it calls a frame silence, 0 (least) to 3 (most); default 3.
    pub vad_aggressiveness: u8,
    /// dB above the measured background noise a frame must be to count as speech, 0 to 20;
    /// default 0 (off). Cuts the noise webrtc and earshot take for speech, at the cost of soft
    /// syllables.
    pub vad_noise_margin_db: f32,
    /// A pause after which the turn has probably ended, 0 (off) or 100 to 2000 ms; default
    /// 300. The caller's words are fetched then, to choose how long to wait and to prepare the
    /// answer.
    pub likely_end_ms: u32,
    /// Ask the model at the likely end, before the turn is certain, and drop the answer if the
    /// caller goes on; default true. Answers sooner, at the cost of some extra model requests.
    pub preemptive: bool,
    /// Silence that ends a turn after a complete sentence, 100 to 5000 ms; default 450.
    pub complete_silence_ms: u32,
    /// Silence that ends a turn after "and", "um" or half a phone number, 100 to 10000 ms;
    /// default 1500.
    pub unfinished_silence_ms: u32,
    /// Words an interruption needs before the agent's answer is dropped, 0 to 10; default 1.
    /// Until they are heard the agent is paused; a cough or a door gives none, and the agent
    /// resumes. 0 trusts the voice detector alone.
    pub min_interruption_words: u32,
    /// Longest pause for speech over the agent that never reaches `min_interrupt_speech_ms`,
    /// 200 to 10000 ms; default 1500.
    pub false_interruption_timeout_ms: u32,
}

impl Default for TurnOptions {
    fn default() -> Self {
        let vad = VadConfig::default();
        Self {
            min_silence_ms: 500,
            min_interrupt_speech_ms: 500,
            min_speech_ms: 150,
            vad: vad.kind.name().to_owned(),
            vad_threshold: vad.threshold,
            vad_aggressiveness: vad.aggressiveness,
            vad_noise_margin_db: vad.noise_margin_db,
            likely_end_ms: 300,
            preemptive: true,
            complete_silence_ms: 450,
            unfinished_silence_ms: 1_500,
            min_interruption_words: 1,
            false_interruption_timeout_ms: 1_500,
        }
    }
}

/// When a call ends on its own; 0 turns a limit off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallLimits {
    /// The longest call, 60 to 14400 s; default 1800. The agent says `goodbye`, then hangs up.
    pub max_call_seconds: u32,
    /// Said at the time limit, in the profile's language.
    pub goodbye: String,
    /// Silence on both sides after which the agent asks `still_there`, 5 to 600 s; default 15.
    pub silence_prompt_seconds: u32,
    /// Asked after a long silence, in the profile's language.
    pub still_there: String,
    /// Silence on both sides after which the agent hangs up, 10 to 3600 s and longer than the
    /// prompt's; default 30.
    pub silence_hangup_seconds: u32,
    /// A caller who neither publishes a microphone nor types is dropped after this, before
    /// anything paid is synthesised, 5 to 600 s; default 20.
    pub no_audio_seconds: u32,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            max_call_seconds: 1_800,
            goodbye: "I'm sorry, we have reached the time limit for this call. Thank you for calling, goodbye!".into(),
            silence_prompt_seconds: 15,
            still_there: "Are you still there?".into(),
            silence_hangup_seconds: 30,
            no_audio_seconds: 20,
        }
    }
}

impl TurnOptions {
    /// The voice detector these options describe; `None` when `vad` names no detector, which a
    /// resolved profile never does.
    pub fn vad_config(&self) -> Option<VadConfig> {
        Some(VadConfig {
            kind: VadKind::parse(&self.vad)?,
            threshold: self.vad_threshold,
            aggressiveness: self.vad_aggressiveness,
            noise_margin_db: self.vad_noise_margin_db,
        })
    }
}

/// Something the agent should learn from the caller (`[[lead_fields]]`), saved with a tool
/// the model calls and delivered in the call record.
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

/// How a lead field's value is checked before it is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LeadFieldKind {
    /// Anything non-empty.
    #[default]
    Text,
    /// Digits with an optional leading `+`; separators are stripped.
    Phone,
    /// An email address.
    Email,
}

/// A profile as written, before defaults are applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDoc {
    /// Optional in a local file (the file name is the id), required from n8n.
    #[serde(default)]
    pub id: Option<String>,
    /// Default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Required.
    pub system_prompt: String,
    /// Default empty: the agent waits for the caller.
    #[serde(default)]
    pub greeting: String,
    /// Default: the settings' profile default language.
    #[serde(default)]
    pub language: Option<String>,
    /// Default: the settings' profile default voice.
    #[serde(default)]
    pub voice: Option<String>,
    /// A provider name, a table of options, or a list of them (see `providers::setup`).
    #[serde(default)]
    pub llm: Option<serde_json::Value>,
    /// Like `llm`; default: the registry's default speech-to-text provider.
    #[serde(default)]
    pub stt: Option<serde_json::Value>,
    /// Like `llm`; default: the registry's default text-to-speech provider.
    #[serde(default)]
    pub tts: Option<serde_json::Value>,
    /// See [`TurnOptions`].
    #[serde(default)]
    pub turn: TurnOptions,
    /// See [`LeadField`].
    #[serde(default)]
    pub lead_fields: Vec<LeadField>,
    /// Default: an English apology.
    #[serde(default)]
    pub apology: Option<String>,
    /// `[limits]`: call length and silence handling; each key has its own default.
    #[serde(default)]
    pub limits: CallLimits,
    /// Default: a short "one moment" in the call's language.
    pub filler: Option<String>,
    /// Default 700; at most 10000.
    #[serde(default)]
    pub filler_after_ms: Option<u32>,
    /// See [`ToolDef`].
    #[serde(default)]
    pub tools: Vec<ToolDef>,
    /// Default `Asia/Kolkata`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Placeholder values; names must be valid variable names.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// See [`AnalysisOptions`].
    #[serde(default)]
    pub analysis: Option<AnalysisOptions>,
}

pub const DEFAULT_TEMPERATURE: f32 = 0.7;
/// Spoken answers should be a few sentences; this also bounds TTS cost per turn.
pub const DEFAULT_MAX_TOKENS: u32 = 256;
/// A tool answering within this needs no filler; a longer silence on a call feels broken.
pub const DEFAULT_FILLER_AFTER_MS: u32 = 700;
pub const DEFAULT_APOLOGY: &str = "Sorry, I'm having trouble right now. Could you give me a moment and say that again?";

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
        let sections = SectionDefaults {
            llm_provider: &defaults.llm_provider,
            llm_model: &defaults.llm_model,
            temperature: DEFAULT_TEMPERATURE,
            max_tokens: DEFAULT_MAX_TOKENS,
            voice: &defaults.voice,
        };
        let mut found = Problems::default();
        let stt = setup::stt(self.stt.as_ref(), &mut found);
        let llm = setup::llm(self.llm.as_ref(), sections, &mut found);
        let (tts, voice) = setup::tts(self.tts.as_ref(), self.voice.as_deref(), &language, sections, &mut found);
        if catalog::language(&language).is_none() {
            check(
                false,
                "language",
                format!("`{language}` is not supported; use one of {}", catalog::language_codes()),
            );
        } else if !catalog::supports(&stt, &tts, &language) {
            let shared: Vec<&str> = catalog::languages(&stt, &tts).iter().map(|l| l.code).collect();
            let shared = if shared.is_empty() { "none".to_owned() } else { shared.join(", ") };
            check(
                false,
                "language",
                format!("`{language}` is not spoken by every stt and tts provider; they share {shared}"),
            );
        }

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
        check(
            VadKind::parse(&turn.vad).is_some(),
            "turn.vad",
            format!("`{}` is not one of {}", turn.vad, VadKind::names()),
        );
        check(
            turn.vad_threshold.is_none_or(|t| THRESHOLD_RANGE.contains(&t)),
            "turn.vad_threshold",
            format!(
                "{} is outside {} to {}",
                turn.vad_threshold.unwrap_or_default(),
                THRESHOLD_RANGE.start(),
                THRESHOLD_RANGE.end()
            ),
        );
        let within = |value: u32, range: std::ops::RangeInclusive<u32>, field: &str, off: bool| {
            let ok = (off && value == 0) || range.contains(&value);
            let zero = if off { "0 (off) or " } else { "" };
            (ok, field.to_owned(), format!("{value} is outside {zero}{} to {}", range.start(), range.end()))
        };
        let limits = &self.limits;
        for (ok, field, why) in [
            within(turn.likely_end_ms, 100..=2_000, "turn.likely_end_ms", true),
            within(turn.complete_silence_ms, 100..=5_000, "turn.complete_silence_ms", false),
            within(turn.unfinished_silence_ms, 100..=10_000, "turn.unfinished_silence_ms", false),
            within(turn.min_interruption_words, 0..=10, "turn.min_interruption_words", false),
            within(turn.false_interruption_timeout_ms, 200..=10_000, "turn.false_interruption_timeout_ms", false),
            within(limits.max_call_seconds, 60..=14_400, "limits.max_call_seconds", true),
            within(limits.silence_prompt_seconds, 5..=600, "limits.silence_prompt_seconds", true),
            within(limits.silence_hangup_seconds, 10..=3_600, "limits.silence_hangup_seconds", true),
            within(limits.no_audio_seconds, 5..=600, "limits.no_audio_seconds", true),
        ] {
            check(ok, &field, why);
        }
        check(
            limits.silence_hangup_seconds == 0
                || limits.silence_prompt_seconds == 0
                || limits.silence_hangup_seconds > limits.silence_prompt_seconds,
            "limits.silence_hangup_seconds",
            format!(
                "{} must be longer than limits.silence_prompt_seconds ({}), or the question is never asked",
                limits.silence_hangup_seconds, limits.silence_prompt_seconds
            ),
        );
        for (text, field) in [(&limits.goodbye, "limits.goodbye"), (&limits.still_there, "limits.still_there")] {
            check(text.chars().count() <= 500, field, "is longer than 500 characters".into());
        }
        check(
            NOISE_MARGIN_RANGE.contains(&turn.vad_noise_margin_db),
            "turn.vad_noise_margin_db",
            format!(
                "{} is outside {} to {}",
                turn.vad_noise_margin_db,
                NOISE_MARGIN_RANGE.start(),
                NOISE_MARGIN_RANGE.end()
            ),
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

        problems.extend(found.0);
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
            llm: LlmOptions { providers: llm.chain, temperature: llm.temperature, max_tokens: llm.max_tokens },
            stt: SttOptions { providers: stt },
            tts: TtsOptions { providers: tts },
            turn: self.turn,
            lead_fields: self.lead_fields,
            apology,
            limits: self.limits,
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
        assert_eq!(profile.voice, "shubh");
        assert_eq!((profile.llm.temperature, profile.llm.max_tokens), (0.7, 256));
        let shown = serde_json::to_value(&profile).expect("serialises");
        assert_eq!(
            shown["llm"]["providers"],
            serde_json::json!([{"provider": "groq", "model": "openai/gpt-oss-120b", "reasoning_effort": "low"}])
        );
        assert_eq!(
            shown["stt"],
            serde_json::json!([{"provider": "sarvam", "model": "saaras:v3", "mode": "transcribe", "streaming": true}])
        );
        assert_eq!(
            shown["tts"],
            serde_json::json!([{"provider": "sarvam", "model": "bulbul:v3", "pace": 1.0, "pitch": 0.0, "loudness": 1.0, "streaming": true}])
        );
        assert_eq!(profile.turn, TurnOptions::default());
        assert_eq!(profile.apology, DEFAULT_APOLOGY);
        assert!(profile.greeting.is_empty() && profile.lead_fields.is_empty());
    }

    #[test]
    fn another_provider_gets_its_own_default_model() {
        let doc = parse("system_prompt = \"x\"\n[llm]\nprovider = \"openai\"").expect("parses");
        assert_eq!(doc.resolve("a", &defaults()).expect("valid").llm.providers[0].options["model"], "gpt-4.1-mini");
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let error = parse("system_prompt = \"x\"\ntemprature = 0.3").expect_err("unknown field");
        assert!(error.contains("unknown field `temprature`"), "{error}");
        let doc = parse("system_prompt = \"x\"\n[tts]\nspeaker = \"arya\"").expect("options are the provider's");
        let problems = doc.resolve("a", &defaults()).expect_err("unknown option").join("\n");
        assert!(problems.contains("tts.speaker: sarvam has no such option; it takes model, pace"), "{problems}");
        let error = parse("greeting = \"hi\"").expect_err("missing prompt");
        assert!(error.contains("missing field `system_prompt`"), "{error}");
    }

    #[test]
    fn the_voice_detector_is_chosen_per_profile() {
        let resolve = |text: &str| parse(text).expect("parses").resolve("a", &defaults()).expect("valid");
        let default = resolve("system_prompt = \"x\"");
        assert_eq!(default.turn.vad_config(), Some(VadConfig::default()));
        let webrtc = resolve(
            "system_prompt = \"x\"\n[turn]\nvad = \"webrtc\"\nvad_aggressiveness = 2\nvad_noise_margin_db = 4.5",
        );
        let expected =
            VadConfig { kind: VadKind::Webrtc, aggressiveness: 2, noise_margin_db: 4.5, ..VadConfig::default() };
        assert_eq!(webrtc.turn.vad_config(), Some(expected));
        let earshot = resolve("system_prompt = \"x\"\n[turn]\nvad = \"earshot\"\nvad_threshold = 0.7");
        assert_eq!(earshot.turn.vad_config().map(|c| (c.kind, c.threshold)), Some((VadKind::Earshot, Some(0.7))));
    }

    #[test]
    fn every_invalid_value_is_reported_with_its_field() {
        let doc = parse(
            r#"
            id = "other"
            system_prompt = " "
            language = "hi-IN"
            voice = "alloy"
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
            vad = "rnnoise"
            vad_threshold = 1.5
            vad_noise_margin_db = 40.0
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
            "voice: `alloy` is not a bulbul:v3 voice for hi-IN",
            "llm.provider: `anthropic` is not a chat provider; use one of groq, openai",
            "llm.temperature: 3.5",
            "llm.max_tokens: 0",
            "stt.model: `whisper`",
            "tts.pace: 9",
            "turn.min_silence_ms: 20",
            "turn.vad: `rnnoise` is not one of silero, earshot, webrtc",
            "turn.vad_threshold: 1.5 is outside 0.2 to 0.95",
            "turn.vad_noise_margin_db: 40 is outside 0 to 20",
            "lead_fields[0].name: `Phone Number` must be snake_case",
            "lead_fields[2].name: `email` appears twice",
        ] {
            assert!(problems.contains(field), "missing `{field}` in:\n{problems}");
        }
    }

    #[test]
    fn providers_are_named_in_any_form_and_checked_by_their_provider() {
        let doc = parse(
            r#"
            system_prompt = "x"
            language = "en-IN"
            voice = "EXAVITQu4vr4xnSDxMaL"
            stt = ["deepgram", "sarvam"]
            [llm]
            provider = "openai"
            [[tts]]
            provider = "elevenlabs"
            [[tts]]
            provider = "sarvam"
            voice = "ritu"
            "#,
        )
        .expect("parses");
        let profile = doc.resolve("hotel", &defaults()).expect("valid");
        let names = |chain: &[ProviderSetup]| chain.iter().map(|s| s.provider.clone()).collect::<Vec<_>>();
        assert_eq!(names(&profile.stt.providers), ["deepgram", "sarvam"]);
        assert_eq!(names(&profile.tts.providers), ["elevenlabs", "sarvam"]);
        assert_eq!(profile.tts.providers[1].voice.as_deref(), Some("ritu"));
        assert_eq!(profile.llm.providers[0].options["model"], "gpt-4.1-mini");
        assert_eq!(profile.chains().all().count(), 5);

        let doc = parse("system_prompt = \"x\"\nlanguage = \"ta-IN\"\n[stt]\nprovider = \"deepgram\"").expect("parses");
        let problems = doc.resolve("a", &defaults()).expect_err("Deepgram has no Tamil here").join("\n");
        assert!(
            problems.contains("language: `ta-IN` is not spoken by every stt and tts provider; they share hi-IN, en-IN"),
            "{problems}"
        );
        let doc = parse("system_prompt = \"x\"\n[stt]\nmodel = \"saarika:v2.5\"").expect("parses");
        let problems = doc.resolve("a", &defaults()).expect_err("retired").join("\n");
        assert!(
            problems.contains(
                "stt.model: `saarika:v2.5` is retired from Sarvam's speech-to-text; use saaras:v3 or saaras:v4"
            ),
            "{problems}"
        );
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
