//! What a call used of each provider and model, and what that is estimated to cost.
//!
//! Every provider of a call counts into one `UsageMeter` (audio seconds transcribed,
//! characters synthesised, prompt and completion tokens), through the metering wrappers of
//! `super::metered`; the call record reads it when the call ends. Prices come from the
//! profile, else the `PRICES` setting, else the provider's list price ([`DEFAULT_PRICES_DATE`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};

use super::registry::{self, Kind};

/// When the default (list) prices were known: the providers' public pricing pages as this
/// project last read them. Operators with other terms set `PRICES` or a profile's `price`.
pub const DEFAULT_PRICES_DATE: &str = "2025-12";

/// What a model costs, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Price {
    /// Speech-to-text: per minute of audio.
    UsdPerMinute(f64),
    /// Text-to-speech: per million characters.
    UsdPerMillionCharacters(f64),
    /// Chat: per million prompt tokens and per million completion tokens.
    UsdPerMillionTokens {
        /// Per million prompt (input) tokens.
        prompt: f64,
        /// Per million completion (output) tokens.
        completion: f64,
    },
}

impl Price {
    /// A price as a profile writes it: a number for speech, `[prompt, completion]` for chat.
    pub fn from_value(kind: Kind, value: &Value) -> Result<Self, String> {
        let amount = |value: &Value| value.as_f64().filter(|v| v.is_finite() && *v >= 0.0);
        match kind {
            Kind::Stt | Kind::Tts => {
                let amount = amount(value).ok_or_else(|| format!("{value} is not a price (a number of US dollars)"))?;
                Ok(if kind == Kind::Stt { Self::UsdPerMinute(amount) } else { Self::UsdPerMillionCharacters(amount) })
            }
            Kind::Llm => match value.as_array().map(Vec::as_slice) {
                Some([prompt, completion]) => match (amount(prompt), amount(completion)) {
                    (Some(prompt), Some(completion)) => Ok(Self::UsdPerMillionTokens { prompt, completion }),
                    _ => Err(format!("{value} is not two prices in US dollars")),
                },
                _ => Err(format!("{value} is not [prompt, completion], the US dollars per million tokens of each")),
            },
        }
    }

    /// The price as a profile writes it: the inverse of [`from_value`](Self::from_value).
    pub fn to_value(self) -> Value {
        match self {
            Self::UsdPerMinute(amount) | Self::UsdPerMillionCharacters(amount) => json!(amount),
            Self::UsdPerMillionTokens { prompt, completion } => json!([prompt, completion]),
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::UsdPerMinute(_) => Kind::Stt,
            Self::UsdPerMillionCharacters(_) => Kind::Tts,
            Self::UsdPerMillionTokens { .. } => Kind::Llm,
        }
    }

    fn cost(self, tally: &Tally) -> f64 {
        match self {
            Self::UsdPerMinute(amount) => tally.audio_seconds / 60.0 * amount,
            Self::UsdPerMillionCharacters(amount) => tally.characters as f64 / 1e6 * amount,
            Self::UsdPerMillionTokens { prompt, completion } => {
                (tally.prompt_tokens as f64 * prompt + tally.completion_tokens as f64 * completion) / 1e6
            }
        }
    }
}

/// Prices set by the operator (`PRICES`), by kind, provider and model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable(BTreeMap<(Kind, String, String), Price>);

impl PriceTable {
    /// `kind:provider:model=price` entries separated by commas, such as
    /// `stt:deepgram:nova-3=0.0077,llm:groq:openai/gpt-oss-120b=0.15/0.75`; a chat price is
    /// `prompt/completion` per million tokens. Every bad entry is reported.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let mut table = BTreeMap::new();
        let mut problems = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match Self::entry(entry) {
                Ok((key, price)) => {
                    table.insert(key, price);
                }
                Err(why) => problems.push(format!("`{entry}`: {why}")),
            }
        }
        if problems.is_empty() { Ok(Self(table)) } else { Err(problems) }
    }

    fn entry(entry: &str) -> Result<((Kind, String, String), Price), String> {
        let (key, price) = entry.rsplit_once('=').ok_or("expected kind:provider:model=price")?;
        let mut parts = key.splitn(3, ':');
        let (kind, provider, model) = match (parts.next(), parts.next(), parts.next()) {
            (Some(kind), Some(provider), Some(model)) if !model.is_empty() => (kind, provider, model),
            _ => return Err("expected kind:provider:model=price".into()),
        };
        let kind = match kind {
            "stt" => Kind::Stt,
            "llm" => Kind::Llm,
            "tts" => Kind::Tts,
            other => return Err(format!("`{other}` is not stt, llm or tts")),
        };
        if !registry::exists(kind, provider) {
            return Err(format!(
                "`{provider}` is not a {} provider; use one of {}",
                kind.describe(),
                registry::names(kind)
            ));
        }
        let value = match price.split_once('/') {
            Some((prompt, completion)) => json!([number(prompt)?, number(completion)?]),
            None => json!(number(price)?),
        };
        let price = Price::from_value(kind, &value)?;
        Ok(((kind, provider.to_owned(), model.to_owned()), price))
    }

    /// The settings' price for this provider's model, if `PRICES` gives one.
    pub fn get(&self, kind: Kind, provider: &str, model: &str) -> Option<Price> {
        self.0.get(&(kind, provider.to_owned(), model.to_owned())).copied()
    }
}

fn number(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("`{text}` is not a price"))
}

/// Where a price came from, for the record's reader.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PriceSource {
    Profile,
    Settings,
    /// The provider's list price as known on [`DEFAULT_PRICES_DATE`].
    ListPrice,
}

/// The price of a model: the profile's, else the settings', else the list price.
pub(crate) fn price_of(
    kind: Kind,
    provider: &str,
    model: &str,
    profile: Option<Price>,
    settings: &PriceTable,
) -> Option<(Price, PriceSource)> {
    profile
        .map(|price| (price, PriceSource::Profile))
        .or_else(|| settings.get(kind, provider, model).map(|price| (price, PriceSource::Settings)))
        .or_else(|| registry::default_price(kind, provider, model).map(|price| (price, PriceSource::ListPrice)))
}

/// What one provider and model was used for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    pub requests: u64,
    pub failures: u64,
    pub audio_seconds: f64,
    pub characters: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug)]
struct Line {
    kind: Kind,
    provider: String,
    model: String,
    price: Option<(Price, PriceSource)>,
    tally: Tally,
}

/// The usage of one call, shared by its providers.
#[derive(Debug, Clone, Default)]
pub(crate) struct UsageMeter(Arc<Mutex<Vec<Line>>>);

/// One provider and model's share of a [`UsageMeter`].
#[derive(Debug, Clone)]
pub(crate) struct Counter {
    meter: UsageMeter,
    index: usize,
}

impl UsageMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter for a provider's model; the same provider and model share one line.
    pub fn counter(&self, kind: Kind, provider: &str, model: &str, price: Option<(Price, PriceSource)>) -> Counter {
        let mut lines = self.0.lock().expect("the meter is never left half-changed");
        let found = lines.iter().position(|l| l.kind == kind && l.provider == provider && l.model == model);
        let index = found.unwrap_or_else(|| {
            lines.push(Line {
                kind,
                provider: provider.to_owned(),
                model: model.to_owned(),
                price: price.filter(|(price, _)| price.kind() == kind),
                tally: Tally::default(),
            });
            lines.len() - 1
        });
        Counter { meter: self.clone(), index }
    }

    pub fn summary(&self) -> UsageSummary {
        let lines = self.0.lock().expect("the meter is never left half-changed");
        let providers: Vec<UsageLine> = lines.iter().map(UsageLine::of).collect();
        let total = providers.iter().filter_map(|line| line.cost_usd).sum::<f64>();
        let unpriced = providers.iter().filter(|line| line.cost_usd.is_none()).map(|l| l.model.clone()).collect();
        UsageSummary { currency: "USD", estimated_cost_usd: round(total), unpriced, providers }
    }
}

impl Counter {
    pub fn add(&self, count: impl FnOnce(&mut Tally)) {
        let mut lines = self.meter.0.lock().expect("the meter is never left half-changed");
        if let Some(line) = lines.get_mut(self.index) {
            count(&mut line.tally);
        }
    }
}

/// The call record's `usage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct UsageSummary {
    pub currency: &'static str,
    /// The sum of the priced lines.
    pub estimated_cost_usd: f64,
    /// Models used without a known price, so their cost is left out of the total.
    pub unpriced: Vec<String>,
    pub providers: Vec<UsageLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct UsageLine {
    pub kind: Kind,
    pub provider: String,
    pub model: String,
    /// Requests answered (utterances transcribed, sentences synthesised, model rounds).
    pub requests: u64,
    /// Requests that failed after their retries.
    pub failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub characters: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    pub price: Option<Price>,
    pub price_source: Option<PriceSource>,
    pub cost_usd: Option<f64>,
}

impl UsageLine {
    fn of(line: &Line) -> Self {
        let tally = &line.tally;
        Self {
            kind: line.kind,
            provider: line.provider.clone(),
            model: line.model.clone(),
            requests: tally.requests,
            failures: tally.failures,
            audio_seconds: (line.kind == Kind::Stt).then_some(round(tally.audio_seconds)),
            characters: (line.kind == Kind::Tts).then_some(tally.characters),
            prompt_tokens: (line.kind == Kind::Llm).then_some(tally.prompt_tokens),
            completion_tokens: (line.kind == Kind::Llm).then_some(tally.completion_tokens),
            price: line.price.as_ref().map(|(price, _)| *price),
            price_source: line.price.as_ref().map(|(_, source)| source.clone()),
            cost_usd: line.price.as_ref().map(|(price, _)| round(price.cost(tally))),
        }
    }
}

/// Six decimals: a millionth of a dollar is below any price's precision.
fn round(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_each_kinds_unit() {
        let meter = UsageMeter::new();
        let stt =
            meter.counter(Kind::Stt, "deepgram", "nova-3", Some((Price::UsdPerMinute(0.006), PriceSource::Settings)));
        stt.add(|t| {
            t.requests += 2;
            t.audio_seconds += 90.0;
        });
        let llm = meter.counter(
            Kind::Llm,
            "groq",
            "m",
            Some((Price::UsdPerMillionTokens { prompt: 1.0, completion: 2.0 }, PriceSource::Profile)),
        );
        llm.add(|t| {
            t.prompt_tokens += 1_000;
            t.completion_tokens += 500;
        });
        let tts = meter.counter(Kind::Tts, "elevenlabs", "x", None);
        tts.add(|t| t.characters += 40);
        let same = meter.counter(Kind::Stt, "deepgram", "nova-3", None);
        same.add(|t| t.audio_seconds += 30.0);
        let summary = meter.summary();
        assert_eq!(summary.providers.len(), 3);
        assert_eq!(summary.providers[0].audio_seconds, Some(120.0));
        assert_eq!(summary.providers[0].cost_usd, Some(0.012));
        assert_eq!(summary.providers[1].cost_usd, Some(0.002));
        assert_eq!(summary.providers[2].cost_usd, None);
        assert_eq!(summary.estimated_cost_usd, 0.014);
        assert_eq!(summary.unpriced, ["x"]);
    }

    #[test]
    fn the_price_table_reads_models_with_colons_and_slashes() {
        let table =
            PriceTable::parse("stt:sarvam:saaras:v3=0.01, llm:groq:openai/gpt-oss-120b=0.15/0.75").expect("valid");
        assert_eq!(table.get(Kind::Stt, "sarvam", "saaras:v3"), Some(Price::UsdPerMinute(0.01)));
        assert_eq!(
            table.get(Kind::Llm, "groq", "openai/gpt-oss-120b"),
            Some(Price::UsdPerMillionTokens { prompt: 0.15, completion: 0.75 })
        );
        let problems =
            PriceTable::parse("stt:whisper:x=1,llm:groq:m=0.1,tts:sarvam:bulbul:v3=-2,nonsense").expect_err("bad");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("`whisper` is not a speech-to-text provider"), "{problems:?}");
        assert!(problems[1].contains("[prompt, completion]"), "{problems:?}");
    }

    #[test]
    fn the_profile_wins_over_settings_over_list_prices() {
        let table = PriceTable::parse("stt:deepgram:nova-3=0.1").expect("valid");
        let profile = Some(Price::UsdPerMinute(0.2));
        assert_eq!(price_of(Kind::Stt, "deepgram", "nova-3", profile, &table).map(|p| p.1), Some(PriceSource::Profile));
        assert_eq!(price_of(Kind::Stt, "deepgram", "nova-3", None, &table).map(|p| p.1), Some(PriceSource::Settings));
        assert_eq!(
            price_of(Kind::Stt, "deepgram", "nova-3", None, &PriceTable::default()).map(|p| p.1),
            Some(PriceSource::ListPrice)
        );
    }
}
