//! What a profile wants to know about each call once it is over (`[analysis]`): a summary, the
//! caller's sentiment, an outcome from the profile's list, and fields of its own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::schema;

/// The record's analysis has these keys; custom fields take other names.
pub const RESERVED_FIELDS: &[&str] = &["summary", "sentiment", "outcome"];
/// The caller's mood, as the record gives it.
pub const SENTIMENTS: &[&str] = &["positive", "neutral", "negative"];
const TIMEOUT_SECS: std::ops::RangeInclusive<u32> = 1..=120;

/// A profile's `[analysis]` table: what an LLM should extract from the transcript after the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisOptions {
    /// A few sentences on what the call was about and how it ended.
    #[serde(default)]
    pub summary: bool,
    /// The caller's sentiment: positive, neutral or negative.
    #[serde(default)]
    pub sentiment: bool,
    /// How the call ended, one of these (for example booked, callback, not_interested).
    #[serde(default)]
    pub outcomes: Vec<String>,
    /// Fields of your own, by name, each with its JSON Schema (its `description` says what to
    /// put there).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// A cheaper model of the same provider for the analysis; default: the call's chat model.
    #[serde(default)]
    pub model: Option<String>,
    /// More guidance for the analysis, such as "Write the summary in Hindi."
    #[serde(default)]
    pub instructions: String,
    /// The record waits at most this long for the analysis; default 20 s.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u32,
}

fn default_timeout_secs() -> u32 {
    20
}

/// Adds every problem of `[analysis]` to `problems`, each naming its field.
pub(super) fn check(analysis: &AnalysisOptions, problems: &mut Vec<String>) {
    if !analysis.summary && !analysis.sentiment && analysis.outcomes.is_empty() && analysis.fields.is_empty() {
        problems.push(
            "analysis: asks for nothing; set summary or sentiment to true, or give outcomes or fields".to_owned(),
        );
    }
    for (index, outcome) in analysis.outcomes.iter().enumerate() {
        if !snake_case(outcome) {
            problems.push(format!(
                "analysis.outcomes[{index}]: `{}` must be snake_case, such as not_interested",
                outcome.escape_debug()
            ));
        } else if analysis.outcomes[..index].contains(outcome) {
            problems.push(format!("analysis.outcomes[{index}]: `{outcome}` appears twice"));
        }
    }
    for (name, field_schema) in &analysis.fields {
        let at = format!("analysis.fields.{name}");
        if !snake_case(name) {
            problems.push(format!("{at}: the name must be snake_case, such as follow_up_date"));
        } else if RESERVED_FIELDS.contains(&name.as_str()) {
            problems.push(format!("{at}: `{name}` is set by summary, sentiment or outcomes; choose another name"));
        }
        schema::check(field_schema, &at, problems);
    }
    if analysis.model.as_deref().is_some_and(|model| model.trim().is_empty()) {
        problems.push("analysis.model: must not be empty (leave it out to use llm.model)".to_owned());
    }
    if !TIMEOUT_SECS.contains(&analysis.timeout_secs) {
        problems.push(format!(
            "analysis.timeout_secs: {} is outside {} to {}",
            analysis.timeout_secs,
            TIMEOUT_SECS.start(),
            TIMEOUT_SECS.end()
        ));
    }
}

fn snake_case(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_analysis_that_asks_for_nothing_or_clashes_is_refused() {
        let empty: AnalysisOptions = toml::from_str("").expect("parses");
        let mut problems = Vec::new();
        check(&empty, &mut problems);
        assert!(problems[0].contains("asks for nothing"), "{problems:?}");

        let clashing = AnalysisOptions {
            outcomes: vec!["booked".into(), "Not Interested".into(), "booked".into()],
            fields: BTreeMap::from([("summary".into(), json!({"type": "string"})), ("n".into(), json!({"type": 1}))]),
            timeout_secs: 0,
            ..empty
        };
        let mut problems = Vec::new();
        check(&clashing, &mut problems);
        let problems = problems.join("\n");
        for expected in [
            "analysis.outcomes[1]: `Not Interested` must be snake_case",
            "analysis.outcomes[2]: `booked` appears twice",
            "analysis.fields.summary: `summary` is set by",
            "analysis.fields.n.type: 1",
            "analysis.timeout_secs: 0 is outside 1 to 120",
        ] {
            assert!(problems.contains(expected), "missing `{expected}` in:\n{problems}");
        }
    }
}
