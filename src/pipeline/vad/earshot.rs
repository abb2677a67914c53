//! The `earshot` crate's detector: a small recurrent network on 40 mel energies of 16 ms blocks
//! (256 samples), pure Rust, about a fifth of Silero's CPU.

use super::{Blocks, FRAME_SAMPLES, IDLE, mean_power};

pub(super) struct Earshot {
    detector: Box<::earshot::Detector>,
    blocks: Blocks<256>,
    latest: f32,
}

impl Default for Earshot {
    fn default() -> Self {
        Self { detector: ::earshot::Detector::default_boxed(), blocks: Blocks::default(), latest: 0.0 }
    }
}

impl Earshot {
    /// The speech probability of the latest complete block. A block below `gate` (mean power)
    /// once the probability has fallen under [`IDLE`] scores 0 without running the network.
    pub(super) fn frame(&mut self, samples: &[i16; FRAME_SAMPLES], gate: f32) -> f32 {
        let Self { detector, blocks, latest } = self;
        blocks.feed(samples, |block| {
            *latest = if *latest < IDLE && mean_power(block) < gate { 0.0 } else { detector.predict_i16(block) };
        });
        self.latest
    }
}
