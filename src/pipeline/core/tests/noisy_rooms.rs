//! The noisy-room suite through the whole conversation, on a virtual clock: the caller's audio
//! (recorded speech over noise beds, `tests/support/noise.rs`) goes through the default voice
//! detector into the core, which greets, listens and answers. For every stationary noise down to
//! 5 dB SNR and the modulated ones down to 10 dB, at a normal and a soft level:
//! - each turn is answered exactly once, within `min_silence` + 300 ms of its last word;
//! - noise alone starts no turn (the caller is silent for the first 5 s);
//! - noise alone never pauses or cuts the agent (its greeting plays over the first seconds of
//!   noise, its answers over the pauses between turns).

use super::noise::{self, NoiseKind, SNRS_DB, SpeechLevel, TURN_END_SLACK};
use super::*;
use crate::pipeline::vad::{Vad, VadConfig};

/// When, counted like the harness's clock, the frame holding `sample` arrives.
fn arrival(sample: usize) -> Duration {
    Duration::from_millis((sample / FRAME_SAMPLES + 1) as u64 * 20)
}

/// A conversation with the agent builder's default turn-taking.
fn agent() -> CoreConfig {
    let mut config = config();
    crate::agent::TurnOptions::default().apply(&mut config);
    config
}

/// Runs one caller's audio through the default detector and the core; what went wrong, if
/// anything.
fn converse(caller: &noise::Caller, audio: &[i16]) -> Vec<String> {
    let mut vad = Vad::new(VadConfig::default()).expect("the default detector builds");
    let mut call = Call::with_caller(agent());
    call.stt_delay = ms(50);
    call.fallback_transcript = "Yes, that is what I need.";
    for frame in audio.chunks(160).flat_map(|piece| vad.push(piece)) {
        call.feed(frame);
    }
    call.wait(4_000);
    let mut problems = Vec::new();
    let answers: Vec<Duration> = call
        .log
        .iter()
        .filter(|(_, output)| match output {
            Output::Release { .. } => true,
            Output::StartJob { work: Job::Generate { hold, new_turn, .. }, .. } => !hold && *new_turn,
            _ => false,
        })
        .map(|(at, _)| *at)
        .collect();
    if answers.len() != caller.turns.len() {
        problems.push(format!("{} answers to {} turns, at {answers:?}", answers.len(), caller.turns.len()));
    }
    let window = agent().turn.min_silence + TURN_END_SLACK;
    for (turn, range) in caller.turns.iter().enumerate() {
        let (start, end) = (arrival(range.start), arrival(range.end));
        let answered = answers.iter().filter(|at| **at >= start && **at <= end + window).count();
        if answered != 1 {
            problems.push(format!("turn {turn} ({start:?} to {end:?}) answered {answered} times in time: {answers:?}"));
        }
    }
    let speaking = |at: Duration| {
        caller.turns.iter().any(|range| at + ms(100) >= arrival(range.start) && at <= arrival(range.end) + ms(300))
    };
    for (at, output) in &call.log {
        if matches!(output, Output::Pause | Output::Clear) && !speaking(*at) {
            problems.push(format!("noise alone paused or cut the agent at {at:?} ({output:?})"));
        }
    }
    if call.captions().first().is_none_or(|greeting| greeting != "Hello! How can I help?") {
        problems.push(format!("the greeting was not said whole: {:?}", call.captions().first()));
    }
    problems
}

#[test]
fn turns_hold_in_noisy_rooms_down_to_the_required_snr() {
    let mut failures = Vec::new();
    for level in SpeechLevel::ALL {
        // The suite's recorded and synthetic voices; the bench adds a third.
        let callers: Vec<noise::Caller> =
            noise::callers(level).into_iter().filter(|caller| caller.name != "male").collect();
        for kind in NoiseKind::ALL {
            for snr in SNRS_DB.into_iter().filter(|snr| *snr >= kind.required_snr_db()) {
                for caller in &callers {
                    let audio = noise::noisy(caller, kind, snr, 1);
                    for problem in converse(caller, &audio) {
                        failures.push(format!(
                            "{} at {snr} dB, {} {}: {problem}",
                            kind.name(),
                            level.name(),
                            caller.name
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_quiet_room_is_the_baseline() {
    for caller in noise::callers(SpeechLevel::Normal) {
        let problems = converse(&caller, &noise::clean(&caller));
        assert!(problems.is_empty(), "{}: {problems:?}", caller.name);
    }
}
