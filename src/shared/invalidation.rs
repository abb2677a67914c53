//! Profile invalidations published by one instance and followed by all.
//!
//! Following is a subscription on its own connection, kept by one task per instance. Messages
//! published while it is cut off are lost with it, so after any gap the whole cache is dropped:
//! a profile then costs one more fetch from n8n, and nobody keeps a profile someone changed.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;

use super::health::{Change, Health};
use super::{ANSWER_WITHIN, PREFIX, Shared};
use crate::profiles::ProfileStore;

/// Every profile, as a payload; agent ids never contain `*`.
const ALL: &str = "*";

fn channel() -> String {
    format!("{PREFIX}:invalidate")
}

/// What a payload asks to drop: `None` is every profile, `Some(id)` one agent's.
fn target(payload: &str) -> Option<&str> {
    Some(payload).filter(|p| *p != ALL)
}

impl Shared {
    /// Tells every instance following invalidations to drop `agent_id`'s profile (every profile
    /// for `None`); false when Redis is down, and only this instance's cache was dropped.
    pub async fn publish_invalidation(&self, agent_id: Option<&str>) -> bool {
        let payload = agent_id.unwrap_or(ALL).to_owned();
        self.run("publishing a cache invalidation", |mut connection| async move {
            redis::cmd("PUBLISH").arg(channel()).arg(payload).query_async::<i64>(&mut connection).await
        })
        .await
        .is_some()
    }

    /// Keeps `profiles` in step with the invalidations any instance publishes; runs until its
    /// task is aborted, resubscribing after Redis comes back.
    pub async fn follow_invalidations(self, profiles: Arc<ProfileStore>) {
        let mut health = Health::new();
        let mut gap = false;
        loop {
            match self.subscribe().await {
                Ok(mut messages) => {
                    if health.succeeded() == Change::Recovered {
                        tracing::info!("following cache invalidations through Redis again");
                    }
                    if gap {
                        let dropped = profiles.invalidate(None);
                        tracing::info!(
                            dropped,
                            "dropped every cached profile: invalidations sent while Redis was away are lost"
                        );
                    }
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else { continue };
                        let dropped = profiles.invalidate(target(&payload));
                        tracing::info!(agent_id = %payload, dropped, "profile cache invalidated by another instance");
                    }
                    gap = true;
                    let (change, wait) = health.failed(Instant::now());
                    if change == Change::WentDown {
                        tracing::warn!(retry_in = ?wait, "lost Redis: cache invalidations from other instances do not reach this one until it is back");
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(problem) => {
                    gap = true;
                    let (change, wait) = health.failed(Instant::now());
                    if change == Change::WentDown {
                        tracing::warn!(%problem, retry_in = ?wait, "cannot follow cache invalidations through Redis; will try again");
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn subscribe(&self) -> Result<redis::aio::PubSubStream, String> {
        let subscribing = async {
            let mut pubsub = self.inner.client.get_async_pubsub().await?;
            pubsub.subscribe(channel()).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        match tokio::time::timeout(ANSWER_WITHIN * 4, subscribing).await {
            Ok(Ok(messages)) => Ok(messages),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("no answer".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_drops_every_profile_and_an_id_only_its_own() {
        assert_eq!(target("*"), None);
        assert_eq!(target("clinic-hi"), Some("clinic-hi"));
        assert_eq!(channel(), "voice-agent:invalidate");
    }
}
