//! What the metrics cost: recording one answered turn (its five stage timings, and the
//! speech-to-text, model and synthesis requests behind it), alone and with two threads
//! recording at once as the worker's runtime does; and rendering one scrape.
//!
//! Run: `cargo bench --bench metrics`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use voice_agent::metrics::Registry;
use voice_agent::pipeline::metrics::TurnMetrics;
use voice_agent::providers::registry::Kind;

const TURNS: u32 = 1_000_000;

fn a_turn(i: u32) -> TurnMetrics {
    let jitter = u64::from(i % 97);
    TurnMetrics {
        end_of_utterance_ms: Some(30 + jitter),
        stt_ms: Some(150 + jitter),
        llm_first_token_ms: Some(300 + jitter),
        tts_first_audio_ms: Some(120 + jitter),
        voice_to_voice_ms: Some(650 + jitter),
        interrupted: i.is_multiple_of(10),
    }
}

/// Nanoseconds per turn on each of `threads` threads recording at once.
fn per_turn(threads: u32) -> f64 {
    let mut registry = Registry::new();
    let metrics = registry.worker();
    let _exposition = registry.finish();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let metrics = metrics.clone();
            scope.spawn(move || {
                // Resolved once per call, as a call's providers are built.
                let providers = [
                    metrics.provider(Kind::Stt, "sarvam"),
                    metrics.provider(Kind::Llm, "groq"),
                    metrics.provider(Kind::Tts, "sarvam"),
                ];
                for i in 0..TURNS {
                    metrics.turn(black_box(&a_turn(i)));
                    for provider in &providers {
                        provider.request();
                    }
                }
            });
        }
    });
    started.elapsed().as_nanos() as f64 / f64::from(TURNS)
}

fn scrape() -> (Duration, usize) {
    let mut registry = Registry::new();
    let metrics = registry.worker();
    let _profiles = registry.profiles();
    let exposition = registry.finish();
    for (kind, provider) in [(Kind::Stt, "sarvam"), (Kind::Llm, "groq"), (Kind::Tts, "sarvam")] {
        metrics.provider(kind, provider).request();
    }
    metrics.turn(&a_turn(1));
    let rounds = 1_000;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes = black_box(exposition.render()).len();
    }
    (started.elapsed() / rounds, bytes)
}

fn main() {
    let alone = per_turn(1);
    let contended = per_turn(2);
    let (render, bytes) = scrape();
    println!("Recording one turn's metrics (5 stage timings, 3 provider requests):");
    println!("  one thread:              {alone:.0} ns per turn");
    println!("  two threads at once:     {contended:.0} ns per turn on each");
    println!("Rendering one scrape:      {} µs ({bytes} bytes)", render.as_micros());
}
