//! Speaking LiveKit: access tokens.

pub mod data;
pub mod peer;
pub mod signal;
pub mod token;
