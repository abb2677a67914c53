//! Making a call's providers from its profile's chains: each provider built with its account's
//! key and endpoint, wrapped to count its usage into the call's meter (and its requests and
//! errors into the worker's metrics), and chained for fallback.

use std::sync::Arc;
use std::time::Duration;

use super::RetryPolicy;
use super::fallback::{FallbackChat, FallbackStt, FallbackTts, Member, ProbePolicy};
use super::llm::ChatModel;
use super::metered::{MeteredChat, MeteredStt, MeteredTts};
use super::registry::{self, Access, Kind, ProviderSetup};
use super::stt::SpeechToText;
use super::tts::TextToSpeech;
use super::usage::{UsageMeter, price_of};
use crate::config::ProviderSettings;
use crate::metrics::WorkerMetrics;

/// Each provider request gets this long before it counts as failed (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A profile's provider chains.
#[derive(Debug, Clone, Copy)]
pub struct Chains<'a> {
    /// Speech-to-text, first choice first.
    pub stt: &'a [ProviderSetup],
    /// Chat models, first choice first.
    pub llm: &'a [ProviderSetup],
    /// Text-to-speech, first choice first.
    pub tts: &'a [ProviderSetup],
}

impl Chains<'_> {
    /// Every provider of the profile, with its kind.
    pub fn all(&self) -> impl Iterator<Item = (Kind, &ProviderSetup)> {
        let stt = self.stt.iter().map(|setup| (Kind::Stt, setup));
        let llm = self.llm.iter().map(|setup| (Kind::Llm, setup));
        stt.chain(llm).chain(self.tts.iter().map(|setup| (Kind::Tts, setup)))
    }
}

/// A call's providers, and the meter they count their usage into.
pub struct CallProviders {
    /// Speech-to-text, falling back along the profile's chain.
    pub stt: Arc<dyn SpeechToText>,
    /// The chat model, falling back along the profile's chain.
    pub llm: Arc<dyn ChatModel>,
    /// Text-to-speech, falling back along the profile's chain.
    pub tts: Arc<dyn TextToSpeech>,
    pub(crate) usage: UsageMeter,
}

/// What `profile` (named for messages) needs that the settings lack: one line per missing key,
/// naming the profile and the providers that need it.
pub fn missing_keys(chains: Chains<'_>, settings: &ProviderSettings, profile: &str) -> Vec<String> {
    // (key setting, provider, the sections using it), in the order first met.
    let mut missing: Vec<(&'static str, &str, Vec<&'static str>)> = Vec::new();
    for (kind, setup) in chains.all() {
        let Some(vendor) = registry::vendor(&setup.provider) else { continue };
        if settings.account(vendor.name()).is_some_and(|account| account.api_key.is_some()) {
            continue;
        }
        let key = vendor.account().key_setting;
        match missing.iter_mut().find(|(name, _, _)| *name == key) {
            Some((_, _, sections)) if !sections.contains(&kind.section()) => sections.push(kind.section()),
            Some(_) => {}
            None => missing.push((key, vendor.name(), vec![kind.section()])),
        }
    }
    missing
        .into_iter()
        .map(|(key, provider, sections)| {
            let sections = match sections.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            };
            format!("{key} is not set; profile `{profile}` uses {provider} for {sections}")
        })
        .collect()
}

/// The providers for one call of `profile` (named in errors), each wrapped to count its usage;
/// the error says which provider cannot be built and why (unknown, missing key, bad options).
/// Their requests count into no metrics (see [`build_counted`]).
pub fn build(
    chains: Chains<'_>,
    settings: &ProviderSettings,
    http: &reqwest::Client,
    profile: &str,
) -> Result<CallProviders, String> {
    assemble(chains, settings, http, profile, ProbePolicy::default(), &WorkerMetrics::default())
}

/// [`build`], counting every request and failure into `metrics` (a call's
/// [`JobContext::metrics`](crate::worker::JobContext::metrics)), as the worker's own agent does.
pub fn build_counted(
    chains: Chains<'_>,
    settings: &ProviderSettings,
    http: &reqwest::Client,
    profile: &str,
    metrics: &WorkerMetrics,
) -> Result<CallProviders, String> {
    assemble(chains, settings, http, profile, ProbePolicy::default(), metrics)
}

/// [`build`] with the pause between probes of failed providers given (tests make it short).
pub fn build_with(
    chains: Chains<'_>,
    settings: &ProviderSettings,
    http: &reqwest::Client,
    profile: &str,
    policy: ProbePolicy,
) -> Result<CallProviders, String> {
    assemble(chains, settings, http, profile, policy, &WorkerMetrics::default())
}

fn assemble(
    chains: Chains<'_>,
    settings: &ProviderSettings,
    http: &reqwest::Client,
    profile: &str,
    policy: ProbePolicy,
    metrics: &WorkerMetrics,
) -> Result<CallProviders, String> {
    let missing = missing_keys(chains, settings, profile);
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    let usage = UsageMeter::new();
    let built = Built { settings, http, usage: &usage };
    let mut stt = Vec::new();
    for setup in chains.stt {
        let provider = registry::stt(&setup.provider).ok_or_else(|| unknown(Kind::Stt, setup))?;
        let inner = provider.build(&built.access(setup)?, &setup.options)?;
        let counter = built.counter(Kind::Stt, setup);
        let requests = metrics.provider(Kind::Stt, &setup.provider);
        let metered: Arc<dyn SpeechToText> = Arc::new(MeteredStt { inner, counter, requests });
        stt.push(Member::new(name(Kind::Stt, setup), metered, ()));
    }
    let mut llm = Vec::new();
    for setup in chains.llm {
        let provider = registry::chat(&setup.provider).ok_or_else(|| unknown(Kind::Llm, setup))?;
        let inner = provider.build(&built.access(setup)?, &setup.options)?;
        let counter = built.counter(Kind::Llm, setup);
        let requests = metrics.provider(Kind::Llm, &setup.provider);
        let metered: Arc<dyn ChatModel> = Arc::new(MeteredChat { inner, counter, requests });
        llm.push(Member::new(name(Kind::Llm, setup), metered, provider.model(&setup.options)));
    }
    let mut tts = Vec::new();
    for setup in chains.tts {
        let provider = registry::tts(&setup.provider).ok_or_else(|| unknown(Kind::Tts, setup))?;
        let inner = provider.build(&built.access(setup)?, &setup.options)?;
        let counter = built.counter(Kind::Tts, setup);
        let requests = metrics.provider(Kind::Tts, &setup.provider);
        let metered: Arc<dyn TextToSpeech> = Arc::new(MeteredTts { inner, counter, requests });
        tts.push(Member::new(name(Kind::Tts, setup), metered, setup.voice.clone()));
    }
    Ok(CallProviders {
        stt: Arc::new(FallbackStt::new(stt, policy)),
        llm: Arc::new(FallbackChat::new(llm, policy)),
        tts: Arc::new(FallbackTts::new(tts, policy)),
        usage,
    })
}

struct Built<'a> {
    settings: &'a ProviderSettings,
    http: &'a reqwest::Client,
    usage: &'a UsageMeter,
}

impl Built<'_> {
    fn access(&self, setup: &ProviderSetup) -> Result<Access, String> {
        let account =
            self.settings.account(&setup.provider).ok_or_else(|| format!("{} has no settings", setup.provider))?;
        let key = account.api_key.clone().ok_or_else(|| format!("{} has no key", setup.provider))?;
        Ok(Access {
            key,
            base_url: account.base_url.clone(),
            http: self.http.clone(),
            timeout: REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
        })
    }

    fn counter(&self, kind: Kind, setup: &ProviderSetup) -> super::usage::Counter {
        let model = registry::model(kind, setup);
        let price = price_of(kind, &setup.provider, &model, setup.price, &self.settings.prices);
        self.usage.counter(kind, &setup.provider, &model, price)
    }
}

fn name(kind: Kind, setup: &ProviderSetup) -> String {
    format!("{} ({})", setup.provider, registry::model(kind, setup))
}

fn unknown(kind: Kind, setup: &ProviderSetup) -> String {
    format!("`{}` is not a {} provider", setup.provider, kind.describe())
}
