//! Profile look-ups that involve n8n, by outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// What became of one look-up of a profile with n8n configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileFetch {
    /// Answered from the cache, fresh: n8n was not asked.
    Hit,
    /// Not cached (or expired): n8n was asked and answered.
    Miss,
    /// n8n failed or was busy, and the last profile it gave was served.
    Stale,
    /// n8n failed (now, or recently and not asked again yet) and no profile of its was at hand.
    Error,
}

impl ProfileFetch {
    const ALL: [ProfileFetch; 4] = [Self::Hit, Self::Miss, Self::Stale, Self::Error];

    fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Profile look-ups by outcome; cheap to clone, every clone counts into the same series.
#[derive(Debug, Clone, Default)]
pub struct ProfileMetrics {
    fetches: Family<OutcomeLabels, Counter>,
}

impl ProfileMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        for outcome in ProfileFetch::ALL {
            let _ = self.fetches.get_or_create(&OutcomeLabels { outcome: outcome.as_str() });
        }
        registry.register(
            "profile_fetches",
            "Profile look-ups with n8n configured, by outcome: hit (fresh in the cache), miss (asked n8n), stale (n8n failed or busy; its last profile served), error (n8n failed, none of its profiles at hand)",
            self.fetches.clone(),
        );
    }

    /// One look-up ended with `outcome`.
    pub fn fetched(&self, outcome: ProfileFetch) {
        self.fetches.get_or_create(&OutcomeLabels { outcome: outcome.as_str() }).inc();
    }
}
