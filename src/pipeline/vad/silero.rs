//! Silero VAD v6 (16 kHz), through the `silero-vad` crate of this repository
//! (`crates/silero-vad`), which computes the network by hand with its weights embedded.
//!
//! The network reads 512-sample blocks (32 ms), each preceded by the last 64 samples of the one
//! before, and carries an LSTM state from block to block. The weights are shared by every call in
//! the process; each call holds only its state and scratch space (a few KiB).
//!
//! A block below the gate is not run once the probability has fallen under [`IDLE`]: it scores 0
//! and the LSTM state stays as the last quiet block left it, which is the state of a stream in
//! silence. Until then the network runs on, so the quiet between words (and the quiet parts of
//! soft speech) never interrupt its state in the middle of an utterance.
//!
//! `scripts/silero-vad/convert.py` made the weight file from the official ONNX export and
//! recorded that model's probabilities on `tests/fixtures/speech.wav`; the tests hold this
//! implementation to them.

use silero_vad::{BLOCK, CONTEXT, INPUT};

use super::{Blocks, FRAME_SAMPLES, IDLE, mean_power};

pub(super) struct Silero {
    state: silero_vad::State,
    blocks: Blocks<BLOCK>,
    /// The last [`CONTEXT`] samples before the current block, scaled to [-1, 1].
    context: [f32; CONTEXT],
    latest: f32,
}

impl Default for Silero {
    fn default() -> Self {
        Self { state: silero_vad::State::default(), blocks: Blocks::default(), context: [0.0; CONTEXT], latest: 0.0 }
    }
}

impl Silero {
    /// The speech probability of the latest complete block; see the module docs for `gate`.
    pub(super) fn frame(&mut self, samples: &[i16; FRAME_SAMPLES], gate: f32) -> f32 {
        let Self { state, blocks, context, latest } = self;
        blocks.feed(samples, |block| {
            let mut input = [0.0; INPUT];
            input[..CONTEXT].copy_from_slice(context);
            for (scaled, &sample) in input[CONTEXT..].iter_mut().zip(block) {
                *scaled = f32::from(sample) / 32768.0;
            }
            *latest = if *latest < IDLE && mean_power(block) < gate { 0.0 } else { state.step(&input) };
            context.copy_from_slice(&input[BLOCK..]);
        });
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference model's probability for each 512-sample block of the speech fixture.
    fn reference() -> Vec<f32> {
        include_str!("../../../tests/fixtures/silero-vad-speech.txt")
            .lines()
            .map(|line| line.parse().expect("one probability per line"))
            .collect()
    }

    fn fixture() -> Vec<i16> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/speech.wav");
        let mut reader = hound::WavReader::open(path).expect("the speech fixture exists");
        reader.samples::<i16>().map(|s| s.expect("valid sample")).collect()
    }

    /// Every block's probability, fed frame by frame as `Vad` does.
    fn probabilities(audio: &[i16], gate: f32) -> Vec<f32> {
        let mut silero = Silero::default();
        let mut out = Vec::new();
        for (index, frame) in audio.chunks_exact(FRAME_SAMPLES).enumerate() {
            let probability = silero.frame(frame.try_into().expect("a whole frame"), gate);
            if (index + 1) * FRAME_SAMPLES / BLOCK > index * FRAME_SAMPLES / BLOCK {
                out.push(probability);
            }
        }
        out
    }

    #[test]
    fn matches_the_reference_model_on_the_speech_fixture() {
        let expected = reference();
        // Padded so the last block is complete in whole frames.
        let mut audio = fixture();
        audio.extend([0; FRAME_SAMPLES]);
        let mut actual = probabilities(&audio, 0.0);
        actual.truncate(expected.len());
        assert_eq!(actual.len(), expected.len());
        let worst = actual.iter().zip(&expected).map(|(a, e)| (a - e).abs()).fold(0.0, f32::max);
        // The FFT replaces the model's STFT convolution and sums run in another order, so the
        // last digits differ (measured: 9.3e-6); a wrong layer would differ by far more.
        assert!(worst < 1e-4, "max abs difference from the reference: {worst}");
        assert!(expected.iter().any(|&p| p < 0.05) && expected.iter().any(|&p| p > 0.99), "the fixture spans both");
    }

    #[test]
    fn the_gate_skips_silence_but_not_the_quiet_right_after_speech() {
        let audio = fixture();
        let blocks = audio.len() / 2_560 * 5;
        let speech = &audio[..blocks * BLOCK];
        let mut padded = vec![0; BLOCK * 10];
        padded.extend_from_slice(speech);
        padded.extend(std::iter::repeat_n(0, BLOCK * 10));
        let gate = 1.0;
        let gated = probabilities(&padded, gate);
        // Leading silence is skipped and leaves the network as a new stream: the speech then
        // scores exactly as it does without the silence.
        assert!(gated[..10].iter().all(|&p| p == 0.0));
        assert_eq!(gated[10..10 + blocks], probabilities(speech, gate)[..]);
        // The network keeps running on quiet blocks until its probability has fallen.
        let quiet_but_run =
            (0..blocks).filter(|&b| mean_power(&speech[b * BLOCK..(b + 1) * BLOCK]) < gate && gated[10 + b] > 0.0);
        assert!(quiet_but_run.count() >= 1);
        let trailing = &gated[10 + blocks..];
        let stopped = trailing.iter().position(|&p| p == 0.0).expect("the network stops in silence");
        assert!(trailing[stopped..].iter().all(|&p| p == 0.0), "{trailing:?}");
        assert!(trailing[..stopped].iter().all(|&p| p >= IDLE), "{trailing:?}");
    }
}
