//! One per-client budget across token servers: a counter per client and minute in Redis.
//!
//! A fixed window (the local limiter's token bucket needs a read-modify-write that would have to
//! run in Redis too): at most `per_minute` requests per client in each Unix minute, counted and
//! given their expiry by one script, so concurrent token servers never both take the last one.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{PREFIX, Shared};
use crate::net::client_key;

const WINDOW: Duration = Duration::from_secs(60);

/// Counts one request and gives a new counter its expiry (a little after its minute ends).
const TAKE: &str = "local n = redis.call('INCR', KEYS[1]) \
                    if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
                    return n";

/// The counter of `client` (as the local limiter counts it, IPv6 by /64) for `scope` in the
/// minute `now` is in, and how far into that minute `now` is.
fn window(scope: &str, client: IpAddr, now: SystemTime) -> (String, Duration) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let minute = since_epoch.as_secs() / WINDOW.as_secs();
    let into = since_epoch - Duration::from_secs(minute * WINDOW.as_secs());
    (format!("{PREFIX}:rate:{scope}:{}:{minute}", client_key(client)), into)
}

/// The `count`-th request of a minute `into` its window: allowed, or how long until the next
/// minute's budget.
fn decide(count: u64, per_minute: u32, into: Duration) -> Result<(), Duration> {
    if count <= u64::from(per_minute) { Ok(()) } else { Err(WINDOW.saturating_sub(into).max(Duration::from_secs(1))) }
}

impl Shared {
    /// Takes one request from `client`'s shared budget for `scope`; `None` while Redis is down,
    /// and the caller's local limiter decides.
    pub async fn take_rate(
        &self,
        scope: &'static str,
        client: IpAddr,
        per_minute: u32,
        now: SystemTime,
    ) -> Option<Result<(), Duration>> {
        let (key, into) = window(scope, client, now);
        let expiry_ms = (WINDOW + Duration::from_secs(5)).as_millis() as u64;
        let count = self
            .run("counting a client's requests", |mut connection| async move {
                redis::Script::new(TAKE).key(key).arg(expiry_ms).invoke_async::<u64>(&mut connection).await
            })
            .await?;
        Some(decide(count, per_minute, into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_per_client_and_minute_and_a_refusal_waits_for_the_next_minute() {
        let at = UNIX_EPOCH + Duration::from_secs(60 * 1_000 + 45);
        let (key, into) = window("token", "203.0.113.7".parse().expect("an address"), at);
        assert_eq!(key, "voice-agent:rate:token:203.0.113.7:1000");
        assert_eq!(into, Duration::from_secs(45));
        let (v6, _) = window("api", "2001:db8:1:2:aaaa::1".parse().expect("an address"), at);
        assert_eq!(v6, "voice-agent:rate:api:2001:db8:1:2:::1000", "an IPv6 client is its /64");
        assert_eq!(decide(3, 3, into), Ok(()));
        assert_eq!(decide(4, 3, into), Err(Duration::from_secs(15)));
        assert_eq!(
            decide(4, 3, Duration::from_millis(59_900)),
            Err(Duration::from_secs(1)),
            "never less than a second"
        );
    }
}
