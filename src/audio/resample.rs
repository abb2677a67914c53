//! Streaming sample-rate conversion of i16 mono PCM between fixed rates.
//!
//! Audio arrives in whatever pieces the network or a provider hands over, so the converter takes
//! any input length and keeps the remainder; output is identical however the input was split.
//!
//! It uses rubato's FFT resampler ([`FftFixedIn`]) in blocks of about 10 ms. On speech-like input
//! it cost 0.2 to 0.33 ms of CPU per second of audio for 48k→16k, 24k→48k, 22.05k→48k, 16k→48k
//! and 44.1k→48k, passing the band flat to 85% of the lower Nyquist frequency and keeping aliases
//! and images more than 90 dB down. rubato's windowed-sinc resamplers needed 256 taps to match
//! that flatness and then cost 3 to 11 times as much; shorter sinc filters were still slower and
//! lost 3 to 20 dB at the top of the band. Ten-millisecond blocks keep the added latency to about
//! 15 ms (the block plus half the filter); longer blocks cost no less CPU and only add delay.
//!
//! The filter is linear-phase, so it delays the signal by exactly half an output block when the
//! block holds an even number of the rates' smallest exact block. Block sizes are rounded up to
//! make that so, and that many initial output samples are dropped: output sample `n` then
//! corresponds to input time `n / to_rate`, which keeps converted speech aligned with timestamps
//! taken on the input side.

use rubato::{FftFixedIn, Resampler as _};

use super::AudioError;

/// The preferred block duration in milliseconds; see the module documentation.
const BLOCK_MILLIS: u64 = 10;

/// Rates whose ratio does not reduce below this (e.g. 44_101 Hz to 48_000 Hz) would need
/// absurdly long FFT blocks; no real audio source produces them.
const MAX_RATIO_TERM: u64 = 1_000;

/// The highest rate accepted, the top of professional audio; higher rates would only be typos
/// that make the block allocation enormous.
const MAX_RATE: u64 = 384_000;

/// Converts a stream of mono PCM from one sample rate to another; same-rate conversion is a copy.
pub struct Resampler {
    engine: Option<Engine>,
}

impl Resampler {
    /// A resampler from `from_rate` to `to_rate` Hz; fails for rates that do not reduce to a
    /// ratio of small integers.
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Self, AudioError> {
        if from_rate == to_rate && from_rate != 0 {
            return Ok(Self { engine: None });
        }
        Ok(Self { engine: Some(Engine::new(from_rate, to_rate)?) })
    }

    /// Accepts any amount of input and returns all output that can be computed so far.
    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        match &mut self.engine {
            Some(engine) => engine.process(input),
            None => input.to_vec(),
        }
    }

    /// Ends the stream: returns the remaining output, so that everything returned since the stream
    /// began covers exactly the input's duration, and readies the converter for a new stream.
    pub fn flush(&mut self) -> Vec<i16> {
        match &mut self.engine {
            Some(engine) => engine.flush(),
            None => Vec::new(),
        }
    }

    /// Drops buffered input and filter history without emitting them, so that speech cut off by
    /// a barge-in cannot leak into the start of the next utterance.
    pub fn reset(&mut self) {
        if let Some(engine) = &mut self.engine {
            engine.reset();
        }
    }
}

struct Engine {
    from_rate: u64,
    to_rate: u64,
    fft: FftFixedIn<f32>,
    block_in: usize,
    block_out: usize,
    pending: Vec<f32>,
    output: Vec<Vec<f32>>,
    delay: usize,
    to_skip: usize,
    consumed: u64,
    produced: u64,
}

impl Engine {
    fn new(from_rate: u32, to_rate: u32) -> Result<Self, AudioError> {
        let unsupported = || AudioError::UnsupportedRates { from: from_rate, to: to_rate };
        let (from, to) = (u64::from(from_rate), u64::from(to_rate));
        if from == 0 || to == 0 || from > MAX_RATE || to > MAX_RATE {
            return Err(unsupported());
        }
        let divisor = gcd(from, to);
        let (unit_in, unit_out) = (from / divisor, to / divisor);
        if unit_in > MAX_RATIO_TERM || unit_out > MAX_RATIO_TERM {
            return Err(unsupported());
        }
        let wanted = (from * BLOCK_MILLIS / 1_000).max(1);
        let units = wanted.div_ceil(unit_in).next_multiple_of(2);
        let block_in = usize::try_from(units * unit_in).map_err(|_| unsupported())?;
        let block_out = usize::try_from(units * unit_out).map_err(|_| unsupported())?;
        let fft = FftFixedIn::new(from_rate as usize, to_rate as usize, block_in, 1, 1)?;
        let delay = fft.output_delay();
        let output = fft.output_buffer_allocate(true);
        Ok(Self {
            from_rate: from,
            to_rate: to,
            fft,
            block_in,
            block_out,
            pending: Vec::with_capacity(block_in),
            output,
            delay,
            to_skip: delay,
            consumed: 0,
            produced: 0,
        })
    }

    fn process(&mut self, input: &[i16]) -> Vec<i16> {
        self.consumed += input.len() as u64;
        let mut out = Vec::with_capacity((self.pending.len() + input.len()) / self.block_in * self.block_out);
        let mut rest = input;
        while !rest.is_empty() {
            let (head, tail) = rest.split_at(rest.len().min(self.block_in - self.pending.len()));
            self.pending.extend(head.iter().map(|&sample| f32::from(sample)));
            rest = tail;
            if self.pending.len() == self.block_in {
                self.run_block(&mut out);
            }
        }
        out
    }

    fn flush(&mut self) -> Vec<i16> {
        let scaled = u128::from(self.consumed) * u128::from(self.to_rate);
        let rounded = (scaled + u128::from(self.from_rate / 2)) / u128::from(self.from_rate);
        let expected = u64::try_from(rounded).unwrap_or(u64::MAX);
        let mut out = Vec::new();
        while self.produced < expected {
            self.pending.resize(self.block_in, 0.0);
            self.run_block(&mut out);
        }
        let excess = usize::try_from(self.produced - expected).unwrap_or(usize::MAX);
        out.truncate(out.len().saturating_sub(excess));
        self.reset();
        out
    }

    fn reset(&mut self) {
        self.fft.reset();
        self.pending.clear();
        self.to_skip = self.delay;
        self.consumed = 0;
        self.produced = 0;
    }

    /// Converts the full block in `pending`, appending what lies past the filter delay to `out`.
    fn run_block(&mut self, out: &mut Vec<i16>) {
        let (_, written) = self
            .fft
            .process_into_buffer(&[&self.pending], &mut self.output, None)
            .expect("the block and output buffer are exactly the sizes the resampler was built with");
        self.pending.clear();
        let skip = self.to_skip.min(written);
        self.to_skip -= skip;
        // Float-to-int `as` saturates, which is the clipping wanted for overshoot near full scale.
        out.extend(self.output[0][skip..written].iter().map(|&sample| sample.round() as i16));
        self.produced += (written - skip) as u64;
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON_RATES: [u32; 7] = [8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];

    fn sine(rate: u32, freq: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| ((2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin() * 10_000.0) as i16)
            .collect()
    }

    /// Normalised cross-correlation of the middles of `a` and `b`, with `b` shifted by `lag`.
    fn correlation(a: &[i16], b: &[i16], lag: isize) -> f64 {
        let (start, end) = (a.len() / 10, a.len() * 9 / 10);
        let (mut dot, mut ea, mut eb) = (0.0, 0.0, 0.0);
        for n in start..end {
            let (x, y) =
                (f64::from(a[n]), f64::from(b[n.checked_add_signed(lag).expect("lags are smaller than the margin")]));
            dot += x * y;
            ea += x * x;
            eb += y * y;
        }
        dot / (ea * eb).sqrt()
    }

    fn whole(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
        let mut resampler = Resampler::new(from, to).unwrap();
        let mut out = resampler.process(input);
        out.extend(resampler.flush());
        out
    }

    #[test]
    fn round_trip_through_16k_stays_aligned() {
        let input = sine(48_000, 1_000.0, 48_000);
        let narrow = whole(48_000, 16_000, &input);
        let back = whole(16_000, 48_000, &narrow);
        assert_eq!(back.len(), input.len());
        let best = (-2..=2).max_by(|&a, &b| correlation(&input, &back, a).total_cmp(&correlation(&input, &back, b)));
        assert_eq!(best, Some(0));
        assert!(correlation(&input, &back, 0) > 0.95, "correlation {}", correlation(&input, &back, 0));
    }

    #[test]
    fn tts_rate_to_room_rate_keeps_pitch_and_timing() {
        let input = sine(22_050, 440.0, 22_050);
        let out = whole(22_050, 48_000, &input);
        assert_eq!(out.len(), 48_000);
        let ideal = sine(48_000, 440.0, 48_000);
        assert!(correlation(&ideal, &out, 0) > 0.99, "correlation {}", correlation(&ideal, &out, 0));
    }

    #[test]
    fn chunking_does_not_change_output() {
        let sizes = [1, 0, 7, 333, 960, 13, 4_410, 2, 479, 481];
        for (from, to) in [(24_000, 48_000), (48_000, 16_000), (22_050, 48_000), (44_100, 16_000)] {
            let input = sine(from, 523.0, from as usize * 3 / 2);
            let mut resampler = Resampler::new(from, to).unwrap();
            let mut chunked = Vec::new();
            let mut rest = &input[..];
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (head, tail) = rest.split_at((*size).min(rest.len()));
                chunked.extend(resampler.process(head));
                rest = tail;
            }
            chunked.extend(resampler.flush());
            assert_eq!(chunked, whole(from, to, &input), "{from} -> {to}");
        }
    }

    #[test]
    fn output_length_matches_duration() {
        for from in COMMON_RATES {
            for to in COMMON_RATES {
                for len in [0_u64, 1, 99, 441, 12_345] {
                    let out = whole(from, to, &vec![100; len as usize]);
                    let expected = (len * u64::from(to) + u64::from(from / 2)) / u64::from(from);
                    assert_eq!(out.len() as u64, expected, "{len} samples {from} -> {to}");
                }
            }
        }
    }

    #[test]
    fn delay_is_a_whole_number_of_samples() {
        for from in COMMON_RATES {
            for to in COMMON_RATES.into_iter().filter(|&to| to != from) {
                let engine = Engine::new(from, to).unwrap();
                assert_eq!(engine.delay * 2, engine.block_out, "{from} -> {to}");
                assert_eq!(engine.block_in as u64 * u64::from(to), engine.block_out as u64 * u64::from(from));
            }
        }
    }

    #[test]
    fn downsampling_removes_aliases() {
        let out = whole(48_000, 16_000, &sine(48_000, 12_000.0, 48_000));
        // The tone's abrupt start and end are broadband clicks; judge only the steady middle.
        let peak = out[1_600..14_400].iter().map(|sample| sample.unsigned_abs()).max();
        assert!(peak <= Some(2), "peak {peak:?}");
    }

    #[test]
    fn same_rate_passes_through() {
        let input = sine(16_000, 300.0, 1_234);
        let mut resampler = Resampler::new(16_000, 16_000).unwrap();
        assert_eq!(resampler.process(&input), input);
        assert!(resampler.flush().is_empty());
    }

    #[test]
    fn reset_starts_a_fresh_stream() {
        let input = sine(24_000, 200.0, 5_000);
        let mut resampler = Resampler::new(24_000, 48_000).unwrap();
        resampler.process(&sine(24_000, 3_000.0, 777));
        resampler.reset();
        let mut out = resampler.process(&input);
        out.extend(resampler.flush());
        assert_eq!(out, whole(24_000, 48_000, &input));
    }

    #[test]
    fn unusable_rates_are_rejected() {
        for (from, to) in [(0, 48_000), (48_000, 0), (0, 0), (44_101, 48_000), (48_000, 4_000_000_000)] {
            assert!(matches!(Resampler::new(from, to), Err(AudioError::UnsupportedRates { .. })), "{from} -> {to}");
        }
    }
}
