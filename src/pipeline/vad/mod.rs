//! Voice activity detection on 16 kHz mono PCM, one decision per 20 ms frame.
//!
//! [`Vad`] is the one type the pipeline uses, whichever detector a profile picks ([`VadKind`]):
//!
//! - `silero` (the default): Silero VAD v6, a small convolutional and recurrent network (MIT,
//!   weights embedded), computed by hand in the `silero-vad` crate. On the noisy-room suite it
//!   found every turn end, in normal and soft (-41 dBFS) speech, down to 0 dB SNR under white and
//!   brown noise and hum, 5 dB under pink and street noise, 10 dB under music; 0.2% of a core.
//! - `earshot`: the `earshot` crate's tiny recurrent network on mel energies; a fifth of Silero's
//!   CPU, but it takes tones and hiss for speech (18% of noise-only frames over the suite) and
//!   failed under music at every SNR.
//! - `webrtc`: WebRTC's Gaussian mixture over six sub-band energies (libfvad). The cheapest, but
//!   it calls steady noise speech, so in a noisy room turns never end, and it misses soft speech.
//!
//! Each detector has its own native block (webrtc 320 samples, earshot 256, Silero 512 plus 64 of
//! context): [`Vad`] buffers for it and gives every 20 ms frame the latest decision, so a frame's
//! decision may reflect audio up to one block old. The neural detectors give a probability;
//! a frame is speech from `threshold` up, and stays speech until the probability falls below
//! `threshold - `[`HYSTERESIS`] (Silero's own recommendation), so one uncertain block in the
//! middle of a word does not flicker.
//!
//! Two energy thresholds, the gate, sit in front of every detector. Below [`GATE_RMS`] (-70 dBFS,
//! a muted or noise-suppressed microphone) a frame is silence. With a noise margin configured, a
//! frame must also be that many dB above the background measured by `floor::NoiseFloor`, or
//! follow one that was by less than 200 ms (the weak consonants and short gaps inside words), so
//! a room whose noise the detector mistakes for speech reads as silence between the caller's
//! words. A block below the gate, once a neural detector's probability has decayed, is not run
//! through the network at all: that keeps its CPU to the moments someone may be speaking.
//!
//! Audio arrives in whatever pieces the resampler produces; [`Vad::push`] keeps the remainder and
//! every detector buffers by sample count, so the frames and decisions are the same however the
//! input was split. Each decision comes with its frame's audio because the pipeline forwards
//! exactly those frames to speech-to-text.
//!
//! `benches/vad_noise.rs` compares the detectors on the noisy-room suite; the README has its table.

mod earshot;
mod floor;
mod silero;
mod webrtc;

/// Loads the neural detector's shared model now (see `silero_vad::preload`): called when a
/// worker's agent is set up, so calls never wait for it and the worker's idle memory shows it.
pub(crate) fn preload() {
    silero_vad::preload();
}

use std::fmt;
use std::time::Duration;

use self::floor::NoiseFloor;

/// The sample rate the detector takes; the pipeline resamples room audio (48 kHz) to it.
pub const SAMPLE_RATE: u32 = 16_000;

/// The number of samples in one frame at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 320;

/// The duration of one frame: 20 ms, long enough for stable decisions and short enough that
/// barge-in reacts within a frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// The RMS (in i16 units) below which a frame is silence without consulting a detector: 10 of
/// 32768 is -70 dBFS, the level of a muted or noise-suppressed microphone, far below any speech a
/// microphone picks up (quiet speech is around -40 dBFS).
pub const GATE_RMS: u32 = 10;

/// How far a neural detector's probability must fall below the threshold to end speech.
pub const HYSTERESIS: f32 = 0.15;

/// The probability under which a neural detector counts as idle: from then on, blocks below the
/// gate are not run through it. It is under every release threshold (the lowest threshold less
/// [`HYSTERESIS`]), so skipping never ends speech early.
const IDLE: f32 = 0.05;

/// The speech probability thresholds a profile may set: beyond them a detector either hears
/// speech in everything or in nothing.
pub const THRESHOLD_RANGE: std::ops::RangeInclusive<f32> = 0.2..=0.95;

/// The noise margins a profile may set, in dB; 0 turns the noise floor off.
pub const NOISE_MARGIN_RANGE: std::ops::RangeInclusive<f32> = 0.0..=20.0;

/// Which detector decides; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadKind {
    /// Silero VAD v6 (the default): finds turn ends in the noisiest rooms.
    Silero,
    /// earshot's tiny network: less CPU, but takes tones and hiss for speech.
    Earshot,
    /// libfvad (WebRTC's GMM): the cheapest; calls steady noise speech.
    Webrtc,
}

impl VadKind {
    /// Every detector, in the order names are listed.
    pub const ALL: [VadKind; 3] = [VadKind::Silero, VadKind::Earshot, VadKind::Webrtc];

    /// The name profiles use.
    pub fn name(self) -> &'static str {
        match self {
            VadKind::Silero => "silero",
            VadKind::Earshot => "earshot",
            VadKind::Webrtc => "webrtc",
        }
    }

    /// The speech probability threshold used when none is configured: the noisy-room suite's
    /// choice for Silero (its own default, 0.5, split one turn in eight in soft speech under pink
    /// noise at 5 dB), and earshot's documented 0.5 (at 0.4 it took 39% of noise for speech).
    pub fn default_threshold(self) -> f32 {
        match self {
            VadKind::Silero => 0.4,
            VadKind::Earshot | VadKind::Webrtc => 0.5,
        }
    }

    /// The detector a profile names, if the name is one of [`names`](Self::names).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Every accepted name, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for VadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a [`Vad`] decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Which detector to run.
    pub kind: VadKind,
    /// Speech probability from which a frame is speech (silero, earshot); see [`HYSTERESIS`].
    /// `None`: [`VadKind::default_threshold`].
    pub threshold: Option<f32>,
    /// libfvad's mode (webrtc): 0 reports speech most readily, 3 is the most reluctant.
    pub aggressiveness: u8,
    /// dB above the measured background noise a frame must be to count as speech; 0 is off.
    pub noise_margin_db: f32,
}

impl Default for VadConfig {
    /// What the noisy-room suite chose: Silero at its default threshold, no noise floor (the
    /// floor saves a third of Silero's CPU, but loses soft syllables and splits turns at 0 dB).
    fn default() -> Self {
        Self { kind: VadKind::Silero, threshold: None, aggressiveness: 3, noise_margin_db: 0.0 }
    }
}

/// Why a detector could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VadError {
    /// libfvad's mode must be 0 to 3.
    #[error("VAD aggressiveness must be 0 (least) to 3 (most aggressive), got {0}")]
    Aggressiveness(u8),
    /// The threshold is outside [`THRESHOLD_RANGE`].
    #[error("VAD threshold must be a probability from {low} to {high}, got {0}", low = THRESHOLD_RANGE.start(), high = THRESHOLD_RANGE.end())]
    Threshold(f32),
    /// The noise margin is outside [`NOISE_MARGIN_RANGE`].
    #[error("VAD noise margin must be {low} to {high} dB, got {0}", low = NOISE_MARGIN_RANGE.start(), high = NOISE_MARGIN_RANGE.end())]
    NoiseMargin(f32),
}

/// One 20 ms frame of 16 kHz audio and whether it holds speech.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VadFrame {
    /// The detector's verdict after hysteresis and the noise gate.
    pub speech: bool,
    /// The frame's samples, as pushed.
    pub samples: [i16; FRAME_SAMPLES],
}

/// A streaming voice activity detector for 16 kHz mono PCM.
pub struct Vad {
    config: VadConfig,
    /// The threshold in effect, configured or the detector's default.
    threshold: f32,
    engine: Engine,
    floor: Option<NoiseFloor>,
    /// The hysteresis state: whether the last frame's probability read as speech.
    speaking: bool,
    /// Frames since the last one at or above the gate, up to [`GATE_HOLD_FRAMES`].
    since_loud: usize,
    /// Samples of the next, incomplete frame; always fewer than [`FRAME_SAMPLES`].
    pending: Vec<i16>,
}

enum Engine {
    Silero(Box<silero::Silero>),
    Earshot(Box<earshot::Earshot>),
    Webrtc(webrtc::Webrtc),
}

impl Vad {
    /// A detector as configured; fails for settings out of range.
    pub fn new(config: VadConfig) -> Result<Self, VadError> {
        let threshold = config.threshold.unwrap_or(config.kind.default_threshold());
        if !THRESHOLD_RANGE.contains(&threshold) {
            return Err(VadError::Threshold(threshold));
        }
        if !NOISE_MARGIN_RANGE.contains(&config.noise_margin_db) {
            return Err(VadError::NoiseMargin(config.noise_margin_db));
        }
        let engine = match config.kind {
            VadKind::Silero => Engine::Silero(Box::default()),
            VadKind::Earshot => Engine::Earshot(Box::default()),
            VadKind::Webrtc => Engine::Webrtc(webrtc::Webrtc::new(config.aggressiveness)?),
        };
        let floor = (config.noise_margin_db > 0.0).then(NoiseFloor::default);
        Ok(Self {
            config,
            threshold,
            engine,
            floor,
            speaking: false,
            since_loud: GATE_HOLD_FRAMES,
            pending: Vec::with_capacity(FRAME_SAMPLES),
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// Accepts any number of samples and returns every frame they complete, oldest first.
    pub fn push(&mut self, samples: &[i16]) -> Vec<VadFrame> {
        let mut frames = Vec::with_capacity((self.pending.len() + samples.len()) / FRAME_SAMPLES);
        let mut rest = samples;
        if !self.pending.is_empty() {
            let take = (FRAME_SAMPLES - self.pending.len()).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.pending.extend_from_slice(head);
            rest = tail;
            if self.pending.len() < FRAME_SAMPLES {
                return frames;
            }
            let mut frame = [0; FRAME_SAMPLES];
            frame.copy_from_slice(&self.pending);
            self.pending.clear();
            frames.push(self.classify(frame));
        }
        let mut chunks = rest.chunks_exact(FRAME_SAMPLES);
        for chunk in &mut chunks {
            let mut frame = [0; FRAME_SAMPLES];
            frame.copy_from_slice(chunk);
            frames.push(self.classify(frame));
        }
        self.pending.extend_from_slice(chunks.remainder());
        frames
    }

    fn classify(&mut self, samples: [i16; FRAME_SAMPLES]) -> VadFrame {
        let power = mean_power(&samples);
        let gate = match &mut self.floor {
            Some(floor) => {
                let gate = floor.threshold(self.config.noise_margin_db).max(GATE_POWER);
                floor.observe(power);
                gate
            }
            None => GATE_POWER,
        };
        let probability = match &mut self.engine {
            Engine::Silero(detector) => detector.frame(&samples, gate),
            Engine::Earshot(detector) => detector.frame(&samples, gate),
            Engine::Webrtc(detector) => detector.frame(&samples),
        };
        let threshold = if self.speaking { self.threshold - HYSTERESIS } else { self.threshold };
        self.speaking = probability >= threshold;
        self.since_loud = if power >= gate { 0 } else { (self.since_loud + 1).min(GATE_HOLD_FRAMES) };
        VadFrame { speech: self.speaking && self.since_loud < GATE_HOLD_FRAMES, samples }
    }
}

impl fmt::Debug for Vad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vad")
            .field("config", &self.config)
            .field("pending_samples", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Frames a frame under the gate still counts as speech after one above it (200 ms): the weak
/// consonants and short gaps inside words are under a noise floor that the vowels clear.
const GATE_HOLD_FRAMES: usize = 10;

/// The mean power (squared i16 units) of [`GATE_RMS`].
const GATE_POWER: f32 = (GATE_RMS * GATE_RMS) as f32;

/// The mean of the squared samples, in i16 units: what the gates compare.
fn mean_power(samples: &[i16]) -> f32 {
    let energy: i64 = samples.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    (energy as f64 / samples.len().max(1) as f64) as f32
}

/// Cuts 20 ms frames into a detector's native blocks of `N` samples, keeping the remainder.
struct Blocks<const N: usize> {
    block: [i16; N],
    filled: usize,
}

impl<const N: usize> Default for Blocks<N> {
    fn default() -> Self {
        Self { block: [0; N], filled: 0 }
    }
}

impl<const N: usize> Blocks<N> {
    /// Calls `complete` with every block `samples` complete, oldest first.
    fn feed(&mut self, mut samples: &[i16], mut complete: impl FnMut(&[i16; N])) {
        while !samples.is_empty() {
            let take = (N - self.filled).min(samples.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&samples[..take]);
            self.filled += take;
            samples = &samples[take..];
            if self.filled == N {
                complete(&self.block);
                self.filled = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests;
