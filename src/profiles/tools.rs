//! A profile's own tools: functions the model may call during the call, each answered by a
//! webhook (an n8n workflow, or any HTTPS endpoint) while the caller waits.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::agent::schema;

/// Names the built-in functions take.
const RESERVED: &[&str] = &["capture_lead", "end_call"];
/// A tool the caller waits for longer than this is not a conversation any more.
const TIMEOUT_MS: std::ops::RangeInclusive<u32> = 100..=30_000;
/// Chat APIs refuse longer descriptions, and every one is sent on every turn.
const MAX_DESCRIPTION_CHARS: usize = 1_024;
/// Parameters are sent on every turn too.
const MAX_PARAMETERS_BYTES: usize = 8 * 1024;

/// One tool as a profile declares it (`[[tools]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDef {
    /// What the model calls it: letters, digits, `_` and `-`, such as `check_availability`.
    pub name: String,
    /// When and why to call it, for the model.
    pub description: String,
    /// JSON Schema of the arguments (an object); default: no arguments.
    #[serde(default = "no_parameters")]
    pub parameters: Value,
    /// A path under N8N_BASE_URL (`/webhook/clinic-availability`) or a full http(s) URL.
    pub webhook: String,
    /// How long one try may take; default 5000 ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// It changes something (a booking): never retried, never cancelled by an interruption.
    #[serde(default)]
    pub side_effects: bool,
    /// Said once when the tool is slow; default: the profile's filler.
    #[serde(default)]
    pub filler: Option<String>,
}

fn no_parameters() -> Value {
    json!({"type": "object", "properties": {}})
}

fn default_timeout_ms() -> u32 {
    5_000
}

/// Where a tool's webhook is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook<'a> {
    /// A path under N8N_BASE_URL.
    N8nPath(&'a str),
    /// A URL of its own.
    Url(url::Url),
}

impl ToolDef {
    /// Where to call, or `None` when `webhook` is neither a path nor an http(s) URL (refused
    /// when the profile is loaded).
    pub fn webhook(&self) -> Option<Webhook<'_>> {
        if self.webhook.starts_with('/') {
            return Some(Webhook::N8nPath(&self.webhook));
        }
        url::Url::parse(&self.webhook).ok().filter(|url| matches!(url.scheme(), "http" | "https")).map(Webhook::Url)
    }
}

/// Adds every problem of the profile's tools to `problems`, each naming its field.
pub(super) fn check(tools: &[ToolDef], problems: &mut Vec<String>) {
    for (index, tool) in tools.iter().enumerate() {
        let at = format!("tools[{index}]");
        let name_ok = (1..=64).contains(&tool.name.len())
            && tool.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            problems.push(format!(
                "{at}.name: `{}` must be 1 to 64 letters, digits, `_` or `-`, such as check_availability",
                tool.name.escape_debug()
            ));
        } else if RESERVED.contains(&tool.name.as_str()) {
            problems.push(format!("{at}.name: `{}` is a built-in function; choose another name", tool.name));
        } else if tools[..index].iter().any(|earlier| earlier.name == tool.name) {
            problems.push(format!("{at}.name: `{}` appears twice", tool.name));
        }
        let description = tool.description.trim();
        if description.is_empty() || description.chars().count() > MAX_DESCRIPTION_CHARS {
            problems.push(format!("{at}.description: must be 1 to {MAX_DESCRIPTION_CHARS} characters"));
        }
        if tool.parameters.get("type").and_then(Value::as_str) != Some("object") {
            problems.push(format!("{at}.parameters: must be a JSON Schema with \"type\": \"object\""));
        }
        schema::check(&tool.parameters, &format!("{at}.parameters"), problems);
        if tool.parameters.to_string().len() > MAX_PARAMETERS_BYTES {
            problems.push(format!("{at}.parameters: is longer than {MAX_PARAMETERS_BYTES} bytes as JSON"));
        }
        if tool.webhook().is_none() {
            problems.push(format!(
                "{at}.webhook: `{}` must be a path under N8N_BASE_URL (starting with /, such as /webhook/check-slot) \
                 or an http(s) URL",
                tool.webhook.chars().take(100).collect::<String>().escape_debug()
            ));
        }
        if !TIMEOUT_MS.contains(&tool.timeout_ms) {
            problems.push(format!(
                "{at}.timeout_ms: {} is outside {} to {}",
                tool.timeout_ms,
                TIMEOUT_MS.start(),
                TIMEOUT_MS.end()
            ));
        }
        if tool.filler.as_deref().is_some_and(|filler| filler.trim().is_empty()) {
            problems.push(format!("{at}.filler: must not be empty (leave it out to use the profile's filler)"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, webhook: &str) -> ToolDef {
        ToolDef {
            name: name.into(),
            description: "Checks something.".into(),
            parameters: no_parameters(),
            webhook: webhook.into(),
            timeout_ms: 5_000,
            side_effects: false,
            filler: None,
        }
    }

    #[test]
    fn webhooks_are_n8n_paths_or_urls() {
        assert_eq!(tool("a", "/webhook/x").webhook(), Some(Webhook::N8nPath("/webhook/x")));
        let own = tool("a", "https://api.example.com/slots");
        assert!(matches!(own.webhook(), Some(Webhook::Url(u)) if u.host_str() == Some("api.example.com")));
        assert_eq!(tool("a", "webhook/x").webhook(), None);
        assert_eq!(tool("a", "ftp://example.com/x").webhook(), None);
    }

    #[test]
    fn bad_tools_are_reported_by_field() {
        let mut bad = tool("end_call", "webhook/x");
        bad.timeout_ms = 60_000;
        bad.parameters = json!({"type": "array"});
        let mut problems = Vec::new();
        check(&[tool("check slot", "/w"), bad, tool("ok", "/w"), tool("ok", "/w")], &mut problems);
        let problems = problems.join("\n");
        for expected in [
            "tools[0].name: `check slot` must be",
            "tools[1].name: `end_call` is a built-in function",
            "tools[1].parameters: must be a JSON Schema with \"type\": \"object\"",
            "tools[1].webhook: `webhook/x` must be a path",
            "tools[1].timeout_ms: 60000 is outside 100 to 30000",
            "tools[3].name: `ok` appears twice",
        ] {
            assert!(problems.contains(expected), "missing `{expected}` in:\n{problems}");
        }
    }
}
