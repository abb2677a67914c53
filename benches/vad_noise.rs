//! The voice detectors on the noisy-room suite (`tests/support/noise.rs`): for each detector and
//! condition (noise kind × SNR × speech level), frame precision and recall, false alarms in
//! noise-only frames, what the turn detector (default configuration) makes of the decisions, and
//! the CPU each detector spends per second of audio. Then, per detector, the lowest SNR at which
//! turn ends are still found reliably for each noise.
//!
//! `cargo bench --bench vad_noise` (about a minute and a half on one core); `-- --quick` runs one
//! caller per condition instead of three. The audio is fed in 10 ms pieces, as the resampler
//! delivers it. CPU is this thread's scheduler time around `Vad::push`, over the whole grid.

#[path = "../tests/support/noise.rs"]
#[allow(dead_code, reason = "the tests use parts of the suite the bench does not")]
mod noise;

use std::fmt::Write as _;
use std::path::PathBuf;

use noise::{Caller, NoiseKind, SNRS_DB, Score, SpeechLevel};
use voice_agent::pipeline::vad::{Vad, VadConfig, VadKind};

/// What `noise.rs` resolves the speech fixture against.
fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Samples per push: 10 ms at 16 kHz.
const PIECE: usize = 160;

struct Detector {
    label: String,
    config: VadConfig,
    cpu_seconds: f64,
    audio_seconds: f64,
}

fn detectors() -> Vec<Detector> {
    let base = VadConfig::default();
    let mut configs = vec![
        ("webrtc-3".to_owned(), VadConfig { kind: VadKind::Webrtc, aggressiveness: 3, ..base }),
        ("webrtc-2".to_owned(), VadConfig { kind: VadKind::Webrtc, aggressiveness: 2, ..base }),
        ("earshot".to_owned(), VadConfig { kind: VadKind::Earshot, ..base }),
        ("silero".to_owned(), VadConfig { kind: VadKind::Silero, ..base }),
        ("silero-0.5".to_owned(), VadConfig { kind: VadKind::Silero, threshold: Some(0.5), ..base }),
        ("silero-0.3".to_owned(), VadConfig { kind: VadKind::Silero, threshold: Some(0.3), ..base }),
    ];
    let floored: Vec<(String, VadConfig)> = configs
        .iter()
        .filter(|(label, _)| !label.contains('-') || label == "webrtc-3")
        .map(|(label, config)| (format!("{label}+floor"), VadConfig { noise_margin_db: 3.0, ..*config }))
        .collect();
    configs.extend(floored);
    configs
        .into_iter()
        .map(|(label, config)| Detector { label, config, cpu_seconds: 0.0, audio_seconds: 0.0 })
        .collect()
}

/// This thread's CPU time so far, from the scheduler's nanosecond count.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux exposes schedstat");
    let nanos: f64 = stat.split_whitespace().next().and_then(|n| n.parse().ok()).expect("a CPU time in ns");
    nanos / 1e9
}

fn run(detector: &mut Detector, caller: &Caller, audio: &[i16]) -> Score {
    let mut vad = Vad::new(detector.config).expect("the bench's configurations are valid");
    let mut decisions = Vec::with_capacity(audio.len() / 320);
    let before = thread_cpu_seconds();
    for piece in audio.chunks(PIECE) {
        decisions.extend(vad.push(piece).iter().map(|frame| frame.speech));
    }
    detector.cpu_seconds += thread_cpu_seconds() - before;
    detector.audio_seconds += audio.len() as f64 / f64::from(noise::RATE);
    noise::score(caller, &decisions)
}

/// A condition's noise: `None` is the clean recording.
type Noise = Option<(NoiseKind, f64)>;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut detectors = detectors();
    let mut conditions: Vec<Noise> = vec![None];
    for kind in NoiseKind::ALL {
        conditions.extend(SNRS_DB.iter().map(|&snr| Some((kind, snr))));
    }
    // results[detector][condition index][level index]
    let mut results = vec![vec![[Score::default(); 2]; conditions.len()]; detectors.len()];
    for (level_index, level) in SpeechLevel::ALL.into_iter().enumerate() {
        let mut callers = noise::callers(level);
        if quick {
            callers.truncate(1);
        }
        for (condition_index, condition) in conditions.iter().enumerate() {
            for (seed, caller) in callers.iter().enumerate() {
                let audio = match condition {
                    None => noise::clean(caller),
                    Some((kind, snr)) => noise::noisy(caller, *kind, *snr, seed as u64 + 1),
                };
                for (index, detector) in detectors.iter_mut().enumerate() {
                    results[index][condition_index][level_index] += run(detector, caller, &audio);
                }
            }
        }
    }

    let mut out = String::new();
    let _ = writeln!(out, "## Voice detectors on the noisy-room suite\n");
    let _ = writeln!(
        out,
        "Each detector at its default threshold (silero 0.4, earshot 0.5); silero-0.5 and -0.3 at others; +floor: noise margin 3 dB. \
         Turns found: turn ends within min_silence + 300 ms of the end of speech / turns. Splits: turn ends \
         inside a turn's speech. Other ends: turn ends outside every turn (late, or a turn made by noise). \
         FA: noise-only frames (0.5 s or more from speech) called speech.\n"
    );
    let _ = writeln!(
        out,
        "| detector | noise | SNR | level | precision | recall | FA | turns found | splits | other ends |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for (index, detector) in detectors.iter().enumerate() {
        for (condition_index, condition) in conditions.iter().enumerate() {
            for (level_index, level) in SpeechLevel::ALL.into_iter().enumerate() {
                let s = results[index][condition_index][level_index];
                let (noise_name, snr) = match condition {
                    None => ("none".to_owned(), "-".to_owned()),
                    Some((kind, snr)) => (kind.name().to_owned(), format!("{snr}")),
                };
                let _ = writeln!(
                    out,
                    "| {} | {noise_name} | {snr} | {} | {:.2} | {:.2} | {:.1}% | {}/{} | {} | {} |",
                    detector.label,
                    level.name(),
                    s.precision(),
                    s.recall(),
                    s.false_alarm_rate() * 100.0,
                    s.turn_ends_found,
                    s.turns,
                    s.splits,
                    s.phantom_turns
                );
            }
        }
    }

    let _ = writeln!(
        out,
        "\n## Lowest SNR (dB) with every turn end found, no split and no phantom, normal / soft speech\n"
    );
    let _ = write!(out, "| detector | CPU per s of audio |");
    for kind in NoiseKind::ALL {
        let _ = write!(out, " {} |", kind.name());
    }
    let _ = writeln!(out, " mean precision | mean recall | mean FA |");
    let _ = writeln!(out, "|---|---|{}---|---|---|", "---|".repeat(NoiseKind::ALL.len()));
    for (index, detector) in detectors.iter().enumerate() {
        let cpu = detector.cpu_seconds / detector.audio_seconds;
        let _ = write!(out, "| {} | {:.0} µs ({:.3}% of a core) |", detector.label, cpu * 1e6, cpu * 100.0);
        for (kind_index, _) in NoiseKind::ALL.iter().enumerate() {
            let lowest = |level_index: usize| {
                let mut lowest = "fails".to_owned();
                for (snr_index, snr) in SNRS_DB.iter().enumerate() {
                    let condition = 1 + kind_index * SNRS_DB.len() + snr_index;
                    if !results[index][condition][level_index].turns_reliable() {
                        break;
                    }
                    lowest = format!("{snr}");
                }
                lowest
            };
            let _ = write!(out, " {} / {} |", lowest(0), lowest(1));
        }
        let mut pooled = Score::default();
        for condition in &results[index] {
            for level in condition {
                pooled += *level;
            }
        }
        let _ = writeln!(
            out,
            " {:.2} | {:.2} | {:.1}% |",
            pooled.precision(),
            pooled.recall(),
            pooled.false_alarm_rate() * 100.0
        );
    }
    print!("{out}");
}
