//! `{{name}}` placeholders in a profile's prompt and greeting, filled for each call.
//!
//! Values come, weakest first, from the profile's `[variables]`, from the call's metadata (what
//! the token server or an n8n workflow that created the call put there) and from built-ins that
//! no metadata can override: `today`, `weekday`, `now` and `time` in the profile's time zone,
//! `time_zone`, `agent_name`, `agent_id` and `language`. A placeholder with no value is rendered
//! empty and named in a warning, so a missing value never reaches the caller as `{{name}}`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::profiles::{AgentProfile, valid_variable_name};

/// The text with every known placeholder filled; `missing` names those that had no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub missing: BTreeSet<String>,
}

/// What the placeholders of one call stand for.
pub fn values(
    profile: &AgentProfile,
    language: &str,
    metadata: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> BTreeMap<String, String> {
    let mut values = profile.variables.clone();
    values.extend(metadata.iter().map(|(name, value)| (name.clone(), value.clone())));
    let zone: chrono_tz::Tz = profile.time_zone.parse().unwrap_or(chrono_tz::Asia::Kolkata);
    let local = now.with_timezone(&zone);
    let built_in = [
        ("today", local.format("%Y-%m-%d").to_string()),
        ("weekday", local.format("%A").to_string()),
        ("now", local.format("%Y-%m-%d %H:%M").to_string()),
        ("time", local.format("%H:%M").to_string()),
        ("time_zone", profile.time_zone.clone()),
        ("agent_name", profile.name.clone()),
        ("agent_id", profile.id.clone()),
        ("language", language.to_owned()),
    ];
    values.extend(built_in.map(|(name, value)| (name.to_owned(), value)));
    values
}

/// Fills `{{name}}` (spaces inside the braces allowed) from `values`; text that is not a
/// placeholder, such as `{{ 2 + 2 }}` or a lone `{{`, stays as written.
pub fn render(template: &str, values: &BTreeMap<String, String>) -> Rendered {
    let mut text = String::with_capacity(template.len());
    let mut missing = BTreeSet::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let name = after[..close].trim();
        text.push_str(&rest[..open]);
        if valid_variable_name(name) {
            match values.get(name) {
                Some(value) => text.push_str(value),
                None => {
                    missing.insert(name.to_owned());
                }
            }
            rest = &after[close + 2..];
        } else {
            text.push_str("{{");
            rest = after;
        }
    }
    text.push_str(rest);
    Rendered { text, missing }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::profiles::ProfileDoc;

    fn profile(extra: &str) -> AgentProfile {
        let doc: ProfileDoc =
            toml::from_str(&format!("name = \"Sunita\"\nsystem_prompt = \"x\"\n{extra}")).expect("parses");
        doc.resolve("clinic", &crate::profiles::tests::defaults()).expect("valid")
    }

    #[test]
    fn placeholders_are_filled_and_the_missing_ones_named_and_emptied() {
        let values = BTreeMap::from([("caller_name".to_owned(), "Asha".to_owned())]);
        let rendered = render("Hi {{caller_name}}, {{ caller_name }}! Your {{plan}} ends {{due}}.", &values);
        assert_eq!(rendered.text, "Hi Asha, Asha! Your  ends .");
        assert_eq!(rendered.missing, BTreeSet::from(["due".to_owned(), "plan".to_owned()]));
        let kept = render("{{ 2 + 2 }} and {{ and {{x", &values);
        assert_eq!(kept.text, "{{ 2 + 2 }} and {{ and {{x", "what is not a placeholder stays");
        assert!(kept.missing.is_empty());
        assert_eq!(render("नमस्ते {{caller_name}} जी", &values).text, "नमस्ते Asha जी");
    }

    #[test]
    fn built_ins_use_the_profiles_time_zone_and_win_over_metadata() {
        // 20:00 UTC on Sunday 22 November is already Monday in India.
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 20, 0, 0).single().expect("a valid time");
        let metadata = BTreeMap::from([
            ("today".to_owned(), "someday".to_owned()),
            ("clinic".to_owned(), "from metadata".to_owned()),
        ]);
        let india = values(&profile("[variables]\nclinic = \"Sharma Clinic\"\nfloor = \"2\""), "hi-IN", &metadata, now);
        assert_eq!(india["today"], "2026-11-23");
        assert_eq!(india["weekday"], "Monday");
        assert_eq!(india["now"], "2026-11-23 01:30");
        assert_eq!(india["agent_name"], "Sunita");
        assert_eq!(india["language"], "hi-IN");
        assert_eq!(india["clinic"], "from metadata", "metadata beats the profile's default");
        assert_eq!(india["floor"], "2", "the profile's default fills what metadata lacks");
        let london = values(&profile("time_zone = \"Europe/London\""), "en-IN", &BTreeMap::new(), now);
        assert_eq!((london["today"].as_str(), london["weekday"].as_str()), ("2026-11-22", "Sunday"));
    }
}
