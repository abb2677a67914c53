//! Reading a provider's options from a profile, each problem naming its option.
//!
//! A provider reads every option it takes through one [`Reader`]; whatever is left over is an
//! unknown option, reported with the names it does take, since a typo would otherwise fall back
//! to a default without a word.

use serde_json::{Value, json};

use super::registry::Options;

pub(super) struct Reader<'a> {
    options: &'a Options,
    provider: &'static str,
    known: Vec<&'static str>,
    problems: Vec<String>,
    /// The options read, complete with defaults.
    resolved: Options,
}

impl<'a> Reader<'a> {
    pub(super) fn new(provider: &'static str, options: &'a Options) -> Self {
        Self { options, provider, known: Vec::new(), problems: Vec::new(), resolved: Options::new() }
    }

    pub(super) fn problem(&mut self, option: &str, why: impl Into<String>) {
        self.problems.push(format!("{option}: {}", why.into()));
    }

    fn value(&mut self, option: &'static str) -> Option<&'a Value> {
        self.known.push(option);
        self.options.get(option).filter(|value| !value.is_null())
    }

    pub(super) fn string(&mut self, option: &'static str, default: &str) -> String {
        let value = match self.value(option) {
            None => default.to_owned(),
            Some(Value::String(text)) => text.trim().to_owned(),
            Some(other) => {
                self.problem(option, format!("{other} is not text"));
                default.to_owned()
            }
        };
        self.resolved.insert(option.into(), json!(value));
        value
    }

    /// Text with no default: left out of the resolved options when not given.
    pub(super) fn optional(&mut self, option: &'static str) -> Option<String> {
        let value = match self.value(option)? {
            Value::String(text) => text.trim().to_owned(),
            other => {
                self.problem(option, format!("{other} is not text"));
                return None;
            }
        };
        self.resolved.insert(option.into(), json!(value));
        Some(value)
    }

    /// One of `allowed`; a value given in another case is taken as meant.
    pub(super) fn choice(&mut self, option: &'static str, default: &str, allowed: &[&str]) -> String {
        let value = self.string(option, default);
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(&value)) {
            Some(found) => {
                self.resolved.insert(option.into(), json!(found));
                (*found).to_owned()
            }
            None => {
                self.problem(option, format!("`{}` is not one of {}", value.escape_debug(), allowed.join(", ")));
                default.to_owned()
            }
        }
    }

    pub(super) fn number(&mut self, option: &'static str, default: f64, range: (f64, f64)) -> f64 {
        let value = match self.value(option) {
            None => default,
            Some(value) => match value.as_f64() {
                Some(number) if number >= range.0 && number <= range.1 => number,
                Some(number) => {
                    self.problem(option, format!("{number} is outside {} to {}", range.0, range.1));
                    default
                }
                None => {
                    self.problem(option, format!("{value} is not a number"));
                    default
                }
            },
        };
        self.resolved.insert(option.into(), json!(value));
        value
    }

    pub(super) fn whole(&mut self, option: &'static str, default: u64, range: (u64, u64)) -> u64 {
        let value = match self.value(option) {
            None => default,
            Some(value) => match value.as_u64() {
                Some(number) if number >= range.0 && number <= range.1 => number,
                _ => {
                    self.problem(option, format!("{value} is not a whole number from {} to {}", range.0, range.1));
                    default
                }
            },
        };
        self.resolved.insert(option.into(), json!(value));
        value
    }

    pub(super) fn flag(&mut self, option: &'static str, default: bool) -> bool {
        let value = match self.value(option) {
            None => default,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => {
                self.problem(option, format!("{other} is not true or false"));
                default
            }
        };
        self.resolved.insert(option.into(), json!(value));
        value
    }

    /// A list of words, such as key terms.
    pub(super) fn words(&mut self, option: &'static str) -> Vec<String> {
        let value = match self.value(option) {
            None => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            Some(other) => {
                self.problem(option, format!("{other} is not a list of words"));
                Vec::new()
            }
        };
        self.resolved.insert(option.into(), json!(value));
        value
    }

    /// The options complete with defaults, or every problem found (unknown options too).
    pub(super) fn finish(mut self) -> Result<Options, Vec<String>> {
        let unknown: Vec<String> = self.options.keys().filter(|k| !self.known.contains(&k.as_str())).cloned().collect();
        for option in unknown {
            self.problem(&option, format!("{} has no such option; it takes {}", self.provider, self.known.join(", ")));
        }
        if self.problems.is_empty() { Ok(self.resolved) } else { Err(self.problems) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(value: Value) -> Options {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn defaults_fill_in_and_problems_name_their_option() {
        let written = options(json!({"model": "NOVA-3", "pace": 9, "smart": true, "flag": "yes"}));
        let mut reader = Reader::new("deepgram", &written);
        assert_eq!(reader.choice("model", "nova-3", &["nova-3", "nova-2"]), "nova-3");
        assert_eq!(reader.number("pace", 1.0, (0.5, 2.0)), 1.0);
        assert!(!reader.flag("flag", false));
        assert_eq!(reader.whole("window", 300, (10, 5000)), 300);
        let problems = reader.finish().expect_err("problems").join("\n");
        assert!(problems.contains("pace: 9 is outside 0.5 to 2"), "{problems}");
        assert!(problems.contains("flag: \"yes\" is not true or false"), "{problems}");
        assert!(
            problems.contains("smart: deepgram has no such option; it takes model, pace, flag, window"),
            "{problems}"
        );

        let empty = Options::new();
        let mut reader = Reader::new("deepgram", &empty);
        reader.choice("model", "nova-3", &["nova-3"]);
        reader.whole("window", 300, (10, 5000));
        assert_eq!(Value::Object(reader.finish().expect("valid")), json!({"model": "nova-3", "window": 300}));
    }
}
