//! A voice agent with its own logic, built on the crate's public API and run by the same worker
//! as `agent-worker start`: a bakery's order line with a stock lookup tool and a note about
//! opening hours before each answer.
//!
//! ```sh
//! cargo run --example custom_agent          # the settings of agent-worker start (.env)
//! BAKERY_STOCK_URL=http://stock.local/api cargo run --example custom_agent
//! ```
//! The call's providers come from the default profile's chains and the deployment's keys, so
//! any provider the worker supports serves here too.

mod bakery;

use std::sync::Arc;

use anyhow::Context;
use voice_agent::agent::per_call;
use voice_agent::config::{Role, Settings, Sources};
use voice_agent::profiles::ProfileStore;
use voice_agent::providers;
use voice_agent::worker::{JobContext, Limits, Worker, WorkerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(&Sources::from_process(None), Role::Worker)?;
    voice_agent::telemetry::init(settings.log_format, "info");
    let service = match std::env::var("BAKERY_STOCK_URL") {
        Ok(url) => Some(url.parse().context("BAKERY_STOCK_URL is not a URL")?),
        Err(_) => None,
    };
    let stock = Arc::new(bakery::StockTool::new(service));
    let http = reqwest::Client::new();
    let keys = settings.providers.clone();
    let session = per_call(move |job: &JobContext| {
        let profile = &job.profile;
        let built = providers::build(profile.chains(), &keys, &http, &profile.id)?;
        let first = profile.llm.providers.first().ok_or("the default profile names no chat provider")?;
        let model = providers::registry::model(providers::registry::Kind::Llm, first);
        bakery::bakery_agent(job, built, &model, stock.clone(), bakery::bakery_clock).map_err(|e| e.to_string())
    });
    let config = WorkerConfig {
        livekit_url: settings.livekit.url.to_string(),
        api_key: settings.livekit.api_key.clone(),
        api_secret: settings.livekit.api_secret.clone(),
        limits: Limits {
            agent_name: settings.agent_name.clone(),
            max_jobs: settings.worker.max_jobs,
            load_threshold: settings.worker.load_threshold,
        },
        drain_timeout: settings.worker.drain_timeout,
    };
    let profiles = Arc::new(ProfileStore::from_settings(&settings, reqwest::Client::new())?);
    tracing::info!("the bakery agent waits for calls; Ctrl-C drains");
    Worker::new(config, profiles, session).run(voice_agent::shutdown::signal()).await;
    Ok(())
}
