//! Speaking LiveKit: access tokens.

pub mod data;
pub mod loopback;
pub mod peer;
pub mod room;
pub mod signal;
pub mod token;
