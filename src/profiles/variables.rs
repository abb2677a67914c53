//! A profile's time zone and the default values of its `{{name}}` placeholders.

use std::collections::BTreeMap;

/// Where the profile's callers are, unless it says otherwise: the product serves India.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Kolkata";
const MAX_VARIABLES: usize = 64;
const MAX_VALUE_CHARS: usize = 1_000;

/// A placeholder name: a letter or `_`, then letters, digits or `_`, at most 64 (`caller_name`).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Adds the problems of `time_zone` and `[variables]` to `problems`.
pub(super) fn check(time_zone: &str, variables: &BTreeMap<String, String>, problems: &mut Vec<String>) {
    if time_zone.parse::<chrono_tz::Tz>().is_err() {
        problems.push(format!(
            "time_zone: `{}` is not a time zone; use an IANA name such as Asia/Kolkata or Europe/London",
            time_zone.chars().take(64).collect::<String>().escape_debug()
        ));
    }
    if variables.len() > MAX_VARIABLES {
        problems.push(format!("variables: {} values; at most {MAX_VARIABLES}", variables.len()));
    }
    for (name, value) in variables {
        if !valid_name(name) {
            problems.push(format!(
                "variables.{}: names are a letter or _, then letters, digits or _ (at most 64)",
                name.escape_debug()
            ));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            problems.push(format!("variables.{name}: is longer than {MAX_VALUE_CHARS} characters"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_and_variable_names_are_checked() {
        let mut problems = Vec::new();
        check("Asia/Kolkata", &BTreeMap::from([("clinic_phone".into(), "0124 400 1234".into())]), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        check(
            "India/Delhi",
            &BTreeMap::from([("2nd".into(), String::new()), ("a-b".into(), String::new())]),
            &mut problems,
        );
        let problems = problems.join("\n");
        assert!(problems.contains("time_zone: `India/Delhi` is not a time zone"), "{problems}");
        assert!(problems.contains("variables.2nd:") && problems.contains("variables.a-b:"), "{problems}");
    }
}
