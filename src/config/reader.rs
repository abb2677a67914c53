//! Typed reads of merged settings that record every problem instead of stopping at the first.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use url::Url;

use super::layers::{Entry, Merged};
use super::redact::redact_url;
use super::spec;
use super::{ConfigError, Problem, Secret};

pub(super) struct Reader<'a> {
    merged: &'a Merged,
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    pub fn new(merged: &'a Merged) -> Self {
        Self { merged, problems: merged.problems.clone() }
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() { Ok(()) } else { Err(ConfigError { problems: self.problems }) }
    }

    pub fn problem(&mut self, name: &str, why: String) {
        self.problems.push(Problem { name: name.to_owned(), why });
    }

    /// A problem about a value that was set, naming where it came from and, unless secret, the value.
    fn invalid(&mut self, name: &str, entry: &Entry, expected: impl Display) {
        self.invalid_shown(name, entry, &entry.value, expected);
    }

    /// As [`invalid`](Self::invalid), showing `shown` for the value (a redacted URL, say).
    fn invalid_shown(&mut self, name: &str, entry: &Entry, shown: &str, expected: impl Display) {
        let secret = spec::find(name).is_some_and(|s| s.secret);
        let shown = if secret { String::new() } else { format!("`{shown}` ") };
        self.problem(name, format!("{shown}(from {}) is not valid: expected {expected}", entry.origin));
    }

    /// The trimmed value, treating an empty one as unset.
    fn entry(&self, name: &str) -> Option<&'a Entry> {
        self.merged.entries.get(name).filter(|e| !e.value.trim().is_empty())
    }

    fn missing(&mut self, name: &str) {
        let doc = spec::find(name).map_or("", |s| s.doc);
        self.problem(name, format!("is required but not set ({doc})"));
    }

    pub fn string(&mut self, name: &str, required: bool) -> Option<String> {
        match self.entry(name) {
            Some(entry) => Some(entry.value.trim().to_owned()),
            None => {
                if required {
                    self.missing(name);
                }
                None
            }
        }
    }

    pub fn secret(&mut self, name: &str, required: bool) -> Option<Secret> {
        self.string(name, required).map(Secret::new)
    }

    pub fn url(&mut self, name: &str, schemes: &[&str], required: bool) -> Option<Url> {
        let Some(entry) = self.entry(name) else {
            if required {
                self.missing(name);
            }
            return None;
        };
        match Url::parse(entry.value.trim()) {
            Ok(url) if schemes.contains(&url.scheme()) && url.host().is_some() => Some(url),
            _ => {
                let schemes: Vec<_> = schemes.iter().map(|s| format!("{s}://")).collect();
                let shown = redact_url(&entry.value);
                self.invalid_shown(name, entry, &shown, format!("a URL starting with {}", schemes.join(" or ")));
                None
            }
        }
    }

    /// An http(s) endpoint with a built-in default; a trailing slash is dropped so paths join cleanly.
    pub fn base_url(&mut self, name: &str) -> Url {
        let fallback = spec::find(name).and_then(|s| s.default).expect("base URL settings have defaults");
        let url = self.url(name, &["http", "https"], true);
        let mut url = url.unwrap_or_else(|| Url::parse(fallback).expect("built-in defaults are valid URLs"));
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
        url
    }

    /// A webhook path such as `/webhook/agent-config`.
    pub fn path(&mut self, name: &str) -> String {
        let value = self.string(name, true).unwrap_or_default();
        if !value.is_empty() && (!value.starts_with('/') || value.contains(char::is_whitespace)) {
            let entry = self.entry(name).expect("a non-empty value has an entry");
            self.invalid(name, entry, "a path starting with `/`, such as /webhook/agent-config");
        }
        value
    }

    pub fn parsed<T: FromStr>(&mut self, name: &str, expected: &str) -> Option<T> {
        let entry = self.entry(name)?;
        match entry.value.trim().parse() {
            Ok(value) => Some(value),
            Err(_) => {
                self.invalid(name, entry, expected);
                None
            }
        }
    }

    /// A whole number in `range`; settings read this way always have a default.
    pub fn number<T>(&mut self, name: &str, range: RangeInclusive<T>) -> T
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let fallback = spec::find(name).and_then(|s| s.default).and_then(|d| d.parse().ok());
        let fallback = fallback.expect("numeric settings have valid numeric defaults");
        let expected = format!("a whole number from {} to {}", range.start(), range.end());
        let Some(entry) = self.entry(name) else {
            self.missing(name);
            return fallback;
        };
        match entry.value.trim().parse::<T>() {
            Ok(value) if range.contains(&value) => value,
            _ => {
                self.invalid(name, entry, expected);
                fallback
            }
        }
    }

    /// A number above 0 and at most 1; settings read this way always have a default.
    pub fn fraction(&mut self, name: &str) -> f64 {
        let fallback = spec::find(name).and_then(|s| s.default).and_then(|d| d.parse().ok());
        let fallback = fallback.expect("fraction settings have valid defaults");
        let Some(entry) = self.entry(name) else {
            self.missing(name);
            return fallback;
        };
        match entry.value.trim().parse::<f64>() {
            Ok(value) if value > 0.0 && value <= 1.0 => value,
            _ => {
                self.invalid(name, entry, "a number above 0 and at most 1, such as 0.75");
                fallback
            }
        }
    }

    pub fn flag(&mut self, name: &str) -> bool {
        let Some(entry) = self.entry(name) else { return false };
        match entry.value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                self.invalid(name, entry, "true or false");
                false
            }
        }
    }

    pub fn choice<T>(&mut self, name: &str, parse: impl Fn(&str) -> Option<T>, expected: &str) -> Option<T> {
        let entry = self.entry(name)?;
        let parsed = parse(entry.value.trim());
        if parsed.is_none() {
            self.invalid(name, entry, expected);
        }
        parsed
    }

    /// Browser origins such as `https://app.example.com`; `*` is refused because tokens are
    /// credentials and must not be handed to every site.
    pub fn origins(&mut self, name: &str) -> Vec<String> {
        let Some(entry) = self.entry(name) else { return Vec::new() };
        let mut origins = Vec::new();
        for item in entry.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match Url::parse(item) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() && url.path() == "/" => {
                    origins.push(url.origin().ascii_serialization());
                }
                _ => self.problem(
                    name,
                    format!("`{item}` (from {}) is not an origin: expected scheme://host[:port], such as https://app.example.com", entry.origin),
                ),
            }
        }
        origins
    }
}
