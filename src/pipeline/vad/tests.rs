use super::*;

fn fixture() -> Vec<i16> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/speech.wav");
    let mut reader = hound::WavReader::open(path).expect("the speech fixture exists");
    assert_eq!(reader.spec().sample_rate, SAMPLE_RATE);
    assert_eq!(reader.spec().channels, 1);
    reader.samples::<i16>().map(|s| s.expect("valid sample")).collect()
}

/// Deterministic white noise (xorshift), uniform in `-amplitude..=amplitude`.
fn noise(len: usize, amplitude: i16, seed: u64) -> Vec<i16> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let span = 2 * i64::from(amplitude) + 1;
            (state % span as u64) as i64 as i16 - amplitude
        })
        .collect()
}

/// Deterministic pink-ish noise (three leaky integrators of white noise, Paul Kellet's
/// economy filter) at about `rms`.
fn pink(len: usize, rms: f64, seed: u64) -> Vec<i16> {
    let white = noise(len, 1_000, seed);
    let mut b = [0.0f64; 3];
    let raw: Vec<f64> = white
        .iter()
        .map(|&w| {
            let w = f64::from(w);
            b[0] = 0.99765 * b[0] + w * 0.0990460;
            b[1] = 0.96300 * b[1] + w * 0.2965164;
            b[2] = 0.57000 * b[2] + w * 1.0526913;
            b[0] + b[1] + b[2] + w * 0.1848
        })
        .collect();
    let scale = rms / (raw.iter().map(|x| x * x).sum::<f64>() / raw.len() as f64).sqrt();
    raw.iter().map(|x| (x * scale) as i16).collect()
}

fn speech_fraction(frames: &[VadFrame]) -> f64 {
    frames.iter().filter(|f| f.speech).count() as f64 / frames.len() as f64
}

fn config(kind: VadKind) -> VadConfig {
    VadConfig { kind, ..VadConfig::default() }
}

/// Every detector, each alone and with the noise floor.
fn every_config() -> Vec<VadConfig> {
    let mut all = Vec::new();
    for kind in VadKind::ALL {
        all.push(config(kind));
        all.push(VadConfig { noise_margin_db: 3.0, ..config(kind) });
    }
    all
}

#[test]
fn rejects_bad_configurations_by_name() {
    let webrtc = |aggressiveness| VadConfig { kind: VadKind::Webrtc, aggressiveness, ..VadConfig::default() };
    assert_eq!(Vad::new(webrtc(4)).unwrap_err(), VadError::Aggressiveness(4));
    for level in 0..=3 {
        assert!(Vad::new(webrtc(level)).is_ok());
    }
    let bad = VadConfig { threshold: Some(1.5), ..VadConfig::default() };
    assert_eq!(Vad::new(bad).unwrap_err(), VadError::Threshold(1.5));
    let bad = VadConfig { noise_margin_db: -1.0, ..VadConfig::default() };
    assert!(Vad::new(bad).unwrap_err().to_string().contains("noise margin"));
    assert_eq!(VadKind::parse("silero"), Some(VadKind::Silero));
    assert_eq!(VadKind::parse("Silero"), None);
    assert_eq!(VadKind::names(), "silero, earshot, webrtc");
}

#[test]
fn is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Vad>();
}

#[test]
fn silence_is_never_speech() {
    for config in every_config() {
        let mut vad = Vad::new(config).unwrap();
        let frames = vad.push(&vec![0; SAMPLE_RATE as usize * 2]);
        assert_eq!(frames.len(), 100);
        assert!(frames.iter().all(|f| !f.speech), "{config:?}");
    }
}

#[test]
fn gate_treats_faint_noise_as_silence() {
    for config in every_config() {
        let mut vad = Vad::new(VadConfig { aggressiveness: 0, threshold: Some(0.2), ..config }).unwrap();
        let frames = vad.push(&noise(SAMPLE_RATE as usize, 12, 7));
        assert!(frames.iter().all(|f| !f.speech), "{config:?}");
    }
}

#[test]
fn every_detector_finds_speech_in_the_fixture_and_the_pauses_between_words() {
    let audio = fixture();
    let mut configs = every_config();
    configs.extend((0..=2).map(|level| VadConfig { aggressiveness: level, ..config(VadKind::Webrtc) }));
    for config in configs {
        let mut vad = Vad::new(config).unwrap();
        let frames = vad.push(&audio);
        assert_eq!(frames.len(), audio.len() / FRAME_SAMPLES);
        let fraction = speech_fraction(&frames);
        assert!(fraction > 0.5, "{config:?}: only {fraction:.2} of frames are speech");
        assert!(fraction < 0.95, "{config:?}: pauses between words must show as non-speech");
    }
}

#[test]
fn white_noise_is_mostly_not_speech() {
    // -40 dBFS RMS: far above the gate, so this exercises each detector itself.
    for config in every_config() {
        let mut vad = Vad::new(config).unwrap();
        let frames = vad.push(&noise(SAMPLE_RATE as usize * 5, 570, 42));
        let fraction = speech_fraction(&frames);
        assert!(fraction < 0.1, "{config:?}: {fraction:.2} of noise frames were speech");
    }
}

/// Pink noise at -30 dBFS: webrtc-vad calls a third of it speech, which is the failure the
/// neural detectors exist for.
#[test]
fn pink_noise_is_speech_to_webrtc_but_not_to_silero() {
    let bed = pink(SAMPLE_RATE as usize * 8, 1_000.0, 3);
    let fraction = |config: VadConfig| speech_fraction(&Vad::new(config).unwrap().push(&bed)[150..]);
    let webrtc = fraction(config(VadKind::Webrtc));
    let silero = fraction(config(VadKind::Silero));
    assert!(webrtc > 0.2, "{webrtc}");
    assert!(silero < 0.02, "{silero}");
}

#[test]
fn frames_carry_their_audio_and_ignore_chunking() {
    let audio = fixture();
    for config in every_config() {
        let whole = Vad::new(config).unwrap().push(&audio);
        assert_eq!(whole.iter().flat_map(|f| f.samples).collect::<Vec<_>>(), audio[..whole.len() * FRAME_SAMPLES]);
        for size in [1, 7, 160, 319, 321, 512, 4_096] {
            let mut vad = Vad::new(config).unwrap();
            let pieces: Vec<VadFrame> = audio.chunks(size).flat_map(|piece| vad.push(piece)).collect();
            assert_eq!(pieces, whole, "{config:?}: chunks of {size} samples");
        }
    }
}

#[test]
fn empty_input_yields_nothing() {
    let mut vad = Vad::new(VadConfig::default()).unwrap();
    assert!(vad.push(&[]).is_empty());
    assert!(vad.push(&[1; 100]).is_empty());
    assert!(vad.push(&[]).is_empty());
    assert_eq!(vad.push(&[1; 220]).len(), 1);
}

#[test]
fn full_scale_input_does_not_overflow() {
    for config in every_config() {
        let mut vad = Vad::new(config).unwrap();
        let frames = vad.push(&[i16::MIN; FRAME_SAMPLES * 30]);
        assert_eq!(frames.len(), 30);
    }
    assert!(mean_power(&[i16::MAX; FRAME_SAMPLES]) > GATE_POWER);
}

#[test]
fn blocks_are_cut_by_sample_count() {
    let mut blocks = Blocks::<4>::default();
    let mut seen = Vec::new();
    blocks.feed(&[1, 2, 3], |b| seen.push(*b));
    blocks.feed(&[4, 5, 6, 7, 8, 9], |b| seen.push(*b));
    assert_eq!(seen, [[1, 2, 3, 4], [5, 6, 7, 8]]);
}
