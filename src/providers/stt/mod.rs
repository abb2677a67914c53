//! Speech-to-text: the traits the conversation uses, whoever transcribes.
//!
//! The pipeline opens an utterance when the caller starts speaking, pushes audio while they
//! speak, and finishes it at the end of their turn; the transcript's latency is what the caller
//! waits for. Streaming providers (Sarvam's and Deepgram's WebSockets) upload audio while the
//! caller speaks, so at the end of the turn only a flush and the transcript cross the network;
//! REST providers upload the whole utterance after the turn ends.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::ProviderError;

pub(crate) mod whole_file;

/// The rate of the audio utterances take: what every provider we use takes natively.
pub const SAMPLE_RATE: u32 = 16_000;

/// Providers transcribe at most about 30 s per request (Sarvam's REST limit); a turn that long
/// is rare, and its end matters most for the reply, so only the last 30 s are kept.
const MAX_SAMPLES: usize = 30 * SAMPLE_RATE as usize;

/// What the caller said in one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The words; empty when the provider heard none.
    pub text: String,
    /// The language the provider heard, when it says.
    pub language: Option<String>,
    /// From the [`Utterance::finish`] call to the transcript: what the caller waited for.
    pub latency: Duration,
}

/// One utterance of the caller, 16 kHz mono i16 PCM.
pub trait Utterance: Send {
    /// More of the utterance's audio; streaming providers send it on, others buffer it.
    fn push(&mut self, audio: &[i16]) -> BoxFuture<'_, Result<(), ProviderError>>;
    /// Words recognised so far, when the provider tells them while the caller speaks and they
    /// changed since the last call; `None` otherwise. Interruptions are confirmed by them.
    fn partial(&mut self) -> Option<String> {
        None
    }
    /// The provider's own sense that the caller has stopped speaking since the last call
    /// (Deepgram's endpointing and utterance-end events); `None` from providers without one.
    /// The words up to it are in [`Self::partial`].
    fn endpoint(&mut self) -> Option<Endpoint> {
        None
    }
    /// The utterance ended (end of turn): its transcript.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Transcript, ProviderError>>;
}

/// How a provider heard the caller stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A pause as long as the provider's endpointing setting (Deepgram's `speech_final`).
    Pause,
    /// No new word for the provider's utterance-end window (Deepgram's `UtteranceEnd`).
    UtteranceEnd,
}

/// A speech-to-text provider (or a fallback chain of them), shared by a call's utterances.
pub trait SpeechToText: Send + Sync {
    /// Starts an utterance in `language` (e.g. "hi-IN", or "unknown" to have it detected).
    fn start(&self, language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>>;
}

/// The last [`MAX_SAMPLES`] of an utterance, trimmed in batches so pushing stays cheap.
#[derive(Default)]
pub(crate) struct Tail {
    samples: Vec<i16>,
    /// Samples trimmed from the front so far, so positions stay comparable across trims.
    trimmed: usize,
}

impl Tail {
    pub(crate) fn push(&mut self, audio: &[i16]) {
        self.samples.extend_from_slice(audio);
        if self.samples.len() > 2 * MAX_SAMPLES {
            let cut = self.samples.len() - MAX_SAMPLES;
            self.samples.drain(..cut);
            self.trimmed += cut;
        }
    }

    /// Position just past the last sample, counted from the utterance's start.
    pub(crate) fn end(&self) -> usize {
        self.trimmed + self.samples.len()
    }

    /// Position of the first sample worth sending (the last 30 s).
    pub(crate) fn start(&self) -> usize {
        self.end().saturating_sub(MAX_SAMPLES).max(self.trimmed)
    }

    /// Samples from position `from` (clamped to what is kept) to the end.
    pub(crate) fn since(&self, from: usize) -> &[i16] {
        let from = from.max(self.start()) - self.trimmed;
        &self.samples[from.min(self.samples.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_thirty_seconds() {
        let mut tail = Tail::default();
        let second: Vec<i16> = vec![1; SAMPLE_RATE as usize];
        for _ in 0..75 {
            tail.push(&second);
        }
        tail.push(&[9]);
        assert_eq!(tail.end(), 75 * SAMPLE_RATE as usize + 1);
        assert_eq!(tail.since(0).len(), MAX_SAMPLES);
        assert_eq!(tail.since(0).last(), Some(&9));
        assert_eq!(tail.since(tail.end() - 1), &[9]);
        assert!(tail.since(tail.end()).is_empty());
        assert!(tail.samples.len() <= 2 * MAX_SAMPLES);
    }
}
