//! Per-client token buckets for the API. Time is an input, so limits are tested exactly.
//!
//! Clients are counted by [`client_key`]: IPv6 clients by their /64, which one subscriber holds
//! whole and can pick addresses from at will.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::net::client_key;

/// Beyond this many tracked clients, buckets that have refilled completely are forgotten (they
/// carry no state worth keeping), bounding memory under a flood of addresses.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_minute` = 0 disables limiting.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: HashMap::new() }
    }

    /// Takes one request's token; `Err` says how long until the client may try again.
    pub fn check(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let client = client_key(client);
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&client) {
            self.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = self.buckets.entry(client).or_insert(Bucket { tokens: capacity, updated: now });
        let refilled = now.saturating_duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refilled).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn allows_a_burst_of_the_limit_then_refuses_with_a_wait() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(30);
        for _ in 0..30 {
            assert!(limiter.check(A, now).is_ok());
        }
        let wait = limiter.check(A, now).expect_err("31st refused");
        assert_eq!(wait, Duration::from_secs(2), "one token per 2 s at 30/min");
        assert!(limiter.check(B, now).is_ok(), "other clients are unaffected");
        assert!(limiter.check(A, now + Duration::from_secs(2)).is_ok(), "refilled after the wait");
        assert!(limiter.check(A, now + Duration::from_secs(2)).is_err());
    }

    #[test]
    fn one_ipv6_64_is_one_client() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(2);
        let ip = |text: &str| -> IpAddr { text.parse().expect("an address") };
        assert!(limiter.check(ip("2001:db8:1:2::1"), now).is_ok());
        assert!(limiter.check(ip("2001:db8:1:2::2"), now).is_ok());
        assert!(limiter.check(ip("2001:db8:1:2:ffff::3"), now).is_err(), "a new address in the same /64");
        assert!(limiter.check(ip("2001:db8:1:3::1"), now).is_ok(), "the next /64 is someone else");
    }

    #[test]
    fn zero_means_unlimited() {
        let mut limiter = RateLimiter::new(0);
        let now = Instant::now();
        assert!((0..1000).all(|_| limiter.check(A, now).is_ok()));
    }
}
