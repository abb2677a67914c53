//! Checks made when a worker starts, so a wrong model or key fails the start with a clear
//! error instead of the first call.

use std::time::Duration;

use super::build::{Chains, missing_keys};
use super::llm::{LlmConfig, list_models};
use super::registry;
use super::{ProviderError, RetryPolicy};
use crate::config::ProviderSettings;

/// How long each provider gets to list its models.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// Models named in a message about a model not listed, at most.
const SHOWN_MODELS: usize = 20;

/// What stops a start, and what is only worth a warning.
#[derive(Debug, Default, PartialEq)]
pub struct Readiness {
    /// Each one stops the worker from starting: a model the provider does not serve, or a key
    /// it refuses.
    pub problems: Vec<String>,
    /// Worth logging, but the worker starts: a provider that could not be asked.
    pub warnings: Vec<String>,
}

/// Every key the profiles need and the settings lack, each naming the profile.
pub fn keys<'a>(profiles: impl IntoIterator<Item = (&'a str, Chains<'a>)>, settings: &ProviderSettings) -> Vec<String> {
    profiles.into_iter().flat_map(|(profile, chains)| missing_keys(chains, settings, profile)).collect()
}

/// Asks each OpenAI-compatible chat provider the profiles use for its models (`GET /models`):
/// a configured model it does not list is a problem; a provider that cannot be asked (down,
/// unreachable) a warning, its models being checked by the first call.
pub async fn check_models<'a>(
    profiles: impl IntoIterator<Item = (&'a str, Chains<'a>)>,
    settings: &ProviderSettings,
    http: &reqwest::Client,
) -> Readiness {
    // (provider, model, profiles asking for it), in the order first met.
    let mut wanted: Vec<(String, String, Vec<&'a str>)> = Vec::new();
    for (profile, chains) in profiles {
        for setup in chains.llm {
            let Some(chat) = registry::chat(&setup.provider).filter(|chat| chat.lists_models()) else { continue };
            let model = chat.model(&setup.options);
            match wanted.iter_mut().find(|(p, m, _)| *p == setup.provider && *m == model) {
                Some((_, _, asking)) if !asking.contains(&profile) => asking.push(profile),
                Some(_) => {}
                None => wanted.push((setup.provider.clone(), model, vec![profile])),
            }
        }
    }
    let mut readiness = Readiness::default();
    let mut providers: Vec<&str> = wanted.iter().map(|(provider, _, _)| provider.as_str()).collect();
    providers.dedup();
    for provider in providers {
        let Some(vendor) = registry::vendor(provider) else { continue };
        let Some(account) = settings.account(provider) else { continue };
        let Some(key) = account.api_key.clone() else { continue };
        let config = LlmConfig {
            provider: vendor.name(),
            base_url: account.base_url.clone(),
            api_key: key,
            timeout: LIST_TIMEOUT,
            retry: RetryPolicy::default(),
            reasoning_effort: None,
        };
        let asked = wanted.iter().filter(|(p, _, _)| p == provider);
        match list_models(&config, http).await {
            Ok(listed) => {
                for (_, model, profiles) in asked.filter(|(_, model, _)| !listed.contains(model)) {
                    let shown: Vec<&str> = listed.iter().take(SHOWN_MODELS).map(String::as_str).collect();
                    let more = if listed.len() > SHOWN_MODELS { ", …" } else { "" };
                    readiness.problems.push(format!(
                        "{provider} does not list the model `{model}` that profile {} uses (llm.model); it lists {}{more}",
                        quoted(profiles),
                        shown.join(", ")
                    ));
                }
            }
            Err(error @ (ProviderError::Auth { .. } | ProviderError::QuotaExhausted { .. })) => {
                readiness.problems.push(format!(
                    "{error} (profile {} uses {provider})",
                    quoted(&asked.flat_map(|(_, _, p)| p.clone()).collect::<Vec<_>>())
                ));
            }
            Err(error) => {
                let models: Vec<&str> = asked.map(|(_, model, _)| model.as_str()).collect();
                readiness.warnings.push(format!(
                    "cannot ask {provider} which models it serves ({error}); {} will be checked by the first call",
                    models.join(", ")
                ));
            }
        }
    }
    readiness
}

fn quoted(profiles: &[&str]) -> String {
    let quoted: Vec<String> = profiles.iter().map(|p| format!("`{p}`")).collect();
    quoted.join(", ")
}
