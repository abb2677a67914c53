//! What can go wrong when calling a provider, classified by what the caller should do about it.
//!
//! Providers disagree on how they say things (Sarvam answers a bad key with 403 and
//! `invalid_api_key_error`, OpenAI with 401; a spent balance is a 429 for both, but must not be
//! retried), so every client turns answers into one of these variants here, and retry decisions
//! and messages for operators are made once, on the variant.

use std::time::Duration;

use crate::config::Secret;

/// Longest provider message kept in an error: enough for any JSON error message, short enough
/// that an HTML error page from a proxy does not flood the logs.
const MAX_MESSAGE_CHARS: usize = 300;

/// A failed provider request. `provider` is the registry name (`openai`, `sarvam`...);
/// `message` is the provider's own explanation, cut short and with secrets removed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time; retryable.
    #[error("{provider} did not answer within {after:?}")]
    Timeout {
        /// The provider.
        provider: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// Too many requests (HTTP 429 that is not about quota); retryable.
    #[error("{provider} is rate limiting us{}: {message}", retry_hint(retry_after))]
    RateLimited {
        /// The provider.
        provider: &'static str,
        /// The `Retry-After` the provider asked for, if any.
        retry_after: Option<Duration>,
        /// The provider's explanation.
        message: String,
    },
    /// The account's credits or quota are spent; a person must top it up.
    #[error("the {provider} account has run out of credits or quota (top it up; retrying will not help): {message}")]
    QuotaExhausted {
        /// The provider.
        provider: &'static str,
        /// The provider's explanation.
        message: String,
    },
    /// The API key is missing, wrong or revoked.
    #[error("{provider} refused the API key (check {}): {message}", key_setting(provider))]
    Auth {
        /// The provider.
        provider: &'static str,
        /// The provider's explanation.
        message: String,
    },
    /// A 4xx other than auth and rate limits: the request (model, voice, options) is wrong.
    #[error("{provider} rejected the request (HTTP {status}): {message}")]
    Rejected {
        /// The provider.
        provider: &'static str,
        /// The HTTP status.
        status: u16,
        /// The provider's explanation.
        message: String,
    },
    /// A 5xx; retryable.
    #[error("{provider} failed on its side (HTTP {status}): {message}")]
    Server {
        /// The provider.
        provider: &'static str,
        /// The HTTP status.
        status: u16,
        /// The provider's explanation.
        message: String,
    },
    /// DNS, TCP, TLS or a dropped connection; retryable.
    #[error("cannot reach {provider}: {message}")]
    Network {
        /// The provider.
        provider: &'static str,
        /// What failed.
        message: String,
    },
    /// An answer we cannot read (bad JSON, unexpected frames); not retried.
    #[error("unexpected answer from {provider}: {message}")]
    Protocol {
        /// The provider.
        provider: &'static str,
        /// What was wrong with it.
        message: String,
    },
}

impl ProviderError {
    /// Whether the same request may succeed if sent again later. Quota, key and request problems
    /// need a person to act, and a malformed answer will most likely come back the same way.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::RateLimited { .. } | Self::Server { .. } | Self::Network { .. })
    }

    /// A short name of the variant, for metrics labels: timeout, rate_limited, quota, auth,
    /// rejected, server, network or protocol.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::QuotaExhausted { .. } => "quota",
            Self::Auth { .. } => "auth",
            Self::Rejected { .. } => "rejected",
            Self::Server { .. } => "server",
            Self::Network { .. } => "network",
            Self::Protocol { .. } => "protocol",
        }
    }

    /// Classifies a non-success HTTP answer (or a refused WebSocket handshake) from its status
    /// and its JSON error body: `{"error":{"message","code"|"type"}}` (Sarvam, OpenAI, Groq),
    /// `{"detail":{"status","message"}}` or `{"detail":[{"msg"}]}` (ElevenLabs),
    /// `{"err_code","err_msg"}` (Deepgram).
    pub(crate) fn from_status(
        provider: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
        key: &Secret,
    ) -> Self {
        let (code, message) = parse_error_body(body);
        let message = clean(&message, key);
        classify(provider, status, &code, message, retry_after)
    }

    /// Classifies an error message sent inside a WebSocket, whose `code` is either a Sarvam code
    /// name (`rate_limit_exceeded_error`) or an HTTP-like status number.
    pub(crate) fn from_error_code(
        provider: &'static str,
        code: &serde_json::Value,
        message: &str,
        key: &Secret,
    ) -> Self {
        let message = clean(message, key);
        let (status, code) = match code {
            serde_json::Value::Number(n) => {
                (n.as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(0), String::new())
            }
            serde_json::Value::String(name) => (status_of_code(name), name.clone()),
            _ => (0, String::new()),
        };
        if status == 0 {
            let shown = if code.is_empty() { message } else { format!("{message} ({code})") };
            return Self::Protocol { provider, message: shown };
        }
        classify(provider, status, &code, message, None)
    }

    /// A transport failure of reqwest (answers are parsed by the clients, so this is never about
    /// content); its URL is stripped so query strings never reach logs.
    pub(crate) fn from_reqwest(provider: &'static str, error: reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            return Self::Timeout { provider, after: timeout };
        }
        Self::Network { provider, message: chain(&error.without_url()) }
    }
}

fn classify(
    provider: &'static str,
    status: u16,
    code: &str,
    message: String,
    retry_after: Option<Duration>,
) -> ProviderError {
    match status {
        // ElevenLabs answers a spent quota with 401.
        _ if code.contains("insufficient_quota") || code.contains("quota_exceeded") => {
            ProviderError::QuotaExhausted { provider, message }
        }
        401 | 403 => ProviderError::Auth { provider, message },
        _ if code.contains("authentication_error") || code.contains("invalid_api_key") => {
            ProviderError::Auth { provider, message }
        }
        // Sarvam's failures of its own backends: worth another try whatever the status says.
        _ if ["model_call_error", "gateway_timeout_error", "billing_service_unavailable_error", "system_busy"]
            .iter()
            .any(|transient| code.contains(transient)) =>
        {
            ProviderError::Server { provider, status, message }
        }
        429 => ProviderError::RateLimited { provider, retry_after, message },
        // Sarvam's "Service Overloaded" carries its rate-limit code: a request to back off.
        503 if code.contains("rate_limit") => ProviderError::RateLimited { provider, retry_after, message },
        498 | 500..=599 => ProviderError::Server { provider, status, message },
        400..=499 => ProviderError::Rejected { provider, status, message },
        _ => ProviderError::Protocol { provider, message: format!("HTTP {status}: {message}") },
    }
}

/// The HTTP status Sarvam documents for each of its error codes, so WebSocket errors (which
/// carry only the code) are classified exactly like REST ones.
fn status_of_code(code: &str) -> u16 {
    match code {
        "invalid_api_key_error" => 403,
        "authentication_error" => 401,
        "model_call_error" => 502,
        "gateway_timeout_error" => 504,
        "billing_service_unavailable_error" => 503,
        "invalid_request_error" => 400,
        "not_found_error" => 404,
        "unprocessable_entity_error" => 422,
        "insufficient_quota_error" | "rate_limit_exceeded_error" => 429,
        "internal_server_error" => 500,
        _ if code.contains("rate_limit") => 429,
        _ if code.contains("unavailable") || code.contains("timeout") || code.contains("overload") => 503,
        _ => 0,
    }
}

/// The error's code (or type) and message from a provider's error body, or the raw body text
/// when it is not the JSON shape providers document (a proxy's HTML page, plain text).
fn parse_error_body(body: &str) -> (String, String) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return (String::new(), body.trim().to_owned());
    };
    let nested = |key: &str| value.get(key).filter(|inner| inner.is_object());
    let error = nested("error").or_else(|| nested("detail")).unwrap_or(&value);
    let text = |key: &str| error.get(key).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    let code = [text("code"), text("type"), text("status"), text("err_code"), text("category")]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let validation = value["detail"][0]["msg"].as_str().unwrap_or_default().to_owned();
    let message =
        [text("message"), text("err_msg"), validation, value["error"].as_str().unwrap_or_default().to_owned()]
            .into_iter()
            .find(|message| !message.is_empty())
            .unwrap_or_else(|| body.trim().to_owned());
    (code, message)
}

/// Removes the key if a provider echoes it and shortens the message to a log-friendly size.
fn clean(message: &str, key: &Secret) -> String {
    let message =
        if key.expose().is_empty() { message.to_owned() } else { message.replace(key.expose(), "<redacted>") };
    let message = message.trim();
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None if message.is_empty() => "no details given".to_owned(),
        None => message.to_owned(),
    }
}

/// An error and its causes on one line: reqwest's own message ("error sending request") says
/// nothing without the underlying "connection refused".
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    retry_after.map(|after| format!(" (it asks to retry after {after:?})")).unwrap_or_default()
}

/// The setting an operator fixes when a provider refuses the key.
fn key_setting(provider: &str) -> &'static str {
    super::registry::key_setting(provider).unwrap_or("the provider's API key setting")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Secret {
        Secret::new("sk-test-abcdef123456")
    }

    #[test]
    fn sarvam_bodies_are_classified_by_status_and_code() {
        let body = |code: &str| format!(r#"{{"error":{{"message":"m","code":"{code}"}}}}"#);
        let err = ProviderError::from_status("sarvam", 403, None, &body("invalid_api_key_error"), &key());
        assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
        let err = ProviderError::from_status("sarvam", 429, None, &body("insufficient_quota_error"), &key());
        assert!(matches!(err, ProviderError::QuotaExhausted { .. }), "{err:?}");
        let after = Some(Duration::from_secs(2));
        let err = ProviderError::from_status("sarvam", 429, after, &body("rate_limit_exceeded_error"), &key());
        assert!(matches!(err, ProviderError::RateLimited { retry_after, .. } if retry_after == after), "{err:?}");
        let err = ProviderError::from_status("sarvam", 503, None, &body("rate_limit_exceeded_error"), &key());
        assert!(matches!(err, ProviderError::RateLimited { .. }), "{err:?}");
        let err = ProviderError::from_status("sarvam", 500, None, &body("internal_server_error"), &key());
        assert!(matches!(err, ProviderError::Server { status: 500, .. }), "{err:?}");
        let err = ProviderError::from_status("sarvam", 422, None, &body("unprocessable_entity_error"), &key());
        assert!(matches!(err, ProviderError::Rejected { status: 422, .. }), "{err:?}");
    }

    #[test]
    fn sarvams_newer_codes_are_classified() {
        let body = |code: &str| format!(r#"{{"error":{{"message":"m","code":"{code}","request_id":"r"}}}}"#);
        let err = ProviderError::from_status("sarvam", 400, None, &body("authentication_error"), &key());
        assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
        for code in ["model_call_error", "gateway_timeout_error", "billing_service_unavailable_error"] {
            let err = ProviderError::from_status("sarvam", 500, None, &body(code), &key());
            assert!(matches!(err, ProviderError::Server { .. }) && err.retryable(), "{code}: {err:?}");
            let err = ProviderError::from_status("sarvam", 400, None, &body(code), &key());
            assert!(err.retryable(), "{code} with a 4xx: {err:?}");
            let err = ProviderError::from_error_code("sarvam", &code.into(), "m", &key());
            assert!(err.retryable(), "{code} over the WebSocket: {err:?}");
        }
        let err = ProviderError::from_error_code("sarvam", &"authentication_error".into(), "m", &key());
        assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    }

    #[test]
    fn deepgram_and_elevenlabs_bodies_are_classified() {
        let dg = r#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"r"}"#;
        let err = ProviderError::from_status("deepgram", 401, None, dg, &key());
        assert!(matches!(err, ProviderError::Auth { ref message, .. } if message == "Invalid credentials."), "{err:?}");
        let quota = r#"{"detail":{"status":"quota_exceeded","message":"You have run out of credits."}}"#;
        let err = ProviderError::from_status("elevenlabs", 401, None, quota, &key());
        assert!(matches!(err, ProviderError::QuotaExhausted { .. }), "ElevenLabs says so with a 401: {err:?}");
        let refused = r#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#;
        let err = ProviderError::from_status("elevenlabs", 401, None, refused, &key());
        assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
        let busy = r#"{"detail":{"status":"too_many_concurrent_requests","message":"Too many"}}"#;
        let err = ProviderError::from_status("elevenlabs", 429, None, busy, &key());
        assert!(matches!(err, ProviderError::RateLimited { ref message, .. } if message == "Too many"), "{err:?}");
        let invalid = r#"{"detail":[{"loc":["body","text"],"msg":"field required","type":"value_error.missing"}]}"#;
        let err = ProviderError::from_status("elevenlabs", 422, None, invalid, &key());
        assert!(matches!(err, ProviderError::Rejected { ref message, .. } if message == "field required"), "{err:?}");
    }

    #[test]
    fn openai_and_groq_bodies_are_classified() {
        let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert!(matches!(
            ProviderError::from_status("openai", 429, None, quota, &key()),
            ProviderError::QuotaExhausted { .. }
        ));
        let limited = r#"{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}"#;
        assert!(matches!(
            ProviderError::from_status("groq", 429, None, limited, &key()),
            ProviderError::RateLimited { .. }
        ));
        let flex = r#"{"error":{"message":"flex tier capacity exceeded","type":"internal_server_error"}}"#;
        assert!(matches!(
            ProviderError::from_status("groq", 498, None, flex, &key()),
            ProviderError::Server { status: 498, .. }
        ));
        assert!(matches!(ProviderError::from_status("openai", 401, None, "{}", &key()), ProviderError::Auth { .. }));
        assert!(matches!(
            ProviderError::from_status("openai", 502, None, "<html>", &key()),
            ProviderError::Server { .. }
        ));
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let provider = "sarvam";
        let message = String::new();
        assert!(ProviderError::Timeout { provider, after: Duration::from_secs(1) }.retryable());
        assert!(ProviderError::RateLimited { provider, retry_after: None, message: message.clone() }.retryable());
        assert!(ProviderError::Server { provider, status: 500, message: message.clone() }.retryable());
        assert!(ProviderError::Network { provider, message: message.clone() }.retryable());
        assert!(!ProviderError::QuotaExhausted { provider, message: message.clone() }.retryable());
        assert!(!ProviderError::Auth { provider, message: message.clone() }.retryable());
        assert!(!ProviderError::Rejected { provider, status: 400, message: message.clone() }.retryable());
        assert!(!ProviderError::Protocol { provider, message }.retryable());
    }

    #[test]
    fn echoed_keys_never_reach_the_message() {
        let body = r#"{"error":{"message":"Invalid API key sk-test-abcdef123456","code":"invalid_api_key_error"}}"#;
        let err = ProviderError::from_status("sarvam", 403, None, body, &key());
        let shown = err.to_string();
        assert!(!shown.contains("sk-test-abcdef123456"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("SARVAM_API_KEY"), "{shown}");
        let err = ProviderError::from_error_code("sarvam", &"boom".into(), "bad key sk-test-abcdef123456", &key());
        assert!(!err.to_string().contains("sk-test"), "{err}");
    }

    #[test]
    fn websocket_codes_map_like_rest_statuses() {
        let err = ProviderError::from_error_code("sarvam", &"rate_limit_exceeded_error".into(), "slow down", &key());
        assert!(matches!(err, ProviderError::RateLimited { .. }), "{err:?}");
        let err = ProviderError::from_error_code("sarvam", &"insufficient_quota_error".into(), "no credits", &key());
        assert!(matches!(err, ProviderError::QuotaExhausted { .. }), "{err:?}");
        let err = ProviderError::from_error_code("sarvam", &500.into(), "oops", &key());
        assert!(matches!(err, ProviderError::Server { status: 500, .. }), "{err:?}");
        let err = ProviderError::from_error_code("sarvam", &"mystery".into(), "what", &key());
        assert!(matches!(err, ProviderError::Protocol { ref message, .. } if message == "what (mystery)"), "{err:?}");
    }

    #[test]
    fn long_or_empty_messages_are_tidied() {
        let page = "x".repeat(5_000);
        let err = ProviderError::from_status("openai", 502, None, &page, &key());
        assert!(err.to_string().chars().count() < 400, "{err}");
        let err = ProviderError::from_status("openai", 500, None, "", &key());
        assert_eq!(err.to_string(), "openai failed on its side (HTTP 500): no details given");
    }

    #[test]
    fn messages_read_well() {
        let err = ProviderError::RateLimited {
            provider: "groq",
            retry_after: Some(Duration::from_millis(1500)),
            message: "Rate limit reached".into(),
        };
        assert_eq!(err.to_string(), "groq is rate limiting us (it asks to retry after 1.5s): Rate limit reached");
        let err = ProviderError::Timeout { provider: "sarvam", after: Duration::from_secs(10) };
        assert_eq!(err.to_string(), "sarvam did not answer within 10s");
    }
}
