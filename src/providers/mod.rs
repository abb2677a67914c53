//! Speech and language model providers, one module per kind.

pub mod tts;
