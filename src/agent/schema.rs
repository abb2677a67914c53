//! The part of JSON Schema that function parameters and analysis fields use, checked both ways:
//! a profile's schema is refused when it is malformed (so a typo shows at load, not mid-call),
//! and a model's arguments or answer are checked against it (so a webhook never receives what
//! the schema rules out, and the model learns what to fix).
//!
//! Checked keywords: `type` (one or a list of `object`, `array`, `string`, `number`, `integer`,
//! `boolean`, `null`), `enum`, `const`, `properties`, `required`, `additionalProperties`,
//! `items`, `minimum`, `maximum`, `minLength`, `maxLength`, `minItems`, `maxItems`. Others
//! (`description`, `format`, `pattern`, …) are passed to the model as written and not checked.

use serde_json::{Map, Value};

const TYPES: &[&str] = &["object", "array", "string", "number", "integer", "boolean", "null"];
/// Deeper schemas are refused: no real parameter list nests this far, and it bounds recursion.
const MAX_DEPTH: usize = 16;
/// Problems reported for one value; a model that got everything wrong needs the first few.
const MAX_PROBLEMS: usize = 10;

/// Adds to `problems` what is malformed in `schema`, each naming its place under `at`.
pub(crate) fn check(schema: &Value, at: &str, problems: &mut Vec<String>) {
    check_at(schema, at, 0, problems);
}

fn check_at(schema: &Value, at: &str, depth: usize, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        problems.push(format!("{at}: a schema must be an object, not {}", kind(schema)));
        return;
    };
    if depth > MAX_DEPTH {
        problems.push(format!("{at}: schemas nest at most {MAX_DEPTH} levels deep"));
        return;
    }
    match object.get("type") {
        None => {}
        Some(Value::String(name)) if TYPES.contains(&name.as_str()) => {}
        Some(Value::Array(names))
            if !names.is_empty() && names.iter().all(|n| n.as_str().is_some_and(|n| TYPES.contains(&n))) => {}
        Some(other) => {
            problems.push(format!("{at}.type: {other} is not one of {} (or a list of them)", TYPES.join(", ")))
        }
    }
    if let Some(values) = object.get("enum")
        && values.as_array().is_none_or(Vec::is_empty)
    {
        problems.push(format!("{at}.enum: must be a list of at least one value"));
    }
    if let Some(properties) = object.get("properties") {
        match properties.as_object() {
            Some(properties) => {
                for (name, property) in properties {
                    check_at(property, &format!("{at}.properties.{name}"), depth + 1, problems);
                }
            }
            None => problems.push(format!("{at}.properties: must be an object of schemas")),
        }
    }
    if let Some(required) = object.get("required") {
        match required.as_array() {
            Some(names) if names.iter().all(Value::is_string) => {
                let properties = object.get("properties").and_then(Value::as_object);
                for name in names.iter().filter_map(Value::as_str) {
                    if properties.is_some_and(|p| !p.contains_key(name)) {
                        problems.push(format!("{at}.required: `{name}` is not one of the properties"));
                    }
                }
            }
            _ => problems.push(format!("{at}.required: must be a list of property names")),
        }
    }
    match object.get("additionalProperties") {
        None | Some(Value::Bool(_)) => {}
        Some(schema) => check_at(schema, &format!("{at}.additionalProperties"), depth + 1, problems),
    }
    if let Some(items) = object.get("items") {
        check_at(items, &format!("{at}.items"), depth + 1, problems);
    }
    for bound in ["minimum", "maximum"] {
        if object.get(bound).is_some_and(|b| !b.is_number()) {
            problems.push(format!("{at}.{bound}: must be a number"));
        }
    }
    for count in ["minLength", "maxLength", "minItems", "maxItems"] {
        if object.get(count).is_some_and(|c| c.as_u64().is_none()) {
            problems.push(format!("{at}.{count}: must be a whole number of at least 0"));
        }
    }
}

/// What is wrong with `value` under `schema` (which [`check`] accepted), in words a model can act
/// on; empty when it fits.
pub(crate) fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    validate_at(schema, value, "", &mut problems);
    problems.truncate(MAX_PROBLEMS);
    problems
}

fn validate_at(schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else { return };
    let place = if at.is_empty() { "the value".to_owned() } else { format!("`{at}`") };
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|name| is_type(value, name)) {
            problems.push(format!("{place} must be {}, not {}", names.join(" or "), kind(value)));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        problems.push(format!("{place} is {value}, which is not one of {}", listed.join(", ")));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        problems.push(format!("{place} must be {constant}"));
    }
    match value {
        Value::Object(object) => validate_object(schema, object, at, problems),
        Value::Array(items) => {
            bounds(schema, "minItems", "maxItems", items.len(), &place, "items", problems);
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    validate_at(item_schema, item, &format!("{at}[{index}]"), problems);
                }
            }
        }
        Value::String(text) => {
            bounds(schema, "minLength", "maxLength", text.chars().count(), &place, "characters", problems);
        }
        Value::Number(number) => {
            let number = number.as_f64().unwrap_or_default();
            if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
                && number < minimum
            {
                problems.push(format!("{place} is {number}, below the minimum {minimum}"));
            }
            if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
                && number > maximum
            {
                problems.push(format!("{place} is {number}, above the maximum {maximum}"));
            }
        }
        _ => {}
    }
}

fn validate_object(schema: &Map<String, Value>, object: &Map<String, Value>, at: &str, problems: &mut Vec<String>) {
    let join = |name: &str| if at.is_empty() { name.to_owned() } else { format!("{at}.{name}") };
    let properties = schema.get("properties").and_then(Value::as_object);
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !object.contains_key(name) {
            problems.push(format!("`{}` is required and missing", join(name)));
        }
    }
    for (name, value) in object {
        match properties.and_then(|p| p.get(name)) {
            Some(property) => validate_at(property, value, &join(name), problems),
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    let known: Vec<&str> = properties.into_iter().flat_map(|p| p.keys()).map(String::as_str).collect();
                    problems.push(format!("`{}` is not expected; the fields are {}", join(name), known.join(", ")));
                }
                Some(extra @ Value::Object(_)) => validate_at(extra, value, &join(name), problems),
                _ => {}
            },
        }
    }
}

fn bounds(
    schema: &Map<String, Value>,
    low: &str,
    high: &str,
    count: usize,
    place: &str,
    unit: &str,
    problems: &mut Vec<String>,
) {
    let count = count as u64;
    if let Some(min) = schema.get(low).and_then(Value::as_u64)
        && count < min
    {
        problems.push(format!("{place} has {count} {unit}, fewer than {min}"));
    }
    if let Some(max) = schema.get(high).and_then(Value::as_u64)
        && count > max
    {
        problems.push(format!("{place} has {count} {unit}, more than {max}"));
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => {
            value.as_i64().is_some() || value.as_u64().is_some() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "an object",
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(schema: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        check(schema, "parameters", &mut problems);
        problems
    }

    #[test]
    fn malformed_schemas_are_refused_naming_the_place() {
        assert!(problems(&json!({"type": "object", "properties": {"date": {"type": "string"}}})).is_empty());
        let found = problems(&json!({
            "type": "objekt",
            "properties": {"date": {"type": 3}, "n": {"minLength": -1}, "when": "a string"},
            "required": ["date", "doctor"],
            "enum": [],
        }))
        .join("\n");
        for expected in [
            "parameters.type: \"objekt\" is not one of",
            "parameters.properties.date.type: 3",
            "parameters.properties.n.minLength: must be a whole number",
            "parameters.properties.when: a schema must be an object",
            "parameters.required: `doctor` is not one of the properties",
            "parameters.enum: must be a list of at least one value",
        ] {
            assert!(found.contains(expected), "missing `{expected}` in:\n{found}");
        }
        let mut deep = json!({"type": "string"});
        for _ in 0..20 {
            deep = json!({"type": "array", "items": deep});
        }
        assert!(problems(&deep).iter().any(|p| p.contains("nest at most")), "depth is bounded");
    }

    #[test]
    fn values_are_checked_and_every_problem_is_named() {
        let schema = json!({
            "type": "object",
            "properties": {
                "date": {"type": "string", "minLength": 10, "maxLength": 10},
                "doctor": {"type": "string", "enum": ["anil_sharma", "meena_sharma"]},
                "people": {"type": "integer", "minimum": 1, "maximum": 4},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
            },
            "required": ["date", "doctor"],
            "additionalProperties": false,
        });
        let good = json!({"date": "2026-11-23", "doctor": "anil_sharma", "people": 2, "tags": ["x"]});
        assert!(validate(&schema, &good).is_empty(), "{:?}", validate(&schema, &good));
        assert!(validate(&schema, &json!({"date": "2026-11-23", "doctor": "meena_sharma", "people": 2.0})).is_empty());
        let found = validate(
            &schema,
            &json!({"date": "tomorrow", "doctor": "dr_who", "people": 9, "tags": [1, "a", "b"], "time": "10:00"}),
        )
        .join("\n");
        for expected in [
            "`date` has 8 characters, fewer than 10",
            "`doctor` is \"dr_who\", which is not one of \"anil_sharma\", \"meena_sharma\"",
            "`people` is 9, above the maximum 4",
            "`tags` has 3 items, more than 2",
            "`tags[0]` must be string, not a number",
            "`time` is not expected; the fields are date, doctor, people, tags",
        ] {
            assert!(found.contains(expected), "missing `{expected}` in:\n{found}");
        }
        let missing = validate(&schema, &json!({})).join("\n");
        assert!(missing.contains("`date` is required") && missing.contains("`doctor` is required"), "{missing}");
        assert_eq!(validate(&schema, &json!([1])), ["the value must be object, not a list"]);
    }
}
