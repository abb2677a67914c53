//! The default voice detector meets the noisy-room requirement (issue 10): for every stationary
//! noise down to 5 dB SNR and the modulated ones (street, music) down to 10 dB, at a normal and a
//! soft speech level, speech frames are mostly found, noise-only frames are not, and the turn
//! detector ends every turn once, in time, with no turn made by noise. The full grid, every
//! detector and the figures are in `benches/vad_noise.rs`.

mod support;

use support::noise::{self, NoiseKind, Score, SpeechLevel};
use voice_agent::pipeline::vad::{Vad, VadConfig};

fn decisions(config: VadConfig, audio: &[i16]) -> Vec<bool> {
    let mut vad = Vad::new(config).expect("a valid configuration");
    audio.chunks(160).flat_map(|piece| vad.push(piece)).map(|frame| frame.speech).collect()
}

#[test]
fn the_default_detector_keeps_turn_taking_in_noisy_rooms() {
    // Two of the suite's three callers, a recorded female English voice and espeak-ng's English
    // and Hindi, at both levels, over one bed per noise; the bench runs the whole grid.
    let callers: Vec<_> =
        SpeechLevel::ALL.into_iter().flat_map(noise::callers).filter(|caller| caller.name != "male").collect();
    let longest = callers.iter().map(|c| c.seconds()).fold(0.0, f64::max);
    let mut failures = Vec::new();
    for kind in NoiseKind::ALL {
        let snr = kind.required_snr_db();
        let bed = noise::bed(kind, longest, 1);
        for level in SpeechLevel::ALL {
            let mut score = Score::default();
            for caller in callers.iter().filter(|caller| caller.level == level) {
                let audio = noise::mix(caller, &bed, snr);
                score += noise::score(caller, &decisions(VadConfig::default(), &audio));
            }
            if score.recall() < 0.8 || score.false_alarm_rate() > 0.02 || !score.turns_reliable() {
                failures.push(format!("{} at {snr} dB, {} speech: {score:?}", kind.name(), level.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same check on webrtc-vad, the detector before the default changed, fails: the test can
/// tell a detector that breaks in noise from one that does not.
#[test]
fn webrtc_alone_fails_the_same_requirement() {
    let webrtc = VadConfig { kind: voice_agent::pipeline::vad::VadKind::Webrtc, ..VadConfig::default() };
    let caller = &noise::callers(SpeechLevel::Normal)[0];
    let audio = noise::noisy(caller, NoiseKind::Pink, 5.0, 1);
    let score = noise::score(caller, &decisions(webrtc, &audio));
    assert!(!score.turns_reliable() || score.false_alarm_rate() > 0.02, "{score:?}");
}

#[test]
fn the_suite_is_built_as_documented() {
    let callers = noise::callers(SpeechLevel::Soft);
    assert_eq!(callers.len(), 3);
    for caller in &callers {
        let lead = (noise::LEAD.as_secs_f64() * f64::from(noise::RATE)) as usize;
        assert_eq!(caller.turns[0].start / 320 * 320, caller.turns[0].start);
        assert!(caller.turns[0].start >= lead && caller.turns[0].start < lead + 1_600, "{}", caller.name);
        assert!(caller.turns.len() >= 2);
        assert!(caller.speech[..lead / 320].iter().all(|&s| !s), "no speech before the first turn");
        // The clean recording scores perfectly against its own truth.
        let perfect = noise::score(caller, &caller.speech);
        assert!(perfect.turns_reliable() && perfect.recall() == 1.0 && perfect.precision() == 1.0, "{perfect:?}");
        // Soft speech is at -41 dBFS: peaks far below full scale.
        let audio = noise::clean(caller);
        assert!(audio.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0) < 8_000);
    }
    // Beds are deterministic per seed, different across seeds, and at an RMS of 1.
    for kind in NoiseKind::ALL {
        let bed = noise::bed(kind, 2.0, 7);
        assert_eq!(bed, noise::bed(kind, 2.0, 7));
        assert_ne!(bed, noise::bed(kind, 2.0, 8));
        let rms = (bed.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / bed.len() as f64).sqrt();
        assert!((rms - 1.0).abs() < 1e-3, "{}: {rms}", kind.name());
    }
}

#[test]
fn mixing_sets_the_signal_to_noise_ratio() {
    let caller = &noise::callers(SpeechLevel::Normal)[0];
    let bed = noise::bed(NoiseKind::White, caller.seconds(), 3);
    let mixed = noise::mix(caller, &bed, 10.0);
    let clean = noise::clean(caller);
    let power = |samples: &mut dyn Iterator<Item = f64>| {
        let (sum, count) = samples.fold((0.0, 0), |(sum, count), x| (sum + x * x, count + 1));
        sum / f64::from(count)
    };
    let speech_frames: Vec<usize> = (0..caller.speech.len()).filter(|&i| caller.speech[i]).collect();
    let speech =
        power(&mut speech_frames.iter().flat_map(|&i| clean[i * 320..(i + 1) * 320].iter().map(|&s| f64::from(s))));
    let noise_only = power(&mut mixed.iter().zip(&clean).map(|(&m, &c)| f64::from(m) - f64::from(c)));
    let snr = 10.0 * (speech / noise_only).log10();
    // The truth includes the quieter frames inside words that set no level, so a little under.
    assert!((snr - 10.0).abs() < 1.5, "{snr} dB");
    let level = 10.0 * (speech / 32768f64.powi(2)).log10();
    assert!((level - SpeechLevel::Normal.dbfs()).abs() < 1.5, "{level} dBFS");
}
