//! A LiveKit voice-AI agent worker and its companion token server.
//!
//! Module map (one concern each):
//! - [`config`]: settings from defaults, a TOML file, `.env` and the environment.
//! - [`profiles`]: agent profiles from n8n (cached) with local TOML fallbacks.
//! - [`records`]: call records, spooled to disk and delivered to n8n, never lost.
//! - [`providers`]: speech and language model providers.
//! - [`web`]: the token server and the page people talk to the agent through.
//! - [`livekit`]: the LiveKit protocol: tokens, signalling, WebRTC peers, rooms, data.
//! - [`audio`]: Opus coding, resampling and real-time pacing.
//! - [`worker`]: the agent worker: registration, dispatch, one task per call.
//! - [`pipeline`]: a call's conversation: turn-taking, STT → LLM → TTS, barge-in, transcripts.
//! - [`devserver`]: a LiveKit-compatible server for tests and local development.
//! - [`shared`]: state shared by every instance through Redis (optional): invalidations, rate
//!   limits, the registry of live calls.
//! - [`net`]: hardened HTTP serving (timeouts, connection caps, body limits) for every server.
//! - [`metrics`]: Prometheus metrics of the worker and the token server (`GET /metrics`).

#![warn(missing_docs)]

// The noisy-room suite in `tests/support/` names this crate as integration tests do; the core's
// unit tests include it too.
#[cfg(test)]
extern crate self as voice_agent;

pub mod agent;
pub mod audio;
pub mod config;
pub mod devserver;
pub mod livekit;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod profiles;
pub mod providers;
pub mod records;
pub mod shared;
pub mod shutdown;
pub mod telemetry;
pub mod web;
pub mod worker;
