//! Fetching a profile from the n8n agent-config webhook, and telling a real profile apart from
//! the many answers n8n gives when its workflow is not set up right.
//!
//! n8n answers 200 for a workflow that merely started, echoes the request when the last node is
//! the Webhook itself, and answers HTML from Express before a workflow is active. Each of those
//! is refused here with a message that says what n8n answered and what to change in n8n.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;
use url::Url;

use super::profile::{AgentProfile, ProfileDoc};
use crate::config::ProfileDefaults;

/// Profiles are small; anything bigger is not one, and must not be buffered without bound.
const MAX_BODY: usize = 1024 * 1024;

/// What n8n knows about an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum N8nAnswer {
    Profile(Box<AgentProfile>),
    /// The workflow answered that it has no such agent (a 404 that is not n8n's own).
    UnknownAgent,
}

/// n8n could not give a usable answer; each message says what n8n answered and what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum N8nError {
    #[error("n8n did not answer within {0:?}; check that N8N_BASE_URL is reachable and the workflow is fast")]
    Timeout(Duration),
    #[error("n8n could not be reached ({0}); check N8N_BASE_URL and that n8n is running")]
    Unreachable(String),
    #[error(
        "n8n says the webhook is not registered (\"{0}\"); activate the workflow (production URLs answer only while it is active) and check N8N_WEBHOOK_AGENT_CONFIG"
    )]
    NotRegistered(String),
    #[error(
        "n8n refused the request with HTTP {status} (\"{message}\"); the Webhook node has authentication or an IP allowlist, turn it off or allow the worker"
    )]
    Refused { status: u16, message: String },
    #[error(
        "n8n answered {{\"message\":\"Workflow was started\"}}, not a profile; set the Webhook node's Respond option to \"Using 'Respond to Webhook' Node\" and answer the profile from that node"
    )]
    WorkflowStarted,
    #[error(
        "n8n answered \"Workflow executed successfully\" without a profile; no Respond to Webhook node ran, make sure every branch ends in one"
    )]
    NoResponse,
    #[error(
        "n8n answered HTTP 500 \"Error in workflow\"; the workflow failed, open its executions list in n8n to see which node"
    )]
    WorkflowFailed,
    #[error(
        "n8n echoed the request (headers, query, body) instead of a profile; the last node is the Webhook itself, add a node that returns the profile"
    )]
    Echo,
    #[error("n8n answered an HTML page with HTTP {status} (\"{snippet}\"), not JSON; {hint}")]
    Html { status: u16, snippet: String, hint: &'static str },
    #[error(
        "n8n answered HTTP {status} with a body that is not JSON (\"{snippet}\"); the Respond to Webhook node must answer JSON"
    )]
    NotJson { status: u16, snippet: String },
    #[error("n8n answered a profile that cannot be used: {0}; fix the profile the workflow returns")]
    BadProfile(String),
    #[error("n8n answered HTTP {status} (\"{snippet}\")")]
    Status { status: u16, snippet: String },
    #[error("n8n answered more than {MAX_BODY} bytes; a profile is far smaller, check the workflow's response")]
    TooLarge,
}

/// The client for n8n's agent-config webhook, which answers an agent id with its profile.
#[derive(Debug, Clone)]
pub struct N8nClient {
    http: reqwest::Client,
    endpoint: Url,
    timeout: Duration,
}

impl N8nClient {
    /// `base` is N8N_BASE_URL and `path` N8N_WEBHOOK_AGENT_CONFIG.
    pub fn new(http: reqwest::Client, base: &Url, path: &str, timeout: Duration) -> Self {
        let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
        let endpoint = Url::parse(&joined).unwrap_or_else(|_| base.clone());
        Self { http, endpoint, timeout }
    }

    pub(crate) async fn fetch(&self, id: &str, defaults: &ProfileDefaults) -> Result<N8nAnswer, N8nError> {
        let request = self.http.get(self.endpoint.clone()).query(&[("agent_id", id)]).timeout(self.timeout);
        let mut response =
            request.header("accept", "application/json").send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (content_type, authenticate) = (header(CONTENT_TYPE), header(WWW_AUTHENTICATE));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(N8nError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        classify(status, content_type.as_deref(), authenticate.is_some(), &body, id, defaults)
    }

    fn transport_error(&self, error: reqwest::Error) -> N8nError {
        if error.is_timeout() {
            N8nError::Timeout(self.timeout)
        } else {
            // Without the URL: N8N_BASE_URL may carry basic-auth credentials.
            N8nError::Unreachable(error.without_url().to_string())
        }
    }
}

/// Decides what an n8n answer means. Pure, so every n8n behaviour is unit-tested.
pub fn classify(
    status: StatusCode,
    content_type: Option<&str>,
    basic_auth_challenge: bool,
    body: &[u8],
    id: &str,
    defaults: &ProfileDefaults,
) -> Result<N8nAnswer, N8nError> {
    let text = String::from_utf8_lossy(body);
    let snippet = snippet(&text);
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let html = content_type.is_some_and(|t| t.contains("text/html")) || text.trim_start().starts_with('<');
    let message = json.as_ref().and_then(|j| j.get("message")).and_then(Value::as_str).unwrap_or_default().to_owned();
    let code = status.as_u16();

    if matches!(code, 401 | 403) || basic_auth_challenge {
        let message = if message.is_empty() { snippet } else { message };
        return Err(N8nError::Refused { status: code, message });
    }
    if html {
        let hint = if text.contains("Cannot GET") {
            "Express answered because no workflow is active at this path; import and activate the agent-config workflow"
        } else {
            "something other than n8n answered (a proxy or login page?); check N8N_BASE_URL"
        };
        return Err(N8nError::Html { status: code, snippet, hint });
    }
    if code == 404 {
        return match json {
            Some(j) if j.get("hint").is_some() || message.contains("is not registered") => {
                Err(N8nError::NotRegistered(message))
            }
            Some(_) => Ok(N8nAnswer::UnknownAgent),
            None => Err(N8nError::Status { status: code, snippet }),
        };
    }
    if code == 500 && message == "Error in workflow" {
        return Err(N8nError::WorkflowFailed);
    }
    if !status.is_success() {
        return Err(N8nError::Status { status: code, snippet });
    }
    let Some(mut json) = json else {
        return Err(N8nError::NotJson { status: code, snippet });
    };
    // "All Incoming Items" mode answers an array; the profile is its first item.
    if let Value::Array(items) = &mut json {
        if items.is_empty() {
            return Err(N8nError::BadProfile("the workflow answered an empty list".into()));
        }
        json = items.swap_remove(0);
    }
    let Some(object) = json.as_object() else {
        return Err(N8nError::BadProfile(format!("expected a JSON object, got `{snippet}`")));
    };
    if message == "Workflow was started" && object.len() == 1 {
        return Err(N8nError::WorkflowStarted);
    }
    if message.starts_with("Workflow executed successfully") {
        return Err(N8nError::NoResponse);
    }
    let echo_keys = ["headers", "params", "query", "body"];
    if object.contains_key("headers") && echo_keys.iter().filter(|k| object.contains_key(**k)).count() >= 3 {
        return Err(N8nError::Echo);
    }
    if object.get("id").is_none_or(|v| !v.is_string()) {
        return Err(N8nError::BadProfile("missing field `id` (n8n profiles must name their agent id)".into()));
    }
    let doc: ProfileDoc = serde_json::from_value(json).map_err(|e| N8nError::BadProfile(e.to_string()))?;
    doc.resolve(id, defaults)
        .map(|profile| N8nAnswer::Profile(Box::new(profile)))
        .map_err(|problems| N8nError::BadProfile(problems.join("; ")))
}

/// The start of a body, on one line, for log messages.
fn snippet(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::profiles::tests::defaults;

    fn answer(status: u16, content_type: &str, body: &str) -> Result<N8nAnswer, N8nError> {
        let status = StatusCode::from_u16(status).expect("valid status");
        classify(status, Some(content_type), false, body.as_bytes(), "clinic", &defaults())
    }

    const JSON: &str = "application/json; charset=utf-8";

    #[test]
    fn a_real_profile_is_accepted() {
        let body = r#"{"id":"clinic","name":"Clinic","system_prompt":"You answer calls.","voice":"karun"}"#;
        let Ok(N8nAnswer::Profile(profile)) = answer(200, JSON, body) else { panic!("profile expected") };
        assert_eq!((profile.name.as_str(), profile.voice.as_str()), ("Clinic", "karun"));
        let list = format!("[{body}]");
        assert!(matches!(answer(200, JSON, &list), Ok(N8nAnswer::Profile(_))), "allEntries arrays use the first item");
    }

    #[test]
    fn n8n_default_answers_are_not_profiles() {
        assert_eq!(answer(200, JSON, r#"{"message":"Workflow was started"}"#), Err(N8nError::WorkflowStarted));
        assert_eq!(answer(200, JSON, r#"{"message":"Workflow executed successfully"}"#), Err(N8nError::NoResponse));
        assert_eq!(answer(500, JSON, r#"{"message":"Error in workflow"}"#), Err(N8nError::WorkflowFailed));
        let echo = r#"{"headers":{"host":"x"},"params":{},"query":{"agent_id":"clinic"},"body":{},"webhookUrl":"http://x","executionMode":"production"}"#;
        assert_eq!(answer(200, JSON, echo), Err(N8nError::Echo));
    }

    #[test]
    fn not_registered_differs_from_unknown_agent() {
        let not_registered = r#"{"code":404,"message":"The requested webhook \"GET agent-config\" is not registered.","hint":"The workflow must be active for a production URL to run successfully."}"#;
        assert!(
            matches!(answer(404, JSON, not_registered), Err(N8nError::NotRegistered(m)) if m.contains("GET agent-config"))
        );
        let wrong_method = r#"{"code":404,"message":"This webhook is not registered for GET requests. Did you mean to make a POST request?"}"#;
        assert!(matches!(answer(404, JSON, wrong_method), Err(N8nError::NotRegistered(_))));
        assert_eq!(answer(404, JSON, r#"{"error":"unknown_agent","agent_id":"clinic"}"#), Ok(N8nAnswer::UnknownAgent));
    }

    #[test]
    fn html_and_garbage_are_explained() {
        let express = "<!DOCTYPE html><html><body><pre>Cannot GET /webhook/agent-config</pre></body></html>";
        let Err(N8nError::Html { hint, .. }) = answer(404, "text/html; charset=utf-8", express) else { panic!("html") };
        assert!(hint.contains("activate"));
        let Err(N8nError::Html { hint, .. }) = answer(200, "text/html", "<html>Sign in</html>") else { panic!("html") };
        assert!(hint.contains("N8N_BASE_URL"));
        assert!(matches!(answer(200, JSON, "{not json"), Err(N8nError::NotJson { status: 200, .. })));
        assert!(matches!(answer(502, "text/plain", "Bad gateway"), Err(N8nError::Status { status: 502, .. })));
    }

    #[test]
    fn auth_failures_say_so() {
        let status = StatusCode::UNAUTHORIZED;
        let refused = classify(status, Some("text/plain"), true, b"Authorization is required!", "clinic", &defaults());
        assert_eq!(refused, Err(N8nError::Refused { status: 401, message: "Authorization is required!".into() }));
    }

    #[test]
    fn partial_or_wrong_profiles_are_refused_naming_the_field() {
        let Err(N8nError::BadProfile(why)) = answer(200, JSON, r#"{"id":"clinic","name":"Clinic"}"#) else {
            panic!("partial")
        };
        assert!(why.contains("system_prompt"), "{why}");
        let Err(N8nError::BadProfile(why)) = answer(200, JSON, r#"{"name":"Clinic","system_prompt":"x"}"#) else {
            panic!("no id")
        };
        assert!(why.contains("`id`"), "{why}");
        let Err(N8nError::BadProfile(why)) = answer(200, JSON, r#"{"id":"other","system_prompt":"x"}"#) else {
            panic!("wrong id")
        };
        assert!(why.contains("does not match"), "{why}");
        let Err(N8nError::BadProfile(why)) =
            answer(200, JSON, r#"{"id":"clinic","system_prompt":"x","systemPrompt":"y"}"#)
        else {
            panic!("unknown")
        };
        assert!(why.contains("unknown field `systemPrompt`"), "{why}");
    }
}
