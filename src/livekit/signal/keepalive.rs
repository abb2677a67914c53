//! Signal keepalive as LiveKit specifies it: a ping every `ping_interval`, and a connection with
//! no message for `ping_timeout` is dead. Time is an input.

use std::time::{Duration, Instant};

/// What [`Keepalive::poll`] asks the connection to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// Nothing until [`Keepalive::deadline`].
    Wait,
    /// Send a ping carrying the current time.
    SendPing,
    /// Nothing arrived for the timeout: the signal connection is gone.
    Dead,
}

/// The ping schedule and liveness of one signal connection.
#[derive(Debug, Clone)]
pub struct Keepalive {
    interval: Duration,
    timeout: Duration,
    next_ping: Instant,
    last_heard: Instant,
    rtt: Option<Duration>,
}

impl Keepalive {
    /// From the JoinResponse's `ping_interval` and `ping_timeout` in seconds; zeros (servers that
    /// do not set them) fall back to LiveKit's defaults of 5 s and 15 s.
    pub fn new(interval_secs: i32, timeout_secs: i32, now: Instant) -> Self {
        let seconds = |value: i32, fallback: u64| {
            Duration::from_secs(u64::try_from(value).ok().filter(|v| *v > 0).unwrap_or(fallback))
        };
        let interval = seconds(interval_secs, 5);
        Self { interval, timeout: seconds(timeout_secs, 15), next_ping: now + interval, last_heard: now, rtt: None }
    }

    /// Any message from the server proves the connection alive.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// A pong answering the ping sent at `sent_at_ms` (Unix ms) arrived at `now_ms`.
    pub fn pong(&mut self, sent_at_ms: i64, now_ms: i64) {
        self.rtt = u64::try_from(now_ms - sent_at_ms).ok().map(Duration::from_millis);
    }

    /// The round trip measured by the latest pong.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// When [`poll`](Self::poll) next has something to say.
    pub fn deadline(&self) -> Instant {
        self.next_ping.min(self.last_heard + self.timeout)
    }

    /// Whether to ping, give up on the connection, or wait.
    pub fn poll(&mut self, now: Instant) -> KeepaliveAction {
        if now >= self.last_heard + self.timeout {
            KeepaliveAction::Dead
        } else if now >= self.next_ping {
            self.next_ping = now + self.interval;
            KeepaliveAction::SendPing
        } else {
            KeepaliveAction::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_on_the_interval_and_dies_after_the_timeout() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(5, 15, start);
        assert_eq!(keepalive.poll(start + Duration::from_secs(4)), KeepaliveAction::Wait);
        assert_eq!(keepalive.poll(start + Duration::from_secs(5)), KeepaliveAction::SendPing);
        assert_eq!(keepalive.poll(start + Duration::from_secs(6)), KeepaliveAction::Wait);
        keepalive.heard(start + Duration::from_secs(10));
        assert_eq!(keepalive.poll(start + Duration::from_secs(10)), KeepaliveAction::SendPing);
        assert_eq!(keepalive.poll(start + Duration::from_secs(24)), KeepaliveAction::SendPing, "alive: heard at 10 s");
        assert_eq!(keepalive.poll(start + Duration::from_secs(25)), KeepaliveAction::Dead);
    }

    #[test]
    fn zero_settings_use_livekit_defaults_and_rtt_is_measured() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(0, -1, start);
        assert_eq!(keepalive.deadline(), start + Duration::from_secs(5));
        keepalive.pong(1_000, 1_042);
        assert_eq!(keepalive.rtt(), Some(Duration::from_millis(42)));
        assert_eq!(keepalive.poll(start + Duration::from_secs(15)), KeepaliveAction::Dead);
    }
}
