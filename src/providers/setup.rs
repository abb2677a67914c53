//! Reading a profile's `stt`, `llm` and `tts` sections into checked provider chains.
//!
//! Each section names one provider or a fallback chain, in any of these forms:
//!
//! ```toml
//! stt = "deepgram"                        # one provider, its default options
//! stt = ["sarvam", "deepgram"]            # a chain: deepgram serves when sarvam fails
//! [stt]                                   # one provider with options
//! provider = "deepgram"
//! model = "nova-3"
//! [[stt]]                                 # a chain with options
//! provider = "sarvam"
//! [[stt]]
//! provider = "deepgram"
//! ```
//!
//! A table that names no provider is the kind's default provider (`[tts] pace = 0.9` is
//! Sarvam's). Options are checked by their provider; `price` (any provider), `voice` (a
//! text-to-speech provider after the first) and `temperature` and `max_tokens` (the first chat
//! provider) are the product's own.

use serde_json::Value;

use super::registry::{self, Kind, Options, ProviderSetup};
use super::usage::Price;

/// What the chat section leaves for the whole agent.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatChain {
    pub chain: Vec<ProviderSetup>,
    pub temperature: f32,
    pub max_tokens: u32,
}

/// The deployment's defaults a profile's sections fall back on.
#[derive(Debug, Clone, Copy)]
pub struct SectionDefaults<'a> {
    pub llm_provider: &'a str,
    /// The model of `llm_provider` (`LLM_MODEL`).
    pub llm_model: &'a str,
    pub temperature: f32,
    pub max_tokens: u32,
    /// `DEFAULT_VOICE`.
    pub voice: &'a str,
}

/// One provider as written, with where it was written for messages (`stt`, `stt[1]`).
struct Written {
    at: String,
    provider: Option<String>,
    options: Options,
}

/// Problems are collected, each starting with the field it is about.
#[derive(Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    fn push(&mut self, field: &str, why: impl Into<String>) {
        self.0.push(format!("{field}: {}", why.into()));
    }
}

pub fn stt(raw: Option<&Value>, problems: &mut Problems) -> Vec<ProviderSetup> {
    let mut chain = Vec::new();
    for written in written(Kind::Stt, raw, problems) {
        let Some((provider, mut options)) =
            provider_of(Kind::Stt, written.provider, written.options, &written.at, problems)
        else {
            continue;
        };
        let price = price(Kind::Stt, &mut options, &written.at, problems);
        let Some(stt) = registry::stt(&provider) else { continue };
        match stt.resolve(&options) {
            Ok(options) => chain.push(ProviderSetup { provider, options, voice: None, price }),
            Err(found) => found.into_iter().for_each(|why| problems.0.push(format!("{}.{why}", written.at))),
        }
    }
    check_repeats(Kind::Stt, &chain, problems);
    chain
}

pub fn llm(raw: Option<&Value>, defaults: SectionDefaults<'_>, problems: &mut Problems) -> ChatChain {
    let mut chain = Vec::new();
    let (mut temperature, mut max_tokens) = (defaults.temperature, defaults.max_tokens);
    for (index, written) in written(Kind::Llm, raw, problems).into_iter().enumerate() {
        let at = written.at.clone();
        let mut options = written.options;
        for (name, value) in
            [("temperature", options.remove("temperature")), ("max_tokens", options.remove("max_tokens"))]
        {
            let Some(value) = value else { continue };
            if index > 0 {
                problems.push(&format!("{at}.{name}"), "give it once, with the first chat provider");
                continue;
            }
            match name {
                "temperature" => match value.as_f64() {
                    Some(t) if (0.0..=2.0).contains(&t) => temperature = t as f32,
                    _ => problems.push(&format!("{at}.temperature"), format!("{value} is outside 0.0 to 2.0")),
                },
                _ => match value.as_u64() {
                    Some(n) if (1..=4096).contains(&n) => max_tokens = n as u32,
                    _ => problems.push(&format!("{at}.max_tokens"), format!("{value} is outside 1 to 4096")),
                },
            }
        }
        let Some((provider, mut options)) = provider_of(Kind::Llm, written.provider, options, &at, problems) else {
            continue;
        };
        let price = price(Kind::Llm, &mut options, &at, problems);
        let Some(chat) = registry::chat(&provider) else { continue };
        let model = if provider == defaults.llm_provider { defaults.llm_model } else { chat.default_model() };
        match chat.resolve(&options, model) {
            Ok(options) => chain.push(ProviderSetup { provider, options, voice: None, price }),
            Err(found) => found.into_iter().for_each(|why| problems.0.push(format!("{at}.{why}"))),
        }
    }
    let repeated =
        chain.iter().enumerate().find(|(i, setup)| chain[..*i].iter().any(|earlier| earlier == *setup)).map(|(i, _)| i);
    if let Some(i) = repeated {
        problems.push(&format!("llm[{i}]"), "repeats an earlier provider with the same model");
    }
    ChatChain { chain, temperature, max_tokens }
}

/// The text-to-speech chain and the profile's voice (of its first provider).
pub fn tts(
    raw: Option<&Value>,
    voice: Option<&str>,
    language: &str,
    defaults: SectionDefaults<'_>,
    problems: &mut Problems,
) -> (Vec<ProviderSetup>, String) {
    let mut chain = Vec::new();
    let mut call_voice = voice.unwrap_or(defaults.voice).to_owned();
    for (index, written) in written(Kind::Tts, raw, problems).into_iter().enumerate() {
        let at = written.at.clone();
        let Some((provider, mut options)) = provider_of(Kind::Tts, written.provider, written.options, &at, problems)
        else {
            continue;
        };
        let price = price(Kind::Tts, &mut options, &at, problems);
        let own_voice = match options.remove("voice") {
            None => None,
            Some(_) if index == 0 => {
                problems
                    .push(&format!("{at}.voice"), "the first provider speaks the profile's `voice`; set that instead");
                None
            }
            Some(Value::String(voice)) => Some(voice),
            Some(other) => {
                problems.push(&format!("{at}.voice"), format!("{other} is not a voice name"));
                None
            }
        };
        let Some(tts) = registry::tts(&provider) else { continue };
        let asked = if index == 0 { voice } else { own_voice.as_deref() };
        match tts.resolve(&options, asked, language, defaults.voice) {
            Ok((options, resolved)) => {
                let voice = if index == 0 {
                    call_voice = resolved;
                    None
                } else {
                    Some(resolved)
                };
                chain.push(ProviderSetup { provider, options, voice, price });
            }
            Err(found) => {
                let field = |why: String| {
                    if index == 0 && why.starts_with("voice:") { why } else { format!("{at}.{why}") }
                };
                found.into_iter().for_each(|why| problems.0.push(field(why)));
            }
        }
    }
    check_repeats(Kind::Tts, &chain, problems);
    (chain, call_voice)
}

/// The providers of a section as written; a missing section is the kind's default provider.
fn written(kind: Kind, raw: Option<&Value>, problems: &mut Problems) -> Vec<Written> {
    let section = kind.section();
    let single =
        |provider: Option<String>, options: Options| vec![Written { at: section.to_owned(), provider, options }];
    match raw {
        None | Some(Value::Null) => single(None, Options::new()),
        Some(Value::String(name)) => single(Some(name.clone()), Options::new()),
        Some(Value::Object(table)) => match split(table.clone(), section, problems) {
            Some((provider, options)) => single(provider, options),
            None => Vec::new(),
        },
        Some(Value::Array(items)) if items.is_empty() => {
            problems.push(section, "names no provider; name one or more, such as [\"sarvam\"]");
            Vec::new()
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| {
                let at = format!("{section}[{index}]");
                let (provider, options) = match item {
                    Value::String(name) => (Some(name.clone()), Options::new()),
                    Value::Object(table) => split(table.clone(), &at, problems)?,
                    other => {
                        problems.push(&at, format!("{other} is neither a provider name nor a table of options"));
                        return None;
                    }
                };
                if provider.is_none() && index > 0 {
                    problems.push(&format!("{at}.provider"), "is required for every provider after the first");
                    return None;
                }
                Some(Written { at, provider, options })
            })
            .collect(),
        Some(other) => {
            problems.push(section, format!("{other} is not a provider name, a table of options or a list of them"));
            Vec::new()
        }
    }
}

/// The `provider` field of a table and its other fields.
fn split(mut table: Options, at: &str, problems: &mut Problems) -> Option<(Option<String>, Options)> {
    match table.remove("provider") {
        None => Some((None, table)),
        Some(Value::String(name)) => Some((Some(name), table)),
        Some(other) => {
            problems.push(&format!("{at}.provider"), format!("{other} is not a provider name"));
            None
        }
    }
}

/// The provider's registered name, or a problem naming the ones there are.
fn provider_of(
    kind: Kind,
    provider: Option<String>,
    options: Options,
    at: &str,
    problems: &mut Problems,
) -> Option<(String, Options)> {
    let provider = provider.unwrap_or_else(|| registry::default_provider(kind).to_owned());
    let lower = provider.to_ascii_lowercase();
    if registry::exists(kind, &lower) {
        return Some((lower, options));
    }
    problems.push(
        &format!("{at}.provider"),
        format!(
            "`{}` is not a {} provider; use one of {}",
            provider.escape_debug(),
            kind.describe(),
            registry::names(kind)
        ),
    );
    None
}

/// The profile's own `price` for a provider, taken out of its options.
fn price(kind: Kind, options: &mut Options, at: &str, problems: &mut Problems) -> Option<Price> {
    let value = options.remove("price")?;
    match Price::from_value(kind, &value) {
        Ok(price) => Some(price),
        Err(why) => {
            problems.push(&format!("{at}.price"), why);
            None
        }
    }
}

fn check_repeats(kind: Kind, chain: &[ProviderSetup], problems: &mut Problems) {
    for (index, setup) in chain.iter().enumerate() {
        if chain[..index].iter().any(|earlier| earlier.provider == setup.provider && earlier.options == setup.options) {
            problems.push(&format!("{}[{index}]", kind.section()), "repeats an earlier provider with the same options");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DEFAULTS: SectionDefaults<'static> = SectionDefaults {
        llm_provider: "groq",
        llm_model: "openai/gpt-oss-120b",
        temperature: 0.7,
        max_tokens: 256,
        voice: "shubh",
    };

    #[test]
    fn a_missing_section_is_the_default_provider() {
        let mut problems = Problems::default();
        let stt = stt(None, &mut problems);
        assert_eq!(stt.len(), 1);
        assert_eq!(stt[0].provider, "sarvam");
        assert_eq!(stt[0].options["model"], "saaras:v3");
        let (tts, voice) = tts(None, None, "hi-IN", DEFAULTS, &mut problems);
        assert_eq!((tts[0].options["model"].as_str(), voice.as_str()), (Some("bulbul:v3"), "shubh"));
        let llm = llm(None, DEFAULTS, &mut problems);
        assert_eq!(llm.chain[0].options["model"], "openai/gpt-oss-120b");
        assert!(problems.0.is_empty(), "{:?}", problems.0);
    }

    #[test]
    fn every_written_form_reads_the_same() {
        let mut problems = Problems::default();
        let forms = [
            json!("deepgram"),
            json!({"provider": "deepgram"}),
            json!(["deepgram"]),
            json!([{"provider": "deepgram", "model": "nova-3"}]),
        ];
        let chains: Vec<_> = forms.iter().map(|form| stt(Some(form), &mut problems)).collect();
        assert!(problems.0.is_empty(), "{:?}", problems.0);
        assert!(chains.windows(2).all(|pair| pair[0] == pair[1]), "{chains:?}");
        let chain = stt(Some(&json!(["sarvam", {"provider": "deepgram", "price": 0.01}])), &mut problems);
        assert_eq!(chain.iter().map(|s| s.provider.as_str()).collect::<Vec<_>>(), ["sarvam", "deepgram"]);
        assert!(chain[1].price.is_some());
        assert!(problems.0.is_empty(), "{:?}", problems.0);
    }

    #[test]
    fn mistakes_are_named_by_field() {
        let mut problems = Problems::default();
        stt(
            Some(&json!(["sarvam", {"model": "nova-3"}, "whisper", {"provider": "deepgram", "modle": "x"}])),
            &mut problems,
        );
        stt(Some(&json!([])), &mut problems);
        stt(Some(&json!(["sarvam", "sarvam"])), &mut problems);
        llm(Some(&json!(["groq", {"provider": "openai", "temperature": 0.3}])), DEFAULTS, &mut problems);
        tts(Some(&json!({"provider": "elevenlabs", "voice": "x"})), None, "hi-IN", DEFAULTS, &mut problems);
        let all = problems.0.join("\n");
        for expected in [
            "stt[1].provider: is required",
            "stt[2].provider: `whisper` is not a speech-to-text provider; use one of sarvam, openai, deepgram",
            "stt[3].modle",
            "stt: names no provider",
            "stt[1]: repeats an earlier provider",
            "llm[1].temperature: give it once",
            "tts.voice: the first provider speaks the profile's `voice`",
        ] {
            assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
        }
    }

    #[test]
    fn a_fallback_speaker_gets_its_own_voice() {
        let mut problems = Problems::default();
        let written = json!(["sarvam", {"provider": "openai", "voice": "coral"}, "elevenlabs"]);
        let (chain, voice) = tts(Some(&written), Some("ritu"), "hi-IN", DEFAULTS, &mut problems);
        assert!(problems.0.is_empty(), "{:?}", problems.0);
        assert_eq!(voice, "ritu");
        assert_eq!(chain[0].voice, None);
        assert_eq!(chain[1].voice.as_deref(), Some("coral"));
        assert!(chain[2].voice.is_some(), "the provider's default voice");
    }
}
