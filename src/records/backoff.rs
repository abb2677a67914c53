//! What an answer from n8n means for a record, and how long to wait before trying again.

use std::time::Duration;

/// Exponential backoff with equal jitter: the delay doubles per failure up to `cap`, and a random
/// half of it is added to a fixed half. The fixed half makes each wait below the cap at least as
/// long as the one before (a struggling n8n is not hit faster); the random half, kept at the cap
/// too, spreads the retries of workers that all saw the same outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backoff {
    /// The longest wait before the first retry.
    pub first: Duration,
    /// The longest wait ever; a server's `Retry-After` is held to it too, so a wrong header cannot
    /// park records for days.
    pub cap: Duration,
}

impl Backoff {
    /// The wait after `failures` failures in a row (1 for the first); `draw` is a random number in
    /// `[0, 1)`, given so that tests are exact.
    pub fn delay(&self, failures: u32, draw: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let full = self.first.saturating_mul(1 << doublings).min(self.cap);
        let half = full / 2;
        half + half.mul_f64(draw.clamp(0.0, 1.0))
    }
}

/// Who a failure is about, which decides who waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// n8n as a whole cannot take records now (down, overloaded, rate limiting, unreachable):
    /// every record waits, so an outage costs one request per backoff step, not one per record.
    Endpoint,
    /// Something about this record failed (n8n's workflow errored on it): only it waits, so one
    /// bad record never holds back the records behind it.
    Record,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// n8n has the record; it may leave the disk.
    Delivered,
    /// Try again later; `after` is the server's `Retry-After`, when it gave one that counts.
    Retry { after: Option<Duration>, scope: Scope },
    /// n8n will never take this record as it is; a person must look at it.
    Dead { reason: String },
}

/// Decides what n8n's answer means. `retry_after` is the answer's `Retry-After`, which counts for
/// 429 and 503 only, as HTTP defines it.
pub(super) fn classify(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 | 503 => Verdict::Retry { after: retry_after, scope: Scope::Endpoint },
        // n8n answers 404 while its lead-capture workflow is not active: for some seconds after
        // every start, and until someone activates it. The webhook is missing, not the record at
        // fault, so records wait for it (the warning carries n8n's own hint) instead of dying.
        404 | 408 | 502 | 504 => Verdict::Retry { after: None, scope: Scope::Endpoint },
        // Redirects are not followed: a client following one may turn the POST into a GET
        // without the record, or hand the record (and its credentials) to another host. n8n's
        // address moved, which is an outage until N8N_BASE_URL says where it went; the record is
        // not at fault.
        300..=399 => Verdict::Retry { after: None, scope: Scope::Endpoint },
        400..=499 => Verdict::Dead { reason: format!("n8n refused it with HTTP {status}") },
        100..=199 => Verdict::Dead { reason: format!("n8n answered HTTP {status}, which does not take a record") },
        _ => Verdict::Retry { after: None, scope: Scope::Record },
    }
}

/// A network error or timeout: nothing says n8n saw the record, and nothing is likely to reach it.
pub(super) const UNREACHABLE: Verdict = Verdict::Retry { after: None, scope: Scope::Endpoint };

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_double_up_to_the_cap_with_the_random_half_on_top_of_the_fixed_half() {
        let backoff = Backoff { first: Duration::from_secs(1), cap: Duration::from_secs(300) };
        assert_eq!(backoff.delay(1, 0.0), 500 * MS);
        assert_eq!(backoff.delay(1, 0.5), 750 * MS);
        assert_eq!(backoff.delay(2, 0.0), Duration::from_secs(1));
        assert_eq!(backoff.delay(3, 0.5), Duration::from_secs(3));
        assert_eq!(backoff.delay(9, 0.0), Duration::from_secs(128));
        assert_eq!(backoff.delay(10, 0.0), Duration::from_secs(150), "capped");
        assert_eq!(backoff.delay(10, 1.0), Duration::from_secs(300));
        assert_eq!(backoff.delay(u32::MAX, 1.0), Duration::from_secs(300), "no overflow");
        assert_eq!(backoff.delay(0, 0.0), 500 * MS, "treated as the first failure");
    }

    #[test]
    fn below_the_cap_a_wait_is_never_shorter_than_the_one_before() {
        let backoff = Backoff { first: 50 * MS, cap: Duration::from_secs(2) };
        for failures in 1..6 {
            assert!(backoff.delay(failures + 1, 0.0) >= backoff.delay(failures, 0.999), "after {failures}");
        }
    }

    #[test]
    fn answers_are_classified_as_http_and_n8n_mean_them() {
        let after = Some(Duration::from_secs(7));
        assert_eq!(classify(200, None), Verdict::Delivered);
        assert_eq!(classify(204, after), Verdict::Delivered);
        assert_eq!(classify(429, after), Verdict::Retry { after, scope: Scope::Endpoint });
        assert_eq!(classify(503, after), Verdict::Retry { after, scope: Scope::Endpoint });
        assert_eq!(classify(503, None), Verdict::Retry { after: None, scope: Scope::Endpoint });
        for status in [404, 408, 502, 504] {
            assert_eq!(classify(status, after), Verdict::Retry { after: None, scope: Scope::Endpoint });
        }
        for status in [500, 501, 599] {
            assert_eq!(classify(status, after), Verdict::Retry { after: None, scope: Scope::Record });
        }
        for status in [400, 401, 403, 409, 413, 422] {
            let Verdict::Dead { reason } = classify(status, None) else { panic!("{status} is final") };
            assert!(reason.contains(&status.to_string()), "{reason}");
        }
        assert!(matches!(classify(101, None), Verdict::Dead { .. }));
    }

    #[test]
    fn a_redirect_is_an_outage_of_n8ns_address_not_a_delivery_or_a_refusal() {
        for status in [301, 302, 303, 307, 308] {
            assert_eq!(
                classify(status, Some(Duration::from_secs(9))),
                Verdict::Retry { after: None, scope: Scope::Endpoint }
            );
        }
    }
}
