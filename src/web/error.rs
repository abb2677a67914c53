//! The API's error shape, `{"error":{"code","message","field"?}}`, and a JSON body reader that
//! answers in that shape too.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

/// Request bodies are a few short strings; anything larger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Characters of a caller's value repeated in an error message; enough to recognise it.
const ECHO_CHARS: usize = 40;

/// A caller's value as an error message may repeat it: at most [`ECHO_CHARS`] characters, with
/// control, invisible and text-direction characters escaped so the message reads as written.
pub fn echo(value: &str) -> String {
    let mut shown: String = value.chars().take(ECHO_CHARS).flat_map(char::escape_debug).collect();
    let total = value.chars().count();
    if total > ECHO_CHARS {
        shown.push_str(&format!("… ({total} characters)"));
    }
    shown
}

/// An API refusal, sent as `{"error": {"code", "message", "field"?}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status (4xx for the caller's mistakes, 5xx for ours).
    pub status: StatusCode,
    /// A stable, machine-readable code (`unsupported_language`, `rate_limited`, …).
    pub code: &'static str,
    /// For people; never holds secrets or personal data.
    pub message: String,
    /// The request field at fault, so a page can highlight it.
    pub field: Option<&'static str>,
    /// Sent as `Retry-After` when set (rate limits).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// A refusal not tied to one request field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after_secs: None }
    }

    /// A refusal naming the request `field` at fault.
    pub fn field(status: StatusCode, code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self { field: Some(field), ..Self::new(status, code, message) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON object body, refused with an API error when too large, not JSON, or not an object.
/// An empty body reads as `{}` so optional-only endpoints can be called without one.
pub struct JsonObject(pub serde_json::Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    format!("the request body could not be read: {rejection}"),
                )
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(serde_json::Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) => Ok(Self(object)),
            Ok(_) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the request body must be a JSON object"))
            }
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid JSON: {e}"),
            )),
        }
    }
}

impl JsonObject {
    /// An optional string field; `null` counts as absent, any other type is an error naming it.
    pub fn string(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                name,
                format!("`{name}` must be a string"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_short_and_show_hidden_characters() {
        assert_eq!(echo("fr-FR"), "fr-FR");
        let long = echo(&"a".repeat(60_000));
        assert_eq!(long, format!("{}… (60000 characters)", "a".repeat(40)));
        assert_eq!(echo("ab\u{202e}cd\n"), "ab\\u{202e}cd\\n");
    }
}
