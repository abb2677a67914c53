//! Audio: Opus coding, resampling and real-time pacing of 48 kHz mono PCM.
//!
//! Every stage of the product speaks one format, i16 mono PCM, so that the only places a sample
//! rate or channel layout changes are the edges: Opus to and from the room (always 48 kHz, the
//! WebRTC clock), and [`Resampler`] in front of speech-to-text (16 kHz) or behind
//! text-to-speech (whatever rate the provider produces).
//!
//! Outgoing audio is cut into 20 ms frames by [`Framer`] because that is the Opus frame size
//! browsers and LiveKit expect, and sent on the real-time schedule of [`Pacer`]: sending faster
//! overflows receivers' jitter buffers, and sending late in bursts makes them stretch and squash
//! speech. The frame queue sits in front of the pacer, not after it, so a barge-in can drop all
//! unsent speech at once with [`Framer::clear`].
//!
//! The pieces hold no clocks, sockets or tasks, so each can be tested exactly and driven by
//! whatever task owns the room track.

mod framer;
mod opus;
mod pacer;
mod resample;

use std::time::Duration;

pub use self::framer::Framer;
pub(crate) use self::opus::{OpusDecoder, OpusEncoder};
pub use self::pacer::{Pacer, Slot};
pub use self::resample::Resampler;

/// The sample rate of all audio exchanged with rooms: Opus in WebRTC always runs a 48 kHz clock.
pub const ROOM_SAMPLE_RATE: u32 = 48_000;

/// The duration of one Opus frame sent into a room.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// The number of samples in one 20 ms frame at [`ROOM_SAMPLE_RATE`].
pub const ROOM_FRAME_SAMPLES: usize = 960;

/// A block of mono PCM together with the rate it was sampled at, so that audio crossing module
/// boundaries (to speech-to-text, from text-to-speech) never loses track of its clock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioFrame {
    /// Signed 16-bit mono samples.
    pub samples: Vec<i16>,
    /// Samples per second (Hz); 0 only in a default, empty frame.
    pub sample_rate: u32,
}

impl AudioFrame {
    /// How much time the samples cover; zero for an unset (0 Hz) rate rather than a panic.
    pub fn duration(&self) -> Duration {
        if self.sample_rate == 0 {
            return Duration::ZERO;
        }
        let nanos = self.samples.len() as u128 * 1_000_000_000 / u128::from(self.sample_rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Why an audio operation failed. Network input can produce the packet and codec variants at
/// any time; callers should drop or conceal that packet and carry on.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// libopus refused (a corrupt packet, usually).
    #[error("opus codec failure: {0}")]
    Opus(#[from] ::opus::Error),
    /// A packet whose Opus framing is invalid, caught before libopus sees it.
    #[error("malformed opus packet of {len} bytes: {reason}")]
    MalformedPacket {
        /// The packet's size in bytes.
        len: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A frame given to the encoder was not exactly 20 ms.
    #[error("the opus encoder takes frames of exactly {expected} samples (20 ms at 48 kHz), got {actual}")]
    FrameLength {
        /// Samples the encoder takes per frame.
        expected: usize,
        /// Samples it was given.
        actual: usize,
    },
    /// Loss concealment was asked for a length Opus cannot produce.
    #[error(
        "cannot reconstruct {samples} lost samples: the length must be a positive multiple of 120 (2.5 ms) \
         up to 5760 (120 ms)"
    )]
    LossDuration {
        /// The requested length, in 48 kHz samples.
        samples: usize,
    },
    /// A resampler was asked for rates it cannot convert between.
    #[error(
        "cannot resample from {from} Hz to {to} Hz: rates must be between 1 Hz and 384 kHz and reduce to a \
         ratio of small integers, as all standard audio rates do"
    )]
    UnsupportedRates {
        /// The input rate in Hz.
        from: u32,
        /// The output rate in Hz.
        to: u32,
    },
    /// rubato could not build the resampler for otherwise valid rates.
    #[error("resampler construction failed: {0}")]
    Resampler(#[from] rubato::ResamplerConstructionError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_duration_follows_rate() {
        let frame = AudioFrame { samples: vec![0; 16_000], sample_rate: 16_000 };
        assert_eq!(frame.duration(), Duration::from_secs(1));
        let frame = AudioFrame { samples: vec![0; ROOM_FRAME_SAMPLES], sample_rate: ROOM_SAMPLE_RATE };
        assert_eq!(frame.duration(), FRAME_DURATION);
        let frame = AudioFrame { samples: vec![0; 441], sample_rate: 22_050 };
        assert_eq!(frame.duration(), Duration::from_millis(20));
    }

    #[test]
    fn zero_rate_has_zero_duration() {
        let frame = AudioFrame { samples: vec![0; 10], sample_rate: 0 };
        assert_eq!(frame.duration(), Duration::ZERO);
    }

    #[test]
    fn errors_explain_themselves() {
        let err = AudioError::FrameLength { expected: ROOM_FRAME_SAMPLES, actual: 12 };
        assert_eq!(err.to_string(), "the opus encoder takes frames of exactly 960 samples (20 ms at 48 kHz), got 12");
        let err = AudioError::UnsupportedRates { from: 0, to: 48_000 };
        assert!(err.to_string().starts_with("cannot resample from 0 Hz to 48000 Hz"));
    }
}
