//! Profiles fetched from n8n, remembered per agent id for a TTL. Time is an input, so expiry is
//! tested without waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::n8n::N8nError;
use super::profile::AgentProfile;

/// What n8n said about an id.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    Profile(Arc<AgentProfile>),
    /// n8n answered that it has no such agent; remembered so unknown ids do not hit n8n on
    /// every request.
    NotInN8n,
    /// n8n failed and nothing better was known; remembered briefly so that while n8n is down
    /// each call start does not wait for another timeout.
    Failed(N8nError),
}

#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    Fresh(&'a Known),
    /// Past its time: ask n8n again, but serve this if n8n fails.
    Stale(&'a Known),
    Missing,
}

#[derive(Debug)]
pub struct ProfileCache {
    ttl: Duration,
    capacity: usize,
    /// Each entry with the instant until which it is served without asking n8n.
    entries: HashMap<String, (Known, Instant)>,
}

impl ProfileCache {
    /// `capacity` bounds memory when callers ask for many distinct ids.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, entries: HashMap::new() }
    }

    pub fn lookup(&self, id: &str, now: Instant) -> Lookup<'_> {
        match self.entries.get(id) {
            Some((known, until)) if now < *until => Lookup::Fresh(known),
            Some((known, _)) => Lookup::Stale(known),
            None => Lookup::Missing,
        }
    }

    /// Remembers a fresh answer for the TTL.
    pub fn store(&mut self, id: &str, known: Known, now: Instant) {
        self.store_until(id, known, now, now + self.ttl);
    }

    /// After a failed fetch: keeps a known profile (stale is better than nothing) or remembers the
    /// failure, either way until `retry_at`, when n8n is asked again.
    pub fn failed(&mut self, id: &str, error: N8nError, now: Instant, retry_at: Instant) {
        let known = match self.entries.remove(id) {
            Some((profile @ Known::Profile(_), _)) => profile,
            _ => Known::Failed(error),
        };
        self.store_until(id, known, now, retry_at);
    }

    fn store_until(&mut self, id: &str, known: Known, now: Instant, until: Instant) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(id) {
            self.entries.retain(|_, (_, until)| now < *until);
            if self.entries.len() >= self.capacity {
                let oldest = self.entries.iter().min_by_key(|(_, (_, until))| *until).map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(id.to_owned(), (known, until));
    }

    /// Forgets one id, or every id; returns how many entries were dropped.
    pub fn invalidate(&mut self, id: Option<&str>) -> usize {
        match id {
            Some(id) => usize::from(self.entries.remove(id).is_some()),
            None => {
                let count = self.entries.len();
                self.entries.clear();
                count
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_stale_after_the_ttl() {
        let start = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(60), 10);
        assert_eq!(cache.lookup("a", start), Lookup::Missing);
        cache.store("a", Known::NotInN8n, start);
        assert_eq!(cache.lookup("a", start + Duration::from_secs(59)), Lookup::Fresh(&Known::NotInN8n));
        assert_eq!(cache.lookup("a", start + Duration::from_secs(60)), Lookup::Stale(&Known::NotInN8n));
    }

    #[test]
    fn capacity_evicts_expired_then_oldest() {
        let start = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(10), 2);
        cache.store("old", Known::NotInN8n, start);
        cache.store("mid", Known::NotInN8n, start + Duration::from_secs(5));
        cache.store("new", Known::NotInN8n, start + Duration::from_secs(11));
        assert_eq!(
            cache.lookup("old", start + Duration::from_secs(11)),
            Lookup::Missing,
            "expired entry dropped first"
        );
        cache.store("newest", Known::NotInN8n, start + Duration::from_secs(12));
        assert_eq!(cache.lookup("mid", start + Duration::from_secs(12)), Lookup::Missing, "then the oldest");
        assert!(matches!(cache.lookup("new", start + Duration::from_secs(12)), Lookup::Fresh(_)));
    }

    #[test]
    fn a_failure_keeps_a_known_profile_until_the_retry() {
        let start = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(60), 10);
        let retry = start + Duration::from_secs(75);
        cache.failed("new", N8nError::WorkflowFailed, start, retry);
        assert_eq!(cache.lookup("new", start), Lookup::Fresh(&Known::Failed(N8nError::WorkflowFailed)));
        cache.store("old", Known::NotInN8n, start);
        cache.failed("old", N8nError::WorkflowFailed, start + Duration::from_secs(61), retry);
        assert_eq!(
            cache.lookup("old", start + Duration::from_secs(70)),
            Lookup::Fresh(&Known::Failed(N8nError::WorkflowFailed))
        );
        assert!(matches!(cache.lookup("old", retry), Lookup::Stale(_)));
    }

    #[test]
    fn invalidation_drops_one_or_all() {
        let now = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(10), 10);
        cache.store("a", Known::NotInN8n, now);
        cache.store("b", Known::NotInN8n, now);
        assert_eq!(cache.invalidate(Some("a")), 1);
        assert_eq!(cache.invalidate(Some("a")), 0);
        assert_eq!(cache.invalidate(None), 1);
        assert_eq!(cache.lookup("b", now), Lookup::Missing);
    }
}
