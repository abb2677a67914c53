//! Prometheus metrics: what the worker and the token server count, and the text Prometheus
//! scrapes from them (`GET /metrics`).
//!
//! Each process owns one [`Registry`] and hands typed handles ([`WorkerMetrics`],
//! [`TokenMetrics`], [`ProfileMetrics`]) to the parts that count; nothing is global, so tests
//! in one process do not share counters. A handle made with `Default` counts into nothing
//! anyone scrapes, for library users and tests that do not care.
//!
//! Labels take values from small fixed sets only (stages, end reasons, provider names, error
//! kinds, route templates, status codes): never room names, job ids or anything a caller said,
//! which would both leak personal data and grow the series without bound.

mod profiles;
mod serve;
mod token;
mod worker;

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

pub use profiles::{ProfileFetch, ProfileMetrics};
pub use serve::{CONTENT_TYPE, router, serve};
pub use token::{RateLimit, TokenMetrics};
pub use worker::{JobResult, ProviderMetrics, Stage, WorkerMetrics};

use crate::records::Outbox;

/// Every metric name starts with this.
const PREFIX: &str = "voice_agent";

/// Where one process's metrics are registered, until [`Registry::finish`] makes it scrapeable.
#[derive(Debug, Default)]
pub struct Registry {
    inner: prometheus_client::registry::Registry,
}

impl Registry {
    /// An empty registry: nothing is scraped until handles are made from it.
    pub fn new() -> Self {
        Self::default()
    }

    /// The worker's metrics: calls, turns, providers, load and jobs.
    pub fn worker(&mut self) -> WorkerMetrics {
        let metrics = WorkerMetrics::default();
        metrics.register(self.prefixed());
        metrics
    }

    /// The token server's metrics: tokens, refusals, requests.
    pub fn token_server(&mut self) -> TokenMetrics {
        let metrics = TokenMetrics::default();
        metrics.register(self.prefixed());
        metrics
    }

    /// Profile fetches from n8n, counted by whichever process asks (both do).
    pub fn profiles(&mut self) -> ProfileMetrics {
        let metrics = ProfileMetrics::default();
        metrics.register(self.prefixed());
        metrics
    }

    /// The call records waiting in `outbox` and those n8n refused, read at every scrape.
    pub fn outbox(&mut self, outbox: Outbox) {
        self.inner.register_collector(Box::new(OutboxGauges(outbox)));
    }

    /// Closes registration: what is registered now is what every scrape shows.
    pub fn finish(self) -> Exposition {
        Exposition(Arc::new(self.inner))
    }

    fn prefixed(&mut self) -> &mut prometheus_client::registry::Registry {
        self.inner.sub_registry_with_prefix(PREFIX)
    }
}

/// A finished registry: renders the OpenMetrics text Prometheus scrapes.
#[derive(Debug, Clone)]
pub struct Exposition(Arc<prometheus_client::registry::Registry>);

impl Exposition {
    /// The current value of every series, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail, and every metric here encodes.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.0) {
            tracing::error!("cannot encode the metrics: {e}");
        }
        text
    }
}

/// Reads the outbox's counts at scrape time: the outbox keeps them already, so nothing has to
/// be told when a record arrives or leaves.
#[derive(Debug)]
struct OutboxGauges(Outbox);

impl Collector for OutboxGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges = [
            (
                "voice_agent_outbox_pending",
                "Call records on disk not yet delivered to n8n (including one in flight).",
                self.0.pending(),
            ),
            (
                "voice_agent_outbox_dead",
                "Call records n8n refused for good since the worker started; they wait in SPOOL_DIR/dead.",
                self.0.tally().dead,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
