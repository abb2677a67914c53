//! State shared by every token server and worker through Redis (optional, `REDIS_URL`).
//!
//! Without `REDIS_URL` each instance works alone. With it:
//! - cache invalidation: `/api/invalidate-cache` on any token server is published on the channel
//!   `voice-agent:invalidate` (payload: the agent id, or `*` for every profile); every token
//!   server and worker follows it and drops the profile at once.
//! - rate limits: one budget per client across token servers, counted per minute in
//!   `voice-agent:rate:<scope>:<client>:<minute>` (`scope` is `token` or `api`, `client` the
//!   address as the local limiter counts it, IPv6 by /64, `minute` the Unix minute), which
//!   expires after its minute.
//! - a registry of live calls: each worker writes `voice-agent:call:<worker>:<call id>` (JSON
//!   `{worker, callId, room, agent, started, state}`) and `voice-agent:worker:<worker>` (JSON
//!   `{worker, started, state, calls}`) every 5 s with a 15 s expiry, so a dead worker's entries
//!   vanish within 15 s; an ended call's key is removed at the next refresh, and a worker that
//!   stops cleanly removes its own keys.
//!
//! Redis is an aid, never a dependency: when it does not answer, each instance warns once and
//! goes on alone, tries Redis again with a growing wait, and says when it is back
//! ([`health`] decides).
//!
//! - `health`: when to use Redis and when to go on locally.
//! - `invalidation`: publishing and following profile invalidations.
//! - `rate`: the shared per-minute budget.
//! - `registry`: the live calls' entries.

mod health;
mod invalidation;
mod rate;
mod registry;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use crate::config::Secret;
use health::{Change, Health, Use};
pub use registry::{CallEntry, RegistryTiming};

/// Every key and channel starts with this, so the product can share a Redis (LiveKit's too).
pub const PREFIX: &str = "voice-agent";

/// A Redis that takes longer to answer one command is taken as down: requests must not wait on it.
const ANSWER_WITHIN: Duration = Duration::from_millis(500);

/// Why the shared state cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// REDIS_URL does not name a Redis server.
    #[error("REDIS_URL is not a Redis URL (redis://[:password@]host[:port][/db]): {reason}")]
    Url {
        /// What the Redis client found wrong with it (never the URL, which may hold a password).
        reason: String,
    },
}

/// A handle on the shared state, cheap to clone; see the [module documentation](self).
#[derive(Clone)]
pub struct Shared {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// Multiplexed, so every request shares it; dropped after a failure and made anew at the
    /// next try.
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    health: Mutex<Health>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("down", &self.lock_health().is_down()).finish()
    }
}

impl Shared {
    /// Checks the URL; nothing is connected until first used.
    pub fn new(url: &Secret) -> Result<Self, SharedError> {
        let client = redis::Client::open(url.expose()).map_err(|e| SharedError::Url { reason: e.to_string() })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                connection: tokio::sync::Mutex::new(None),
                health: Mutex::new(Health::new()),
            }),
        })
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.inner.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` on Redis, or returns `None` (go on locally) while Redis is down or when it fails.
    pub(crate) async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.lock_health().choose(Instant::now()) == Use::Local {
            return None;
        }
        let connection = match self.connection().await {
            Ok(connection) => connection,
            Err(problem) => {
                self.failed(what, &problem);
                return None;
            }
        };
        match tokio::time::timeout(ANSWER_WITHIN, op(connection)).await {
            Ok(Ok(value)) => {
                if self.lock_health().succeeded() == Change::Recovered {
                    tracing::info!(
                        "Redis answers again: shared cache invalidation, rate limits and call registry resume"
                    );
                }
                Some(value)
            }
            Ok(Err(error)) => {
                self.failed(what, &error.to_string());
                None
            }
            Err(_) => {
                self.failed(what, &format!("no answer within {ANSWER_WITHIN:?}"));
                None
            }
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let made = tokio::time::timeout(ANSWER_WITHIN, self.inner.client.get_multiplexed_async_connection()).await;
        let connection = match made {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(format!("cannot connect: {error}")),
            Err(_) => return Err(format!("cannot connect within {ANSWER_WITHIN:?}")),
        };
        *slot = Some(connection.clone());
        Ok(connection)
    }

    fn failed(&self, what: &'static str, problem: &str) {
        let (change, wait) = self.lock_health().failed(Instant::now());
        if change == Change::WentDown {
            tracing::warn!(
                during = what,
                %problem,
                retry_in = ?wait,
                "Redis (REDIS_URL) does not answer: this instance goes on alone (its own cache and rate limits, \
                 no call registry) and tries Redis again"
            );
        }
        // A connection that failed once is not trusted again; the next try makes a new one.
        if let Ok(mut slot) = self.inner.connection.try_lock() {
            *slot = None;
        }
    }
}
