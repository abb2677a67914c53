//! WebRTC's detector (libfvad through the `webrtc-vad` crate): a Gaussian mixture over six
//! sub-band energies, on its native 20 ms frames.
//!
//! It needs no model, is deterministic and costs a few microseconds per frame, but it calls
//! stationary noise (fans, hum, traffic) speech, which is why it is no longer the default.
//! Measured in a release build on one core of an Intel Xeon, fed 30 ms pieces: 71 µs of CPU per
//! second of speech, 81 µs per second of white noise at -40 dBFS, and 6 µs per second of silence
//! below the gate, where libfvad alone would take 54 µs.

use super::{FRAME_SAMPLES, GATE_POWER, VadError, mean_power};

pub(super) struct Webrtc(Detector);

impl Webrtc {
    /// `aggressiveness` is libfvad's mode: 0 reports speech most readily, 3 is the most reluctant
    /// (fewest false alarms on noise, more missed soft syllables).
    pub(super) fn new(aggressiveness: u8) -> Result<Self, VadError> {
        let mode = match aggressiveness {
            0 => webrtc_vad::VadMode::Quality,
            1 => webrtc_vad::VadMode::LowBitrate,
            2 => webrtc_vad::VadMode::Aggressive,
            3 => webrtc_vad::VadMode::VeryAggressive,
            other => return Err(VadError::Aggressiveness(other)),
        };
        let inner = webrtc_vad::Vad::new_with_rate_and_mode(webrtc_vad::SampleRate::Rate16kHz, mode);
        Ok(Self(Detector(inner)))
    }

    /// 1 for speech, 0 otherwise. Frames below [`GATE_POWER`] never reach libfvad, which is
    /// cheap enough to run on every other frame; a noise floor applies after it, in `Vad`.
    pub(super) fn frame(&mut self, samples: &[i16; FRAME_SAMPLES]) -> f32 {
        let speech = mean_power(samples) >= GATE_POWER && self.0.0.is_voice_segment(samples).unwrap_or(false);
        if speech { 1.0 } else { 0.0 }
    }
}

/// libfvad's detector. `webrtc_vad::Vad` holds its C state behind a raw pointer, which makes it
/// neither `Send` nor `Sync`, yet each call's pipeline runs in tokio tasks that may move between
/// threads.
struct Detector(webrtc_vad::Vad);

// SAFETY: the pointer refers to a heap block allocated by `fvad_new` for this instance alone:
// `webrtc_vad::Vad` is neither `Clone` nor `Copy`, never hands the pointer out, and frees it in
// `Drop`. libfvad keeps all mutable state in that block (its statics are read-only tables) and
// has no thread affinity, so moving the owner to another thread moves sole ownership with it.
// `Sync` is not implemented: every call needs `&mut`, so it is never shared between threads.
unsafe impl Send for Detector {}
