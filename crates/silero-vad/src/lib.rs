//! Silero VAD v6's 16 kHz network, its forward pass written out by hand, layer by layer as in the
//! model's reference code (`tinygrad_model.py` in the `silero-vad` Python package):
//!
//! ```text
//! 576 samples (64 of context + 512) ─ reflect-pad 64 on the right ─ STFT: 4 windows of 256, hop 128
//!   ─ magnitudes of 129 bins ─ conv 129→128 (k3) ─ conv 128→64 (k3, stride 2) ─ conv 64→64 (k3, stride 2)
//!   ─ conv 64→128 (k3), each with ReLU ─ LSTM cell 128 ─ ReLU ─ 1×1 conv 128→1 ─ sigmoid
//! ```
//!
//! The model's STFT is a convolution with 258 fixed kernels, a periodic Hann window times the
//! DFT's cosines and sines (`scripts/silero-vad/convert.py` checks this to 1e-7); an FFT gives
//! the same magnitudes with a twentieth of the multiplications. The rest are dense dot products
//! over 16 accumulators, which the compiler turns into SIMD.
//!
//! The weights (about 1 MB, the Silero team's, MIT: `model/LICENSE`) are embedded and parsed once
//! per process, so every stream shares one copy; a [`State`] holds only one stream's LSTM state
//! and scratch space. `scripts/silero-vad/convert.py` in the repository made the weight file from
//! the official ONNX export of `silero-vad` 6.2.3 and recorded that model's probabilities on a
//! speech fixture; the `voice-agent` crate's tests hold this implementation to them.
//!
//! This is a crate of its own so that it can be optimised in debug builds too (see the workspace's
//! `Cargo.toml`): unoptimised, one block costs milliseconds instead of tens of microseconds.

use std::sync::{Arc, LazyLock};

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// The weights, in the order and shapes `convert.py` wrote them; little-endian f32.
const BYTES: &[u8] = include_bytes!("../model/silero_vad_16k.bin");

const WINDOW: usize = 256;
const HOP: usize = 128;
const BINS: usize = WINDOW / 2 + 1;
/// STFT windows per block: (576 + 64 - 256) / 128 + 1.
const WINDOWS: usize = 4;
/// Samples per block the network reads: 32 ms.
pub const BLOCK: usize = 512;
/// Samples of the previous block prepended to each block.
pub const CONTEXT: usize = 64;
/// Samples [`State::step`] takes.
pub const INPUT: usize = CONTEXT + BLOCK;
const PAD: usize = 64;
const HIDDEN: usize = 128;

/// (outputs, inputs, stride) of the four convolutions, all with kernel 3 and padding 1.
const CONVS: [(usize, usize, usize); 4] = [(128, BINS, 1), (64, 128, 2), (64, 64, 2), (HIDDEN, 64, 1)];

const FLOATS: usize = {
    let mut total = 0;
    let mut layer = 0;
    while layer < CONVS.len() {
        let (outputs, inputs, _) = CONVS[layer];
        total += outputs * inputs * 3 + outputs;
        layer += 1;
    }
    total + 2 * (4 * HIDDEN * HIDDEN) + 2 * (4 * HIDDEN) + HIDDEN + 1
};

const _: () = assert!(BYTES.len() == FLOATS * 4, "the weight file does not match the layer shapes");

static WEIGHTS: LazyLock<Weights> = LazyLock::new(Weights::parse);

static FFT: LazyLock<Arc<dyn Fft<f32>>> = LazyLock::new(|| FftPlanner::new().plan_fft_forward(WINDOW));

/// The periodic Hann window of the model's STFT kernels.
static HANN: LazyLock<[f32; WINDOW]> = LazyLock::new(|| {
    std::array::from_fn(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / WINDOW as f64).cos()) as f32)
});

struct Conv {
    outputs: usize,
    inputs: usize,
    stride: usize,
    /// `[outputs][inputs][3]`: each row is one output's dot product over an im2col column.
    weight: Box<[f32]>,
    bias: Box<[f32]>,
}

struct Weights {
    convs: [Conv; 4],
    /// `[4 * HIDDEN][2 * HIDDEN]`: PyTorch's input and hidden weights side by side, gates in the
    /// order input, forget, cell, output, so one dot product over `[x, h]` gives each gate.
    lstm: Box<[f32]>,
    /// The input and hidden biases, summed.
    lstm_bias: Box<[f32]>,
    out: Box<[f32]>,
    out_bias: f32,
}

impl Weights {
    fn parse() -> Self {
        let mut floats =
            BYTES.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("chunks_exact yields 4 bytes")));
        let mut take = |count: usize| -> Box<[f32]> { floats.by_ref().take(count).collect() };
        let convs = CONVS.map(|(outputs, inputs, stride)| {
            let weight = take(outputs * inputs * 3);
            let bias = take(outputs);
            Conv { outputs, inputs, stride, weight, bias }
        });
        let (input_weight, hidden_weight) = (take(4 * HIDDEN * HIDDEN), take(4 * HIDDEN * HIDDEN));
        let (input_bias, hidden_bias) = (take(4 * HIDDEN), take(4 * HIDDEN));
        let lstm = input_weight
            .chunks_exact(HIDDEN)
            .zip(hidden_weight.chunks_exact(HIDDEN))
            .flat_map(|(x, h)| x.iter().chain(h).copied())
            .collect();
        let lstm_bias = input_bias.iter().zip(&hidden_bias).map(|(x, h)| x + h).collect();
        let out = take(HIDDEN);
        let out_bias = take(1)[0];
        Self { convs, lstm, lstm_bias, out, out_bias }
    }
}

/// One stream's LSTM state and scratch space.
pub struct State {
    hidden: [f32; HIDDEN],
    cell: [f32; HIDDEN],
    fft: Box<[Complex<f32>]>,
    fft_scratch: Box<[Complex<f32>]>,
    /// Activations, `[channels][time]`, swapped between layers.
    a: Vec<f32>,
    b: Vec<f32>,
    column: Vec<f32>,
}

impl Default for State {
    fn default() -> Self {
        let scratch = FFT.get_inplace_scratch_len();
        Self {
            hidden: [0.0; HIDDEN],
            cell: [0.0; HIDDEN],
            fft: vec![Complex::default(); WINDOW].into(),
            fft_scratch: vec![Complex::default(); scratch].into(),
            a: Vec::with_capacity(BINS * WINDOWS),
            b: Vec::with_capacity(BINS * WINDOWS),
            column: Vec::with_capacity(BINS * 3 * WINDOWS),
        }
    }
}

/// Makes the shared weights, FFT plan and window ready now rather than in the first call's first
/// block: a process calls this once at start, so its memory is the process's from the outset
/// (about 2 MiB) and no call waits for the parsing.
pub fn preload() {
    LazyLock::force(&WEIGHTS);
    LazyLock::force(&FFT);
    LazyLock::force(&HANN);
}

impl State {
    /// The speech probability of one block: [`CONTEXT`] samples of the previous block, then
    /// [`BLOCK`] new ones, in [-1, 1]. The first block of a stream has zeros as context.
    pub fn step(&mut self, input: &[f32; INPUT]) -> f32 {
        let weights = &*WEIGHTS;
        self.spectrum(input);
        let mut time = WINDOWS;
        for conv in &weights.convs {
            time = conv.forward(&self.a, time, &mut self.column, &mut self.b);
            std::mem::swap(&mut self.a, &mut self.b);
        }
        debug_assert_eq!((self.a.len(), time), (HIDDEN, 1));

        let mut joined = [0.0; 2 * HIDDEN];
        joined[..HIDDEN].copy_from_slice(&self.a);
        joined[HIDDEN..].copy_from_slice(&self.hidden);
        let gate =
            |index: usize| weights.lstm_bias[index] + dot(&weights.lstm[index * 2 * HIDDEN..][..2 * HIDDEN], &joined);
        for unit in 0..HIDDEN {
            let input_gate = sigmoid(gate(unit));
            let forget_gate = sigmoid(gate(HIDDEN + unit));
            let candidate = gate(2 * HIDDEN + unit).tanh();
            let output_gate = sigmoid(gate(3 * HIDDEN + unit));
            self.cell[unit] = forget_gate * self.cell[unit] + input_gate * candidate;
            self.hidden[unit] = output_gate * self.cell[unit].tanh();
        }
        let rectified = self.hidden.map(|h| h.max(0.0));
        sigmoid(weights.out_bias + dot(&weights.out, &rectified))
    }

    /// Fills `a` with the magnitudes, `[BINS][WINDOWS]`.
    fn spectrum(&mut self, input: &[f32; INPUT]) {
        let mut padded = [0.0; INPUT + PAD];
        padded[..INPUT].copy_from_slice(input);
        for (offset, sample) in padded[INPUT..].iter_mut().enumerate() {
            *sample = input[INPUT - 2 - offset];
        }
        self.a.clear();
        self.a.resize(BINS * WINDOWS, 0.0);
        for window in 0..WINDOWS {
            let samples = &padded[window * HOP..][..WINDOW];
            for ((slot, &sample), &weight) in self.fft.iter_mut().zip(samples).zip(HANN.iter()) {
                *slot = Complex::new(sample * weight, 0.0);
            }
            FFT.process_with_scratch(&mut self.fft, &mut self.fft_scratch);
            for (bin, value) in self.fft[..BINS].iter().enumerate() {
                self.a[bin * WINDOWS + window] = value.norm();
            }
        }
    }
}

impl Conv {
    /// Convolves `input` (`[inputs][time]`) into `output` (`[outputs][time out]`) with ReLU, and
    /// returns the output's length in time.
    fn forward(&self, input: &[f32], time: usize, column: &mut Vec<f32>, output: &mut Vec<f32>) -> usize {
        let time_out = (time - 1) / self.stride + 1;
        let width = self.inputs * 3;
        column.clear();
        for t in 0..time_out {
            for channel in 0..self.inputs {
                for tap in 0..3 {
                    let at = (t * self.stride + tap).checked_sub(1).filter(|&at| at < time);
                    column.push(at.map_or(0.0, |at| input[channel * time + at]));
                }
            }
        }
        output.clear();
        output.resize(self.outputs * time_out, 0.0);
        for (unit, row) in self.weight.chunks_exact(width).enumerate() {
            for (t, column) in column.chunks_exact(width).enumerate() {
                output[unit * time_out + t] = (self.bias[unit] + dot(row, column)).max(0.0);
            }
        }
        time_out
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A dot product over 16 independent accumulators, so the loop vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let (a_blocks, a_rest) = a.as_chunks::<LANES>();
    let (b_blocks, b_rest) = b.as_chunks::<LANES>();
    let mut sums = [0.0f32; LANES];
    for (x, y) in a_blocks.iter().zip(b_blocks) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    sums.iter().sum::<f32>() + rest
}
