//! Speaking LiveKit: access tokens.

pub mod token;
