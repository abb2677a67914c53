//! Text-to-speech.

pub mod catalog;
