//! Audio helpers for tests: the speech fixture, and alignment by cross-correlation.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use voice_agent::audio::{AudioFrame, Resampler};

/// The espeak-ng speech fixture (16 kHz mono).
pub fn speech() -> AudioFrame {
    let path = super::repo_path("tests/fixtures/speech.wav");
    let mut reader = hound::WavReader::open(&path).expect("the speech fixture exists");
    let sample_rate = reader.spec().sample_rate;
    let samples = reader.samples::<i16>().map(|s| s.expect("valid sample")).collect();
    AudioFrame { samples, sample_rate }
}

pub fn resample(frame: &AudioFrame, rate: u32) -> Vec<i16> {
    let mut resampler = Resampler::new(frame.sample_rate, rate).expect("supported rates");
    let mut out = resampler.process(&frame.samples);
    out.extend(resampler.flush());
    out
}

/// The best normalised cross-correlation of `source` inside `received`, and the lag where it
/// occurs (found with an FFT, then measured exactly over the source's span).
pub fn best_alignment(source: &[i16], received: &[i16]) -> (f64, usize) {
    let length = (source.len() + received.len()).next_power_of_two();
    let mut planner = FftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(length);
    let inverse = planner.plan_fft_inverse(length);
    let spectrum = |signal: &[i16]| {
        let mut buffer: Vec<Complex<f64>> = signal.iter().map(|&s| Complex::new(f64::from(s), 0.0)).collect();
        buffer.resize(length, Complex::default());
        forward.process(&mut buffer);
        buffer
    };
    let (a, b) = (spectrum(received), spectrum(source));
    let mut product: Vec<Complex<f64>> = a.iter().zip(&b).map(|(x, y)| x * y.conj()).collect();
    inverse.process(&mut product);
    let limit = received.len().saturating_sub(source.len()) + 1;
    let lag = (0..limit).max_by(|&i, &j| product[i].re.total_cmp(&product[j].re)).unwrap_or(0);
    (normalised_correlation(source, &received[lag..(lag + source.len()).min(received.len())]), lag)
}

pub fn normalised_correlation(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (f64::from(a[i]), f64::from(b[i]));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 { 0.0 } else { ab / (aa.sqrt() * bb.sqrt()) }
}

/// Root-mean-square level of a stretch of samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Seconds from the first to the last 20 ms frame louder than −40 dBFS: how much speech a clip
/// holds, without the silence around it.
pub fn speech_span(audio: &AudioFrame) -> f64 {
    let frame = audio.sample_rate as usize / 50;
    let loud: Vec<usize> =
        audio.samples.chunks(frame).enumerate().filter(|(_, f)| rms(f) > 300.0).map(|(i, _)| i).collect();
    (loud.last().expect("speech") - loud.first().expect("speech") + 1) as f64 / 50.0
}

/// The part of the speech fixture between `from` and `to` seconds.
pub fn speech_clip(from: f64, to: f64) -> AudioFrame {
    let speech = speech();
    let at = |seconds: f64| ((seconds * f64::from(speech.sample_rate)) as usize).min(speech.samples.len());
    AudioFrame { samples: speech.samples[at(from)..at(to)].to_vec(), sample_rate: speech.sample_rate }
}
