//! The providers a call uses: its profile's chains, built from the deployment's keys and
//! endpoints, counting their usage into the call's meter and their requests into the worker's metrics (see `crate::providers`).

use crate::config::ProviderSettings;
use crate::metrics::WorkerMetrics;
use crate::profiles::AgentProfile;
use crate::providers::{self, CallProviders};

/// The providers for `profile`, or what is missing to make them.
pub fn for_profile(
    settings: &ProviderSettings,
    profile: &AgentProfile,
    http: &reqwest::Client,
    metrics: &WorkerMetrics,
) -> Result<CallProviders, String> {
    providers::build_counted(profile.chains(), settings, http, &profile.id, metrics)
}
