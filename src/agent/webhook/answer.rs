//! What a webhook's answer means for the model: a result (with words to say and a hang-up
//! request, when it carries them), or a failure told in words the model can pass on.
//!
//! n8n answers in ways that look like success and are not: `{"message":"Workflow was started"}`
//! from a Webhook node that answers at once, an empty 200 from a workflow that failed before its
//! Respond node, and 404s naming an inactive workflow. Each gets its own explanation, in the log
//! for the operator and in the result for the model.

use serde_json::{Map, Value, json};

/// The longest `say` spoken; a webhook that sends more is sending a document, not a sentence.
const MAX_SAY_CHARS: usize = 1_000;
/// How much of an error's own message goes to the model.
const MAX_DETAIL_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Answer {
    /// The webhook's result for the model.
    Result { result: Value, say: Option<String>, end_call: bool },
    /// No usable result; `error` says why, `detail` is the webhook's own message, when it gave
    /// one (for the model only: it may hold what the caller said).
    Failure { error: String, detail: Option<String> },
}

impl Answer {
    pub fn failure(error: impl Into<String>) -> Self {
        Self::Failure { error: error.into(), detail: None }
    }

    /// The model's view: the webhook's JSON as it came (without `say`, which the conversation
    /// reports as said), or `{"ok": false, "error": …}`.
    pub fn for_model(&self) -> String {
        match self {
            Self::Result { result, .. } => result.to_string(),
            Self::Failure { error, detail } => {
                let mut failure = json!({"ok": false, "error": error});
                if let Some(detail) = detail {
                    failure["detail"] = json!(detail);
                }
                failure.to_string()
            }
        }
    }
}

/// Reads an answer with HTTP `status` and `body` (cut at the size limit when `truncated`).
pub(super) fn classify(status: u16, body: &[u8], truncated: bool) -> Answer {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    let json: Option<Value> = if truncated { None } else { serde_json::from_str(trimmed).ok() };
    match status {
        200..=299 => success(trimmed, json, truncated),
        300..=399 => Answer::failure(format!(
            "the tool's webhook answered a redirect (HTTP {status}); redirects are not followed, so the tool's \
             address must be updated"
        )),
        404 if trimmed.contains("is not registered") => Answer::failure(
            "n8n says the tool's webhook is not registered: its workflow is not active, or the path is wrong",
        ),
        404 if looks_like_html(trimmed) => Answer::failure(
            "the tool's webhook does not exist yet (n8n answered a 404 page: it is starting, or no workflow is active)",
        ),
        400..=499 => Answer::Failure {
            error: format!("the tool refused the request (HTTP {status})"),
            detail: json.as_ref().and_then(message),
        },
        _ => Answer::Failure {
            error: format!("the tool failed on its side (HTTP {status}); it may work if tried again later"),
            detail: json.as_ref().and_then(message),
        },
    }
}

fn success(text: &str, json: Option<Value>, truncated: bool) -> Answer {
    if truncated {
        return Answer::failure("the tool answered more than the agent reads; it must answer a short JSON object");
    }
    if text.is_empty() {
        return Answer::failure(
            "the tool answered nothing (an empty 200: in n8n, the workflow failed before its Respond to Webhook node)",
        );
    }
    let Some(json) = json else {
        let what = if looks_like_html(text) { "an HTML page" } else { "text that is not JSON" };
        return Answer::failure(format!("the tool answered {what} instead of a JSON result"));
    };
    let Value::Object(mut object) = json else {
        return Answer::Result { result: json, say: None, end_call: false };
    };
    if workflow_started(&object) {
        return Answer::failure(
            "n8n answered \"Workflow was started\": the tool's Webhook node responds immediately, so its result never \
             comes back (set the node to respond with a Respond to Webhook node)",
        );
    }
    let say = match object.remove("say") {
        Some(Value::String(say)) if !say.trim().is_empty() => Some(say.chars().take(MAX_SAY_CHARS).collect()),
        _ => None,
    };
    let end_call = object.get("end_call").and_then(Value::as_bool).unwrap_or(false);
    Answer::Result { result: Value::Object(object), say, end_call }
}

/// n8n's answer from a Webhook node in "Immediately" mode, which runs the workflow afterwards.
fn workflow_started(object: &Map<String, Value>) -> bool {
    object.len() == 1 && object.get("message").and_then(Value::as_str) == Some("Workflow was started")
}

fn looks_like_html(text: &str) -> bool {
    let start = text.trim_start().get(..15).unwrap_or(text).to_ascii_lowercase();
    start.starts_with("<!doctype") || start.starts_with("<html") || start.starts_with('<')
}

/// The error's own words: `error` or `message`, as text or as `{message}`.
fn message(json: &Value) -> Option<String> {
    let found = ["error", "message"].iter().find_map(|key| match json.get(key)? {
        Value::String(text) => Some(text.clone()),
        Value::Object(inner) => inner.get("message").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    })?;
    Some(found.chars().take(MAX_DETAIL_CHARS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure_of(status: u16, body: &str) -> String {
        match classify(status, body.as_bytes(), false) {
            Answer::Failure { error, .. } => error,
            other => panic!("HTTP {status} {body:?} should fail, got {other:?}"),
        }
    }

    #[test]
    fn a_json_answer_is_the_result_with_its_words_and_hang_up_taken_out() {
        let answer = classify(200, br#"{"booked":true,"say":"Done, you're booked.","end_call":false}"#, false);
        assert_eq!(
            answer,
            Answer::Result {
                result: json!({"booked": true, "end_call": false}),
                say: Some("Done, you're booked.".into()),
                end_call: false
            }
        );
        let Answer::Result { end_call, say, .. } = classify(200, br#"{"end_call":true,"say":" "}"#, false) else {
            panic!("a result")
        };
        assert!(end_call && say.is_none(), "blank words are not said");
        let list = classify(201, b"[\"09:00\",\"09:15\"]", false);
        assert_eq!(list, Answer::Result { result: json!(["09:00", "09:15"]), say: None, end_call: false });
        assert_eq!(list.for_model(), r#"["09:00","09:15"]"#);
    }

    #[test]
    fn n8ns_non_answers_are_failures_that_say_what_to_fix() {
        assert!(failure_of(200, r#"{"message":"Workflow was started"}"#).contains("responds immediately"));
        assert!(failure_of(200, "").contains("empty 200"));
        assert!(failure_of(200, "  \n").contains("empty 200"));
        assert!(failure_of(200, "<!DOCTYPE html><html><body>Hi</body></html>").contains("an HTML page"));
        assert!(failure_of(200, "OK").contains("text that is not JSON"));
        let registered =
            r#"{"code":404,"message":"The requested webhook \"POST clinic-book\" is not registered.","hint":"..."}"#;
        assert!(failure_of(404, registered).contains("not registered: its workflow is not active"));
        assert!(failure_of(404, "<!DOCTYPE html>\n<pre>Cannot POST /webhook/x</pre>").contains("does not exist yet"));
        assert!(failure_of(302, "").contains("redirect (HTTP 302)"));
        let Answer::Failure { error, .. } = classify(200, b"{\"a\":1}", true) else { panic!("too long") };
        assert!(error.contains("more than the agent reads"), "{error}");
    }

    #[test]
    fn refusals_and_errors_carry_the_webhooks_own_message_for_the_model() {
        let refused = classify(400, br#"{"error":"date must be YYYY-MM-DD","field":"date"}"#, false);
        assert_eq!(
            refused.for_model(),
            json!({"ok": false, "error": "the tool refused the request (HTTP 400)", "detail": "date must be YYYY-MM-DD"})
                .to_string()
        );
        let failed = classify(500, br#"{"message":"Error in workflow"}"#, false);
        let Answer::Failure { error, detail } = failed else { panic!("a failure") };
        assert!(error.contains("HTTP 500") && error.contains("later"), "{error}");
        assert_eq!(detail.as_deref(), Some("Error in workflow"));
        let html = classify(502, b"<html>Bad gateway</html>", false);
        assert!(matches!(html, Answer::Failure { detail: None, .. }), "{html:?}");
    }
}
