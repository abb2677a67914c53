//! What every HTTP provider client does alike: building endpoint URLs and turning an answer into
//! its body or a classified error.

use std::time::Duration;

use bytes::Bytes;
use reqwest::RequestBuilder;
use reqwest::header::HeaderValue;
use url::Url;

use super::{ProviderError, RetryPolicy, retry_after};
use crate::config::Secret;

/// `path` below the provider's base URL, keeping the base's own path (Groq's `/openai/v1`).
pub(super) fn endpoint(provider: &'static str, base: &Url, path: &str) -> Result<Url, ProviderError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ProviderError::Protocol { provider, message: format!("the base URL {base} cannot take a path") })?
        .pop_if_empty()
        .extend(path.split('/'));
    Ok(url)
}

/// The key as a header value marked sensitive, so that HTTP libraries never print it.
pub(super) fn key_header(provider: &'static str, key: &Secret) -> Result<HeaderValue, ProviderError> {
    let mut value = HeaderValue::from_str(key.expose()).map_err(|_| ProviderError::Auth {
        provider,
        message: "the key contains characters not allowed in an HTTP header".into(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The body of a successful answer, or the error a failed one describes; `timeout` is the one
/// the request was sent with, for the message.
pub(super) async fn body(
    provider: &'static str,
    sent: Result<reqwest::Response, reqwest::Error>,
    key: &Secret,
    timeout: Duration,
) -> Result<Bytes, ProviderError> {
    let response = sent.map_err(|e| ProviderError::from_reqwest(provider, e, timeout))?;
    let status = response.status();
    let after = retry_after(response.headers());
    let body = response.bytes().await.map_err(|e| ProviderError::from_reqwest(provider, e, timeout))?;
    if status.is_success() {
        return Ok(body);
    }
    Err(ProviderError::from_status(provider, status.as_u16(), after, &String::from_utf8_lossy(&body), key))
}

/// How a vendor wants its key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Auth {
    /// The key alone in a header of this name (Sarvam's `api-subscription-key`, ElevenLabs'
    /// `xi-api-key`).
    Header(&'static str),
    /// `Authorization: Bearer <key>` (OpenAI, Groq).
    Bearer,
    /// `Authorization: Token <key>` (Deepgram).
    Token,
}

impl Auth {
    /// The header carrying `key`, marked sensitive.
    pub(super) fn header(
        self,
        provider: &'static str,
        key: &Secret,
    ) -> Result<(&'static str, HeaderValue), ProviderError> {
        match self {
            Self::Header(name) => Ok((name, key_header(provider, key)?)),
            Self::Bearer | Self::Token => {
                let scheme = if matches!(self, Self::Bearer) { "Bearer" } else { "Token" };
                let mut value =
                    HeaderValue::from_str(&format!("{scheme} {}", key.expose())).map_err(|_| ProviderError::Auth {
                        provider,
                        message: "the key contains characters not allowed in an HTTP header".into(),
                    })?;
                value.set_sensitive(true);
                Ok(("authorization", value))
            }
        }
    }
}

/// Where and how one of a vendor's REST endpoints is asked.
pub(super) struct Post<'a> {
    pub provider: &'static str,
    pub http: &'a reqwest::Client,
    pub retry: &'a RetryPolicy,
    pub url: Url,
    pub auth: Auth,
    pub key: &'a Secret,
    pub timeout: Duration,
}

impl Post<'_> {
    /// POSTs with the key, retried by the policy; `payload` adds the body afresh for every
    /// try, since a sent multipart form is consumed. Returns the body of the 2xx.
    pub(super) async fn send(
        &self,
        payload: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Bytes, ProviderError> {
        let (name, value) = self.auth.header(self.provider, self.key)?;
        self.retry
            .run(|| async {
                let request = self.http.post(self.url.clone()).header(name, value.clone());
                let sent = payload(request).timeout(self.timeout).send().await;
                body(self.provider, sent, self.key, self.timeout).await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_extend_the_base_path() {
        let url = |base: &str, path| endpoint("x", &Url::parse(base).expect("valid"), path).map(String::from);
        assert_eq!(
            url("https://api.sarvam.ai", "speech-to-text").ok().as_deref(),
            Some("https://api.sarvam.ai/speech-to-text")
        );
        assert_eq!(
            url("https://api.groq.com/openai/v1", "chat/completions").ok().as_deref(),
            Some("https://api.groq.com/openai/v1/chat/completions")
        );
        assert_eq!(
            url("http://127.0.0.1:9/v1/", "chat/completions").ok().as_deref(),
            Some("http://127.0.0.1:9/v1/chat/completions")
        );
        assert!(url("mailto:someone@example.com", "x").is_err());
    }
}
