//! When to send a failed request again, and after how long.
//!
//! The defaults follow the OpenAI and Groq SDKs (providers.md §7): three tries in all, 0.5 s
//! doubling to at most 8 s with up to 25 % jitter so that many calls hit by one outage do not
//! retry in lockstep, and a server's `retry-after` taken as given unless it asks for more than a
//! caller waiting mid-conversation could bear.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use super::ProviderError;

/// How a failed provider request is retried: exponential backoff with jitter, honouring the
/// server's `Retry-After`, and only for errors that [may succeed later](ProviderError::retryable).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included; 1 means never retry.
    pub attempts: u32,
    /// Delay before the first retry; each further retry doubles it.
    pub base: Duration,
    /// The longest computed delay.
    pub cap: Duration,
    /// A server asking to wait longer than this is not retried at all: the caller is better
    /// served by an error now than by silence for minutes.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `n` (1-based) after `error`, or `None` to give up: the error is
    /// not retryable, the tries are used up, or the server asks for too long a wait.
    pub fn delay(&self, n: u32, error: &ProviderError) -> Option<Duration> {
        self.delay_with_jitter(n, error, rand::random::<f64>())
    }

    /// [`Self::delay`] with the random draw (in `[0, 1)`) given, so it can be tested exactly.
    fn delay_with_jitter(&self, n: u32, error: &ProviderError, draw: f64) -> Option<Duration> {
        if n == 0 || n >= self.attempts || !error.retryable() {
            return None;
        }
        if let ProviderError::RateLimited { retry_after: Some(after), .. } = error
            && !after.is_zero()
        {
            return (*after <= self.max_retry_after).then_some(*after);
        }
        let doublings = 2_u32.checked_pow(n - 1).unwrap_or(u32::MAX);
        let backoff = self.base.checked_mul(doublings).unwrap_or(self.cap).min(self.cap);
        Some(backoff.mul_f64(1.0 - 0.25 * draw.clamp(0.0, 1.0)))
    }

    /// Runs `op` until it succeeds, fails for good, or the tries are used up; the last error is
    /// returned.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut retry = 0;
        loop {
            let error = match op().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            retry += 1;
            self.pause(retry, error, "provider request failed; retrying").await?;
        }
    }

    /// Waits before retry number `retry` after `error`, saying `why` in the log, or gives `error`
    /// back when the policy gives up.
    pub(crate) async fn pause(&self, retry: u32, error: ProviderError, why: &str) -> Result<(), ProviderError> {
        let Some(delay) = self.delay(retry, &error) else { return Err(error) };
        tracing::warn!(%error, ?delay, retry, "{why}");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// How long the server asks us to wait, from `retry-after-ms` (milliseconds, OpenAI's) or
/// `retry-after` (seconds, possibly fractional, or an HTTP date); `None` when absent, unreadable
/// or already past.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, Utc::now())
}

fn retry_after_at(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let seconds = |value: &str, scale: f64| {
        value.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0).map(|v| Duration::from_secs_f64(v / scale))
    };
    if let Some(after) = header("retry-after-ms").and_then(|v| seconds(v, 1_000.0)) {
        return Some(after);
    }
    let value = header("retry-after")?;
    seconds(value, 1.0).or_else(|| {
        let date = DateTime::parse_from_rfc2822(value).ok()?;
        (date.with_timezone(&Utc) - now).to_std().ok().filter(|d| !d.is_zero())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use reqwest::header::HeaderValue;

    use super::*;

    fn server_error() -> ProviderError {
        ProviderError::Server { provider: "groq", status: 503, message: "overloaded".into() }
    }

    fn limited(after: Option<Duration>) -> ProviderError {
        ProviderError::RateLimited { provider: "groq", retry_after: after, message: "slow down".into() }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let policy = RetryPolicy { attempts: 10, ..RetryPolicy::default() };
        let delay = |n, draw| policy.delay_with_jitter(n, &server_error(), draw);
        assert_eq!(delay(1, 0.0), Some(Duration::from_millis(500)));
        assert_eq!(delay(2, 0.0), Some(Duration::from_secs(1)));
        assert_eq!(delay(3, 0.0), Some(Duration::from_secs(2)));
        assert_eq!(delay(5, 0.0), Some(Duration::from_secs(8)));
        assert_eq!(delay(9, 0.0), Some(Duration::from_secs(8)));
        assert_eq!(delay(1, 1.0), Some(Duration::from_millis(375)));
        assert_eq!(delay(2, 0.5), Some(Duration::from_millis(875)));
    }

    #[test]
    fn gives_up_when_tries_are_used_or_the_error_is_final() {
        let policy = RetryPolicy::default();
        assert!(policy.delay(1, &server_error()).is_some());
        assert!(policy.delay(2, &server_error()).is_some());
        assert_eq!(policy.delay(3, &server_error()), None, "three tries in all");
        let quota = ProviderError::QuotaExhausted { provider: "sarvam", message: "no credits".into() };
        assert_eq!(policy.delay(1, &quota), None);
        let auth = ProviderError::Auth { provider: "sarvam", message: "bad key".into() };
        assert_eq!(policy.delay(1, &auth), None);
        assert_eq!(RetryPolicy { attempts: 1, ..policy }.delay(1, &server_error()), None);
    }

    #[test]
    fn the_servers_retry_after_wins_unless_too_long() {
        let policy = RetryPolicy::default();
        let after = Duration::from_millis(1_234);
        assert_eq!(policy.delay_with_jitter(1, &limited(Some(after)), 0.9), Some(after), "no jitter on a given delay");
        assert_eq!(policy.delay(1, &limited(Some(Duration::from_secs(61)))), None);
        assert_eq!(policy.delay(1, &limited(Some(Duration::from_secs(60)))), Some(Duration::from_secs(60)));
        assert_eq!(policy.delay_with_jitter(1, &limited(Some(Duration::ZERO)), 0.0), Some(Duration::from_millis(500)));
        assert_eq!(policy.delay_with_jitter(2, &limited(None), 0.0), Some(Duration::from_secs(1)));
    }

    #[test]
    fn retry_after_headers_are_read_in_every_form() {
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").expect("valid").with_timezone(&Utc);
        let parse = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_static(value));
            }
            retry_after_at(&headers, now)
        };
        assert_eq!(parse(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(parse(&[("retry-after", "0.25")]), Some(Duration::from_millis(250)));
        assert_eq!(parse(&[("retry-after-ms", "150"), ("retry-after", "7")]), Some(Duration::from_millis(150)));
        assert_eq!(parse(&[("retry-after", "Wed, 01 Jan 2025 00:00:30 GMT")]), Some(Duration::from_secs(30)));
        assert_eq!(parse(&[("retry-after", "Tue, 31 Dec 2024 23:00:00 GMT")]), None, "a past date");
        assert_eq!(parse(&[("retry-after", "soon")]), None);
        assert_eq!(parse(&[("retry-after", "-3")]), None);
        assert_eq!(parse(&[("retry-after-ms", "NaN")]), None);
        assert_eq!(parse(&[]), None);
    }

    #[tokio::test]
    async fn run_retries_transient_failures_then_succeeds() {
        let policy =
            RetryPolicy { base: Duration::from_millis(1), cap: Duration::from_millis(2), ..RetryPolicy::default() };
        let calls = AtomicU32::new(0);
        let result = policy
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(server_error()),
                    _ => Ok("done"),
                }
            })
            .await;
        assert_eq!(result.ok(), Some("done"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn run_stops_at_a_final_error_or_after_the_last_try() {
        let policy =
            RetryPolicy { base: Duration::from_millis(1), cap: Duration::from_millis(2), ..RetryPolicy::default() };
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ProviderError::Auth { provider: "openai", message: "bad key".into() })
            })
            .await;
        assert!(matches!(result, Err(ProviderError::Auth { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let result: Result<(), _> = policy
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(server_error())
            })
            .await;
        assert!(matches!(result, Err(ProviderError::Server { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
