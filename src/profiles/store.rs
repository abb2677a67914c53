//! The one place the product asks for an agent profile.
//!
//! Order of preference: a fresh n8n answer from the cache; n8n itself (one request per id even
//! when many callers ask at once); on n8n failure a stale n8n profile; then the local profile with
//! that id; else the agent is unknown.
//!
//! At most [`MAX_CONCURRENT_FETCHES`] requests go to n8n at once, so a flood of ids cannot flood
//! n8n: while they are all busy, an agent with a stale profile gets it at once, and others wait
//! for a turn up to n8n's timeout.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::cache::{Known, Lookup, ProfileCache};
use super::n8n::{N8nAnswer, N8nClient};
use super::profile::{AgentProfile, check_id};
use super::{ProfileError, local};
use crate::config::{ProfileDefaults, Settings};
use crate::metrics::{ProfileFetch, ProfileMetrics};

/// n8n's webhook timeout, as in the Python system.
pub const N8N_TIMEOUT: Duration = Duration::from_secs(5);
/// While n8n fails, it is asked again at most this often per agent.
pub const FAILURE_RETRY: Duration = Duration::from_secs(15);
/// Profiles of real agents kept; only other profiles make room among them.
const PROFILE_CAPACITY: usize = 1024;
/// Negative answers (unknown or failed ids) kept, briefly.
const NEGATIVE_CAPACITY: usize = 1024;
/// Requests in flight to n8n's profile webhook, across all ids.
pub const MAX_CONCURRENT_FETCHES: usize = 8;

/// Where calls get their agent's profile: n8n first (cached for the TTL, stale while n8n is
/// slow), local files as the fallback.
pub struct ProfileStore {
    local: BTreeMap<String, Arc<AgentProfile>>,
    n8n: Option<N8nClient>,
    defaults: ProfileDefaults,
    cache: Mutex<ProfileCache>,
    /// One lock per id being fetched: later callers wait for the first fetch instead of starting
    /// their own.
    fetches: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    fetch_turns: tokio::sync::Semaphore,
    metrics: ProfileMetrics,
}

impl ProfileStore {
    /// A store over already-loaded local profiles, asking `n8n` (when given) first.
    pub fn new(
        local: BTreeMap<String, AgentProfile>,
        n8n: Option<N8nClient>,
        defaults: ProfileDefaults,
        ttl: Duration,
    ) -> Self {
        let local = local.into_iter().map(|(id, profile)| (id, Arc::new(profile))).collect();
        let cache = Mutex::new(ProfileCache::new(ttl, PROFILE_CAPACITY, NEGATIVE_CAPACITY));
        let fetch_turns = tokio::sync::Semaphore::new(MAX_CONCURRENT_FETCHES);
        Self { local, n8n, defaults, cache, fetches: Mutex::default(), fetch_turns, metrics: ProfileMetrics::default() }
    }

    /// Counts every look-up that involves n8n into `metrics`, by outcome.
    pub fn with_metrics(mut self, metrics: ProfileMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Loads local profiles from PROFILES_DIR and sets up n8n when N8N_BASE_URL is set.
    pub fn from_settings(settings: &Settings, http: reqwest::Client) -> Result<Self, ProfileError> {
        let local = local::load_dir(&settings.profiles.dir, &settings.defaults)?;
        let n8n = settings
            .n8n
            .base_url
            .as_ref()
            .map(|base| N8nClient::new(http, base, &settings.n8n.agent_config_path, N8N_TIMEOUT));
        Ok(Self::new(local, n8n, settings.defaults.clone(), settings.profiles.cache_ttl))
    }

    /// Local profiles, for pages that list the agents on offer.
    pub fn local_profiles(&self) -> impl Iterator<Item = &AgentProfile> {
        self.local.values().map(AsRef::as_ref)
    }

    /// The profile of agent `id`.
    pub async fn get(&self, id: &str) -> Result<Arc<AgentProfile>, ProfileError> {
        self.get_at(id, Instant::now()).await
    }

    /// [`get`](Self::get) at a given instant, so tests can move time.
    pub async fn get_at(&self, id: &str, now: Instant) -> Result<Arc<AgentProfile>, ProfileError> {
        check_id(id).map_err(ProfileError::InvalidId)?;
        let Some(n8n) = &self.n8n else { return self.local(id, None) };
        if let Some(answer) = self.fresh(id, now) {
            return answer;
        }
        let fetch = self.fetch_lock(id);
        let result = {
            let _only_fetch = fetch.lock().await;
            match self.fresh(id, now) {
                Some(answer) => answer,
                None => self.fetch(n8n, id, now).await,
            }
        };
        self.release_fetch_lock(id, fetch);
        result
    }

    /// Asks n8n when it is this request's turn; see the module's note on concurrent fetches.
    async fn fetch(&self, n8n: &N8nClient, id: &str, now: Instant) -> Result<Arc<AgentProfile>, ProfileError> {
        let turn = match self.stale_profile(id, now) {
            Some(stale) => match self.fetch_turns.try_acquire() {
                Ok(turn) => turn,
                Err(_) => {
                    self.metrics.fetched(ProfileFetch::Stale);
                    return Ok(stale);
                }
            },
            None => match tokio::time::timeout(N8N_TIMEOUT, self.fetch_turns.acquire()).await {
                Ok(Ok(turn)) => turn,
                _ => {
                    self.metrics.fetched(ProfileFetch::Error);
                    return self.local(id, Some("too many profile requests are waiting for n8n".to_owned()));
                }
            },
        };
        let outcome = n8n.fetch(id, &self.defaults).await;
        drop(turn);
        self.remember(id, outcome, now)
    }

    fn stale_profile(&self, id: &str, now: Instant) -> Option<Arc<AgentProfile>> {
        match self.cache.lock().unwrap_or_else(PoisonError::into_inner).lookup(id, now) {
            Lookup::Stale(Known::Profile(profile)) => Some(profile.clone()),
            _ => None,
        }
    }

    /// Forgets cached n8n answers for one agent or all; returns how many were dropped.
    pub fn invalidate(&self, id: Option<&str>) -> usize {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).invalidate(id)
    }

    fn fresh(&self, id: &str, now: Instant) -> Option<Result<Arc<AgentProfile>, ProfileError>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let (outcome, answer) = match cache.lookup(id, now) {
            Lookup::Fresh(Known::Profile(profile)) => (ProfileFetch::Hit, Ok(profile.clone())),
            Lookup::Fresh(Known::NotInN8n) => (ProfileFetch::Hit, self.local(id, None)),
            Lookup::Fresh(Known::Failed(error)) => (ProfileFetch::Error, self.local(id, Some(error.to_string()))),
            Lookup::Stale(_) | Lookup::Missing => return None,
        };
        self.metrics.fetched(outcome);
        Some(answer)
    }

    fn remember(
        &self,
        id: &str,
        outcome: Result<N8nAnswer, super::n8n::N8nError>,
        now: Instant,
    ) -> Result<Arc<AgentProfile>, ProfileError> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(N8nAnswer::Profile(profile)) => {
                self.metrics.fetched(ProfileFetch::Miss);
                let profile = Arc::new(*profile);
                cache.store(id, Known::Profile(profile.clone()), now);
                Ok(profile)
            }
            Ok(N8nAnswer::UnknownAgent) => {
                self.metrics.fetched(ProfileFetch::Miss);
                cache.store(id, Known::NotInN8n, now);
                drop(cache);
                self.local(id, None)
            }
            Err(error) => {
                let stale = match cache.lookup(id, now) {
                    Lookup::Stale(Known::Profile(profile)) => Some(profile.clone()),
                    _ => None,
                };
                let fallback = if stale.is_some() {
                    "serving the last profile n8n gave"
                } else if self.local.contains_key(id) {
                    "serving the local profile"
                } else {
                    "no profile to serve"
                };
                tracing::warn!(agent_id = id, retry_in_secs = FAILURE_RETRY.as_secs(), "{error}; {fallback}");
                cache.failed(id, error.clone(), now + FAILURE_RETRY);
                drop(cache);
                self.metrics.fetched(if stale.is_some() { ProfileFetch::Stale } else { ProfileFetch::Error });
                match stale {
                    Some(profile) => Ok(profile),
                    None => self.local(id, Some(error.to_string())),
                }
            }
        }
    }

    fn local(&self, id: &str, n8n_failure: Option<String>) -> Result<Arc<AgentProfile>, ProfileError> {
        match (self.local.get(id), n8n_failure) {
            (Some(profile), _) => Ok(profile.clone()),
            (None, Some(reason)) => Err(ProfileError::Unavailable { id: id.to_owned(), reason }),
            (None, None) => Err(ProfileError::UnknownAgent(id.to_owned())),
        }
    }

    fn fetch_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut fetches = self.fetches.lock().unwrap_or_else(PoisonError::into_inner);
        fetches.entry(id.to_owned()).or_default().clone()
    }

    /// Drops the id's lock once no one else holds or awaits it, so the map stays small.
    fn release_fetch_lock(&self, id: &str, fetch: Arc<tokio::sync::Mutex<()>>) {
        let mut fetches = self.fetches.lock().unwrap_or_else(PoisonError::into_inner);
        if Arc::strong_count(&fetch) == 2 {
            fetches.remove(id);
        }
    }
}
