//! WebRTC PeerConnections on str0m: a sans-IO core ([`core`]) and the task that drives it
//! ([`driver`]). The same pair serves our participant (full ICE) and the dev server (ICE-lite).

pub mod candidate;
pub mod core;
pub mod driver;
pub mod sdp;

pub use candidate::{CandidateInit, host_ips};
pub use core::{ChannelSpec, MediaPacket, OfferRequest, PeerConfig, PeerCore, PeerError, PeerEvent};
pub use driver::{AudioSource, DriverEvent, MediaSink, PeerCommand, PeerHandle, spawn};

#[cfg(test)]
mod tests;
