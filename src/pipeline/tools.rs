//! The functions the model may call during a call. `capture_lead` keeps what the caller tells
//! about themselves, checked first, so a misheard phone number goes back to the model to ask
//! again instead of into the CRM; `end_call` lets the agent say goodbye and hang up.
//!
//! Every answer is a JSON text for the model: a bad call is explained to it, never raised, so a
//! model that writes broken arguments costs one more round, not the call.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::profiles::{LeadField, LeadFieldKind};
use crate::providers::llm::{ToolCall, ToolSpec};

pub const CAPTURE_LEAD: &str = "capture_lead";
pub const END_CALL: &str = "end_call";
/// Longer values are not details about a caller but the model rambling.
const MAX_TEXT_CHARS: usize = 500;
/// E.164 allows 15 digits; fewer than 7 is no reachable number anywhere.
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;

/// What the caller has told about themselves so far, and the fields the profile asks for.
#[derive(Debug, Clone, Default)]
pub struct LeadSheet {
    fields: Vec<LeadField>,
    captured: BTreeMap<String, String>,
}

/// What running one call did.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    /// The answer for the model.
    pub result: String,
    /// The model asked to end the call.
    pub end_call: bool,
}

impl LeadSheet {
    pub fn new(fields: Vec<LeadField>) -> Self {
        Self { fields, captured: BTreeMap::new() }
    }

    /// The lead as captured, field by field.
    pub fn captured(&self) -> &BTreeMap<String, String> {
        &self.captured
    }

    /// Required fields not captured yet.
    pub fn missing(&self) -> Vec<String> {
        self.fields
            .iter()
            .filter(|field| field.required && !self.captured.contains_key(&field.name))
            .map(|field| field.name.clone())
            .collect()
    }

    /// The functions offered to the model: lead capture only when the profile wants a lead.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let mut specs = Vec::new();
        if !self.fields.is_empty() {
            let properties: Map<String, Value> = self
                .fields
                .iter()
                .map(|field| {
                    let kind = match field.kind {
                        LeadFieldKind::Text => "",
                        LeadFieldKind::Phone => " (a phone number, digits with an optional leading +)",
                        LeadFieldKind::Email => " (an email address)",
                    };
                    let description = format!("{}{kind}", field.description);
                    (field.name.clone(), json!({"type": "string", "description": description.trim()}))
                })
                .collect();
            specs.push(ToolSpec {
                name: CAPTURE_LEAD.into(),
                description: "Saves details the caller has told you about themselves, as soon as you learn them. \
                              Pass only the fields you learned; call again when you learn more or a correction."
                    .into(),
                parameters: json!({"type": "object", "properties": properties, "additionalProperties": false}),
            });
        }
        specs.push(ToolSpec {
            name: END_CALL.into(),
            description: "Ends the call. Use it when the conversation is complete or the caller wants to stop; \
                          say a short goodbye in the same answer."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why the call ends, in a few words."}},
            }),
        });
        specs
    }

    /// Runs one call from the model.
    pub fn call(&mut self, call: &ToolCall) -> ToolOutcome {
        match call.name.as_str() {
            CAPTURE_LEAD if !self.fields.is_empty() => {
                ToolOutcome { result: self.capture(&call.arguments).to_string(), end_call: false }
            }
            END_CALL => ToolOutcome {
                result: json!({"ok": true, "note": "The call ends once your goodbye has been heard."}).to_string(),
                end_call: true,
            },
            other => {
                let names: Vec<String> = self.specs().into_iter().map(|spec| spec.name).collect();
                let error = format!("there is no function named `{other}`; the functions are {}", names.join(", "));
                ToolOutcome { result: json!({"ok": false, "error": error}).to_string(), end_call: false }
            }
        }
    }

    /// Saves every valid value and explains every invalid one, so one bad field does not lose
    /// the others.
    fn capture(&mut self, arguments: &str) -> Value {
        let values = match serde_json::from_str::<Value>(arguments) {
            Ok(Value::Object(values)) => values,
            Ok(other) => return failure(format!("the arguments must be a JSON object, not {other}")),
            Err(e) => return failure(format!("the arguments are not valid JSON: {e}")),
        };
        let mut saved = Map::new();
        let mut errors = Vec::new();
        for (name, value) in values {
            let Some(field) = self.fields.iter().find(|field| field.name == name) else {
                let known: Vec<&str> = self.fields.iter().map(|field| field.name.as_str()).collect();
                errors.push(
                    json!({"field": name, "problem": format!("unknown field; the fields are {}", known.join(", "))}),
                );
                continue;
            };
            let text = match value {
                Value::String(text) => text,
                Value::Number(number) => number.to_string(),
                Value::Null => continue,
                other => {
                    errors.push(json!({"field": name, "problem": format!("must be a string, not {other}")}));
                    continue;
                }
            };
            match check(field.kind, &text) {
                Ok(clean) => {
                    saved.insert(name.clone(), Value::String(clean.clone()));
                    self.captured.insert(name, clean);
                }
                Err(problem) => errors.push(json!({"field": name, "problem": problem})),
            }
        }
        json!({"ok": errors.is_empty(), "saved": saved, "errors": errors, "still_needed": self.missing()})
    }
}

fn failure(error: String) -> Value {
    json!({"ok": false, "error": error})
}

/// The value as stored, or what is wrong with it in words the model can repeat to the caller.
fn check(kind: LeadFieldKind, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("is longer than {MAX_TEXT_CHARS} characters"));
    }
    match kind {
        LeadFieldKind::Text => Ok(value.to_owned()),
        LeadFieldKind::Phone => phone(value),
        LeadFieldKind::Email => email(value),
    }
}

/// Spaces, dashes, dots and brackets are how people say numbers; anything else is not a number.
fn phone(value: &str) -> Result<String, String> {
    let (plus, rest) = match value.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", value),
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(format!("`{value}` is not a phone number: only digits, spaces, dashes and a leading +")),
        }
    }
    if !PHONE_DIGITS.contains(&digits.len()) {
        return Err(format!(
            "`{value}` is not a phone number: it has {} digits, a number has {} to {}; ask the caller to repeat it",
            digits.len(),
            PHONE_DIGITS.start(),
            PHONE_DIGITS.end()
        ));
    }
    Ok(format!("{plus}{digits}"))
}

fn email(value: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("`{value}` is not an email address: {why}; ask the caller to spell it"));
    if value.chars().any(char::is_whitespace) {
        return bad("it has spaces");
    }
    let Some((local, domain)) = value.split_once('@') else { return bad("it has no @") };
    if local.is_empty() || domain.contains('@') {
        return bad("it needs one name before a single @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|label| label.is_empty()) {
        return bad("the part after @ must be a domain such as example.com");
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: LeadFieldKind, required: bool) -> LeadField {
        LeadField { name: name.into(), description: format!("The caller's {name}"), kind, required }
    }

    fn sheet() -> LeadSheet {
        LeadSheet::new(vec![
            field("name", LeadFieldKind::Text, true),
            field("phone", LeadFieldKind::Phone, true),
            field("email", LeadFieldKind::Email, false),
        ])
    }

    fn capture(sheet: &mut LeadSheet, arguments: &str) -> Value {
        let call = ToolCall { id: "call_1".into(), name: CAPTURE_LEAD.into(), arguments: arguments.into() };
        let outcome = sheet.call(&call);
        assert!(!outcome.end_call);
        serde_json::from_str(&outcome.result).expect("tool results are JSON")
    }

    #[test]
    fn the_model_is_offered_the_profiles_fields_and_a_way_to_hang_up() {
        let specs = sheet().specs();
        let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
        assert_eq!(names, [CAPTURE_LEAD, END_CALL]);
        let properties = &specs[0].parameters["properties"];
        assert_eq!(properties.as_object().map(Map::len), Some(3));
        assert!(properties["phone"]["description"].as_str().is_some_and(|d| d.contains("phone number")));
        let without_lead = LeadSheet::new(Vec::new()).specs();
        assert_eq!(without_lead.len(), 1, "no lead fields, no capture_lead");
        assert_eq!(without_lead[0].name, END_CALL);
    }

    #[test]
    fn valid_details_are_saved_and_merged_over_several_calls() {
        let mut sheet = sheet();
        let first = capture(&mut sheet, r#"{"name": "Asha Rao"}"#);
        assert_eq!(first["ok"], true);
        assert_eq!(first["still_needed"], json!(["phone"]));
        let second = capture(&mut sheet, r#"{"phone": "+91 98765-43210", "email": "Asha@Example.COM"}"#);
        assert_eq!(second["ok"], true, "{second}");
        assert_eq!(second["still_needed"], json!([]));
        capture(&mut sheet, r#"{"name": "Asha R. Rao"}"#);
        let captured = sheet.captured();
        assert_eq!(captured["name"], "Asha R. Rao", "a correction replaces the earlier value");
        assert_eq!(captured["phone"], "+919876543210");
        assert_eq!(captured["email"], "Asha@example.com");
    }

    #[test]
    fn invalid_values_are_explained_and_the_valid_ones_still_saved() {
        let mut sheet = sheet();
        let answer =
            capture(&mut sheet, r#"{"name": "Ravi", "phone": "98765", "email": "ravi at gmail", "age": "40"}"#);
        assert_eq!(answer["ok"], false);
        let problems: Vec<(String, String)> = answer["errors"]
            .as_array()
            .expect("errors is a list")
            .iter()
            .map(|e| (e["field"].as_str().unwrap_or("").to_owned(), e["problem"].as_str().unwrap_or("").to_owned()))
            .collect();
        assert!(problems.iter().any(|(f, p)| f == "phone" && p.contains("5 digits")), "{problems:?}");
        assert!(problems.iter().any(|(f, p)| f == "email" && p.contains("not an email")), "{problems:?}");
        assert!(problems.iter().any(|(f, p)| f == "age" && p.contains("unknown field")), "{problems:?}");
        assert_eq!(sheet.captured().get("name").map(String::as_str), Some("Ravi"));
        assert!(!sheet.captured().contains_key("phone"));
    }

    #[test]
    fn broken_arguments_become_an_answer_not_a_crash() {
        let mut sheet = sheet();
        for arguments in ["{\"name\": ", "[1, 2]", "", r#"{"name": {"first": "A"}}"#] {
            let answer = capture(&mut sheet, arguments);
            assert_eq!(answer["ok"], false, "{arguments}: {answer}");
        }
        assert!(sheet.captured().is_empty());
        let unknown = sheet.call(&ToolCall { id: "c".into(), name: "book_visit".into(), arguments: "{}".into() });
        assert!(unknown.result.contains("no function named `book_visit`"), "{}", unknown.result);
    }

    #[test]
    fn phones_and_emails_are_checked_as_people_say_them() {
        assert_eq!(phone("(022) 2345-6789").as_deref(), Ok("02223456789"));
        assert_eq!(phone("9876543210").as_deref(), Ok("9876543210"));
        assert!(phone("98765 43210 ext 5").is_err());
        assert!(phone("+1234567890123456").is_err(), "16 digits");
        assert_eq!(email(" a.b@mail.co.in".trim()).as_deref(), Ok("a.b@mail.co.in"));
        for bad in ["a@b", "@b.com", "a@@b.com", "a@b..com", "a b@c.com"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ending_the_call_is_acknowledged() {
        let mut sheet = LeadSheet::new(Vec::new());
        let outcome = sheet.call(&ToolCall { id: "c".into(), name: END_CALL.into(), arguments: "{}".into() });
        assert!(outcome.end_call);
        let capture = sheet.call(&ToolCall { id: "c".into(), name: CAPTURE_LEAD.into(), arguments: "{}".into() });
        assert!(!capture.end_call && capture.result.contains("no function"), "not offered, so not run");
    }
}
