//! WebRTC PeerConnections on str0m: a sans-IO core ([`core`]) and the task that drives it
//! (`driver`). The same pair serves our participant (full ICE) and the dev server (ICE-lite).

mod candidate;
pub mod core;
pub(crate) mod driver;
pub mod sdp;

pub use candidate::{CandidateError, CandidateInit, host_ips};
pub use core::{ChannelSpec, MediaPacket, OfferRequest, PeerConfig, PeerCore, PeerError, PeerEvent};
pub(crate) use driver::{AudioSource, DriverEvent, MediaSink, PeerCommand, PeerHandle, spawn};

#[cfg(test)]
mod tests;
