//! Whether Redis is used right now, as a state machine taking time as input.
//!
//! Redis is an aid, never a dependency: when it stops answering, every instance goes on alone
//! (local cache, local rate limit, no registry) and tries Redis again after a growing wait.
//! People hear of it once when it goes and once when it comes back, not at every request.

use std::time::{Duration, Instant};

/// The first wait before trying a Redis that failed again.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait, so an instance is back on Redis soon after Redis is.
const MAX_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Ask Redis.
    Redis,
    /// Redis is down and not to be tried yet: go on locally.
    Local,
}

/// What an outcome changed, for the one log line each change deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// Redis failed after answering, or at the first try: warn once.
    WentDown,
    /// Redis answers again after failing: say so once.
    Recovered,
}

#[derive(Debug)]
pub(crate) struct Health {
    /// `None` while Redis answers (or before it was first tried).
    down: Option<Down>,
}

#[derive(Debug, Clone, Copy)]
struct Down {
    failures: u32,
    retry_at: Instant,
}

impl Health {
    pub(crate) fn new() -> Self {
        Self { down: None }
    }

    pub(crate) fn choose(&self, now: Instant) -> Use {
        match self.down {
            Some(down) if now < down.retry_at => Use::Local,
            _ => Use::Redis,
        }
    }

    pub(crate) fn succeeded(&mut self) -> Change {
        match self.down.take() {
            Some(_) => Change::Recovered,
            None => Change::None,
        }
    }

    /// Redis failed at `now`; returns the change, and the wait before Redis is tried again.
    pub(crate) fn failed(&mut self, now: Instant) -> (Change, Duration) {
        let change = if self.down.is_none() { Change::WentDown } else { Change::None };
        let failures = self.down.map_or(1, |down| down.failures.saturating_add(1));
        let wait = FIRST_RETRY.saturating_mul(1 << (failures - 1).min(8)).min(MAX_RETRY);
        self.down = Some(Down { failures, retry_at: now + wait });
        (change, wait)
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_warned_once_then_redis_is_left_alone_for_a_growing_wait() {
        let mut health = Health::new();
        let start = Instant::now();
        assert_eq!(health.choose(start), Use::Redis);
        assert_eq!(health.failed(start), (Change::WentDown, Duration::from_millis(500)));
        assert_eq!(health.choose(start + Duration::from_millis(499)), Use::Local);
        assert_eq!(health.choose(start + Duration::from_millis(500)), Use::Redis, "tried again");
        let later = start + Duration::from_millis(500);
        assert_eq!(health.failed(later), (Change::None, Duration::from_secs(1)), "not warned again");
        let mut at = later;
        let mut waits = Vec::new();
        for _ in 0..6 {
            at += Duration::from_secs(10);
            waits.push(health.failed(at).1);
        }
        assert_eq!(waits.last(), Some(&MAX_RETRY), "the wait stops growing: {waits:?}");
    }

    #[test]
    fn an_answer_after_failures_is_a_recovery_said_once() {
        let mut health = Health::new();
        let start = Instant::now();
        health.failed(start);
        assert!(health.is_down());
        assert_eq!(health.succeeded(), Change::Recovered);
        assert_eq!(health.succeeded(), Change::None);
        assert_eq!(health.choose(start), Use::Redis);
        assert_eq!(health.failed(start).0, Change::WentDown, "a new outage is warned again");
        assert_eq!(health.failed(start).1, Duration::from_secs(1));
    }

    #[test]
    fn redis_never_reached_is_warned_at_the_first_try() {
        let mut health = Health::new();
        assert_eq!(health.succeeded(), Change::None, "up from the start: nothing to say");
        let mut never = Health::new();
        assert_eq!(never.failed(Instant::now()).0, Change::WentDown);
    }
}
