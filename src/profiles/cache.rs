//! What n8n said about agent ids, remembered for a while. Time is an input, so expiry is tested
//! without waiting.
//!
//! Profiles and negative answers ("no such agent", "n8n failed") are kept apart: anyone can ask
//! for a million made-up ids, and those answers must never push out a real profile, which is what
//! callers get while n8n is down. Negative answers live briefly in their own bounded map; a
//! profile leaves only for another profile (the oldest goes when the profile map is full), when
//! n8n says the agent is gone, or on invalidation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::n8n::N8nError;
use super::profile::AgentProfile;

/// Negative answers are trusted for at most this long, whatever the profile TTL, so an agent
/// added to n8n is found soon and a flood of made-up ids ages out quickly.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);

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

/// Each entry with the instant until which it is served without asking n8n.
type Entries = HashMap<String, (Known, Instant)>;

#[derive(Debug)]
pub struct ProfileCache {
    ttl: Duration,
    profiles: Entries,
    profile_capacity: usize,
    negatives: Entries,
    negative_capacity: usize,
}

impl ProfileCache {
    /// The capacities bound memory: profiles by how many real agents are kept, negative answers
    /// by how many made-up ids are remembered.
    pub fn new(ttl: Duration, profile_capacity: usize, negative_capacity: usize) -> Self {
        Self { ttl, profiles: HashMap::new(), profile_capacity, negatives: HashMap::new(), negative_capacity }
    }

    pub fn lookup(&self, id: &str, now: Instant) -> Lookup<'_> {
        match self.profiles.get(id).or_else(|| self.negatives.get(id)) {
            Some((known, until)) if now < *until => Lookup::Fresh(known),
            Some((known, _)) => Lookup::Stale(known),
            None => Lookup::Missing,
        }
    }

    /// Remembers a fresh answer: a profile for the TTL, a negative one for at most
    /// [`NEGATIVE_TTL`].
    pub fn store(&mut self, id: &str, known: Known, now: Instant) {
        match known {
            Known::Profile(_) => {
                self.negatives.remove(id);
                let until = now + self.ttl;
                insert(&mut self.profiles, self.profile_capacity, id, known, until);
            }
            Known::NotInN8n | Known::Failed(_) => {
                // n8n says the agent is gone: its old profile must not be served any more.
                self.profiles.remove(id);
                let until = now + self.ttl.min(NEGATIVE_TTL);
                insert(&mut self.negatives, self.negative_capacity, id, known, until);
            }
        }
    }

    /// After a failed fetch: keeps a known profile (stale is better than nothing) or remembers the
    /// failure, either way until `retry_at`, when n8n is asked again.
    pub fn failed(&mut self, id: &str, error: N8nError, retry_at: Instant) {
        if let Some((_, until)) = self.profiles.get_mut(id) {
            *until = retry_at;
            return;
        }
        insert(&mut self.negatives, self.negative_capacity, id, Known::Failed(error), retry_at);
    }

    /// Forgets one id, or every id; returns how many entries were dropped.
    pub fn invalidate(&mut self, id: Option<&str>) -> usize {
        match id {
            Some(id) => {
                usize::from(self.profiles.remove(id).is_some()) + usize::from(self.negatives.remove(id).is_some())
            }
            None => {
                let count = self.profiles.len() + self.negatives.len();
                self.profiles.clear();
                self.negatives.clear();
                count
            }
        }
    }
}

/// Inserts into one map; when it is full, the entry that went stale first leaves.
fn insert(entries: &mut Entries, capacity: usize, id: &str, known: Known, until: Instant) {
    if entries.len() >= capacity && !entries.contains_key(id) {
        let oldest = entries.iter().min_by_key(|(_, (_, until))| *until).map(|(key, _)| key.clone());
        if let Some(oldest) = oldest {
            entries.remove(&oldest);
        }
    }
    entries.insert(id.to_owned(), (known, until));
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::profiles::tests::defaults;

    fn profile(id: &str) -> Known {
        let doc: crate::profiles::ProfileDoc = toml::from_str("system_prompt = \"Be brief.\"").expect("parses");
        Known::Profile(Arc::new(doc.resolve(id, &defaults()).expect("valid")))
    }

    #[test]
    fn entries_go_stale_after_their_ttl() {
        let start = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(60), 10, 10);
        assert_eq!(cache.lookup("a", start), Lookup::Missing);
        cache.store("a", profile("a"), start);
        assert!(matches!(cache.lookup("a", start + Duration::from_secs(59)), Lookup::Fresh(Known::Profile(_))));
        assert!(matches!(cache.lookup("a", start + Duration::from_secs(60)), Lookup::Stale(Known::Profile(_))));
    }

    #[test]
    fn negative_answers_are_short_lived() {
        let start = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(300), 10, 10);
        cache.store("ghost", Known::NotInN8n, start);
        assert_eq!(
            cache.lookup("ghost", start + NEGATIVE_TTL - Duration::from_secs(1)),
            Lookup::Fresh(&Known::NotInN8n)
        );
        assert_eq!(cache.lookup("ghost", start + NEGATIVE_TTL), Lookup::Stale(&Known::NotInN8n));
    }

    #[test]
    fn made_up_ids_never_push_out_a_profile() {
        let start = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(1), 4, 4);
        cache.store("real", profile("real"), start);
        for n in 0..1_100 {
            cache.store(&format!("made-up-{n}"), Known::NotInN8n, start + Duration::from_millis(n));
        }
        let later = start + Duration::from_secs(5);
        assert!(matches!(cache.lookup("real", later), Lookup::Stale(Known::Profile(_))), "kept, if stale");
        assert_eq!(cache.lookup("made-up-0", later), Lookup::Missing, "the oldest negative answers left");
        assert!(matches!(cache.lookup("made-up-1099", later), Lookup::Stale(Known::NotInN8n)));
        assert_eq!(cache.negatives.len(), 4, "negative answers stay within their bound");
    }

    #[test]
    fn profiles_only_give_way_to_profiles() {
        let start = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(10), 2, 2);
        cache.store("old", profile("old"), start);
        cache.store("mid", profile("mid"), start + Duration::from_secs(1));
        cache.store("new", profile("new"), start + Duration::from_secs(2));
        let now = start + Duration::from_secs(3);
        assert_eq!(cache.lookup("old", now), Lookup::Missing, "the oldest profile left for a newer one");
        assert!(matches!(cache.lookup("mid", now), Lookup::Fresh(_)));
        assert!(matches!(cache.lookup("new", now), Lookup::Fresh(_)));
    }

    #[test]
    fn a_failure_keeps_a_known_profile_until_the_retry() {
        let start = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(60), 10, 10);
        let retry = start + Duration::from_secs(75);
        cache.failed("new", N8nError::WorkflowFailed, retry);
        assert_eq!(cache.lookup("new", start), Lookup::Fresh(&Known::Failed(N8nError::WorkflowFailed)));
        cache.store("old", profile("old"), start);
        cache.failed("old", N8nError::WorkflowFailed, retry);
        assert!(matches!(cache.lookup("old", start + Duration::from_secs(70)), Lookup::Fresh(Known::Profile(_))));
        assert!(matches!(cache.lookup("old", retry), Lookup::Stale(Known::Profile(_))));
    }

    #[test]
    fn n8n_saying_an_agent_is_gone_drops_its_profile() {
        let start = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(60), 10, 10);
        cache.store("a", profile("a"), start);
        cache.store("a", Known::NotInN8n, start + Duration::from_secs(61));
        assert_eq!(cache.lookup("a", start + Duration::from_secs(62)), Lookup::Fresh(&Known::NotInN8n));
    }

    #[test]
    fn invalidation_drops_one_or_all() {
        let now = Instant::now();
        let mut cache = ProfileCache::new(Duration::from_secs(10), 10, 10);
        cache.store("a", profile("a"), now);
        cache.store("b", Known::NotInN8n, now);
        cache.store("c", profile("c"), now);
        assert_eq!(cache.invalidate(Some("a")), 1);
        assert_eq!(cache.invalidate(Some("a")), 0);
        assert_eq!(cache.invalidate(None), 2);
        assert_eq!(cache.lookup("b", now), Lookup::Missing);
    }
}
