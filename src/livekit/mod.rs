//! Speaking LiveKit: access tokens.

pub mod data;
pub mod peer;
pub mod room;
pub mod signal;
pub mod token;
