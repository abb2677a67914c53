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

/// Where and how one of Sarvam's REST endpoints is asked.
pub(super) struct SarvamPost<'a> {
    pub http: &'a reqwest::Client,
    pub retry: &'a RetryPolicy,
    pub base_url: &'a Url,
    pub path: &'a str,
    pub key: &'a Secret,
    pub timeout: Duration,
}

impl SarvamPost<'_> {
    /// POSTs with the subscription key, retried by the policy; `payload` adds the body afresh
    /// for every try, since a sent multipart form is consumed. Returns the body of the 2xx.
    pub(super) async fn send(
        &self,
        payload: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Bytes, ProviderError> {
        const PROVIDER: &str = "sarvam";
        let url = endpoint(PROVIDER, self.base_url, self.path)?;
        let key_value = key_header(PROVIDER, self.key)?;
        self.retry
            .run(|| async {
                let request = self.http.post(url.clone()).header("api-subscription-key", key_value.clone());
                let sent = payload(request).timeout(self.timeout).send().await;
                body(PROVIDER, sent, self.key, self.timeout).await
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
