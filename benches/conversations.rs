//! What a conversation costs the worker, and how long the worker itself makes a caller wait.
//!
//! For 1, 10, 50 and 100 simultaneous conversations: the worker's CPU share and resident memory
//! per conversation, and its voice-to-voice overhead: from the caller's last word to the first
//! packet of the answer leaving, minus the end-of-turn silence it must wait anyway (500 ms), with
//! providers that answer at once (the test mocks, zero latency), so what remains is ours.
//!
//! Then, with providers as slow as real ones (speech-to-text and synthesis 100 ms, the model's
//! first token 400 ms), voice-to-voice itself with preemptive generation (the model asked at the
//! caller's first pause, its answer released when the turn ends) and without, and what that
//! costs in model requests per answered turn.
//!
//! Four parties, so each figure belongs to one: the dev server (`agent-worker dev-server`), the
//! mocks (in this process), the callers (this program re-run with `--callers`, each speaking a
//! clip of the speech fixture every 8 s and hearing the answer), and the measured worker
//! (`agent-worker start`), whose per-turn log lines give the voice-to-voice figures.
//!
//! Run: `cargo bench --bench conversations` (add `-- 1 10` to choose the counts).

#[allow(dead_code, reason = "the benchmark uses a few of the test mocks' features")]
#[path = "../tests/support/mocks/mod.rs"]
mod mocks;

mod support;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livekit_api::access_token::{AccessToken, VideoGrants};
use mocks::openai::{Flavour, MockOpenAi};
use mocks::sarvam::MockSarvam;
use support::{Reaped, WorkerCommand, registered, worker_command};
use voice_agent::audio::AudioFrame;
use voice_agent::livekit::room::{self, ConnectOptions, RoomEvent};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Every caller speaks this often.
const TURN_CYCLE: Duration = Duration::from_secs(8);
/// The agent's answer, as long as the mock synthesises it.
const ANSWER_AUDIO: Duration = Duration::from_millis(1500);
const WARM_UP: Duration = Duration::from_secs(12);
const WINDOW: Duration = Duration::from_secs(24);
/// The profile's end-of-turn silence (the default agent's).
const END_OF_TURN: f64 = 500.0;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if args.first().map(String::as_str) == Some("--callers") {
        let count: usize = args[1].parse().expect("a caller count");
        runtime.block_on(callers(count, &args[2], &args[3]));
        return;
    }
    let counts: Vec<usize> = if args.is_empty() {
        vec![1, 10, 50, 100]
    } else {
        args.iter().map(|a| a.parse().expect("a conversation count")).collect()
    };
    runtime.block_on(async {
        let (_server, url) = support::dev_server().await;
        let sarvam = MockSarvam::start("bench-sarvam").await;
        sarvam.tts_audio(ANSWER_AUDIO);
        // Words that neither close a sentence nor leave it open, so every turn ends after the
        // profile's plain `min_silence_ms` (END_OF_TURN), as before adaptive endpointing.
        sarvam.stt_answers(std::iter::repeat_n("I would like to book a table for two", 1_000_000));
        let llm = MockOpenAi::start(Flavour::Groq, "bench-groq").await;
        let with_preemption = bench_profiles(true);
        let without_preemption = bench_profiles(false);
        println!(
            "conversations  cpu per conversation (% of a core)  rss per conversation (KiB)  turns  \
             voice-to-voice overhead p50 / p95 / max (ms)  of which p50 stt / llm / tts (ms)"
        );
        for &count in &counts {
            let figures = measure(count, &url, &sarvam, &llm, with_preemption.path()).await;
            println!(
                "{count:>13}  {:>33.3}  {:>26.0}  {:>5}  {:>29.1} / {:.1} / {:.1}  {:>24.1} / {:.1} / {:.1}",
                figures.cpu_share * 100.0,
                figures.rss_per_conversation_kib,
                figures.overheads.len(),
                percentile(&figures.overheads, 0.5),
                percentile(&figures.overheads, 0.95),
                percentile(&figures.overheads, 1.0),
                percentile(&figures.stt, 0.5),
                percentile(&figures.llm, 0.5),
                percentile(&figures.tts, 0.5),
            );
        }
        sarvam.latency(Duration::from_millis(100));
        llm.latency(Duration::from_millis(400));
        println!(
            "\nwith slow providers (speech 100 ms, model 400 ms)\n\
             conversations  preemptive  turns  voice-to-voice p50 / p95 / max (ms)  model requests per turn"
        );
        for &count in counts.iter().filter(|count| **count <= 10) {
            for preemptive in [true, false] {
                let profiles = if preemptive { with_preemption.path() } else { without_preemption.path() };
                let figures = measure(count, &url, &sarvam, &llm, profiles).await;
                let voice_to_voice: Vec<f64> = figures.overheads.iter().map(|o| o + END_OF_TURN).collect();
                println!(
                    "{count:>13}  {:>10}  {:>5}  {:>22.0} / {:.0} / {:.0}  {:>23.2}",
                    if preemptive { "yes" } else { "no" },
                    voice_to_voice.len(),
                    percentile(&voice_to_voice, 0.5),
                    percentile(&voice_to_voice, 0.95),
                    percentile(&voice_to_voice, 1.0),
                    figures.requests as f64 / voice_to_voice.len().max(1) as f64,
                );
            }
        }
    });
}

/// The shipped default profile (Sarvam and Groq, which the mocks stand in for), with
/// preemptive generation on or off; the callers name no agent, so they get this one.
fn bench_profiles(preemptive: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a profiles directory");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/default.toml");
    let text = std::fs::read_to_string(shipped).expect("the shipped default profile");
    let text = if preemptive { text } else { text.replacen("[turn]\n", "[turn]\npreemptive = false\n", 1) };
    std::fs::write(dir.path().join("default.toml"), text).expect("written");
    dir
}

struct Figures {
    /// Requests the model received while measuring.
    requests: usize,
    cpu_share: f64,
    rss_per_conversation_kib: f64,
    overheads: Vec<f64>,
    /// Median stages of the overhead: transcript, model's first token, first synthesised audio.
    stt: Vec<f64>,
    llm: Vec<f64>,
    tts: Vec<f64>,
}

async fn measure(
    count: usize,
    url: &str,
    sarvam: &MockSarvam,
    llm: &MockOpenAi,
    profiles: &std::path::Path,
) -> Figures {
    let worker = Worker::start(url, sarvam, llm, profiles).await;
    let idle_rss = worker.resident_kib();
    // Each measurement in rooms of its own: a room the last worker served is not dispatched again.
    static MEASUREMENTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = MEASUREMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag = format!("c{count}-{}-{run}", std::process::id());
    let _callers = Reaped(
        Command::new(std::env::current_exe().expect("this program"))
            .args(["--callers", &count.to_string(), url, &tag])
            .stdout(Stdio::null())
            .spawn()
            .expect("the callers start"),
    );
    tokio::time::sleep(WARM_UP).await;
    worker.turns.lock().expect("not poisoned").clear();
    let (cpu_before, started, asked) = (worker.cpu_seconds(), Instant::now(), llm.records().len());
    tokio::time::sleep(WINDOW).await;
    let cpu = worker.cpu_seconds() - cpu_before;
    let requests = llm.records().len() - asked;
    let elapsed = started.elapsed().as_secs_f64();
    let rss = worker.resident_kib();
    let turns = worker.turns.lock().expect("not poisoned");
    let column = |read: fn(&Turn) -> f64| turns.iter().map(read).collect::<Vec<f64>>();
    Figures {
        requests,
        cpu_share: cpu / elapsed / count as f64,
        rss_per_conversation_kib: (rss - idle_rss) as f64 / count as f64,
        overheads: column(|t| t.voice_to_voice - END_OF_TURN),
        stt: column(|t| t.stt),
        llm: column(|t| t.llm),
        tts: column(|t| t.tts),
    }
}

fn percentile(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * quantile).round() as usize]
}

struct Worker {
    child: Reaped,
    turns: Arc<Mutex<Vec<Turn>>>,
    _spool: tempfile::TempDir,
}

/// One turn's figures from the worker's log, in milliseconds.
struct Turn {
    voice_to_voice: f64,
    stt: f64,
    llm: f64,
    tts: f64,
}

impl Worker {
    /// Starts `agent-worker start` against the mocks; returns once it is registered.
    async fn start(url: &str, sarvam: &MockSarvam, llm: &MockOpenAi, profiles: &std::path::Path) -> Self {
        let WorkerCommand { mut command, health, spool } = worker_command(url);
        command.env("PROFILES_DIR", profiles);
        let mut child = command
            .env("SARVAM_API_KEY", "bench-sarvam")
            .env("SARVAM_BASE_URL", sarvam.base_url().as_str())
            .env("GROQ_API_KEY", "bench-groq")
            .env("GROQ_BASE_URL", llm.base_url().as_str())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,voice_agent::pipeline::metrics=info")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the worker starts");
        let turns = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let collected = turns.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if entry["level"] == "WARN" || entry["level"] == "ERROR" {
                    eprintln!("worker: {line}");
                }
                let stage = |name: &str| entry[name].as_f64().unwrap_or(f64::NAN);
                if entry["voice_to_voice_ms"].is_number() {
                    let turn = Turn {
                        voice_to_voice: stage("voice_to_voice_ms"),
                        stt: stage("stt_ms"),
                        llm: stage("llm_first_token_ms"),
                        tts: stage("tts_first_audio_ms"),
                    };
                    collected.lock().expect("not poisoned").push(turn);
                }
            }
        });
        registered(health).await;
        Self { child: Reaped(child), turns, _spool: spool }
    }

    fn stat_field(&self, index: usize) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.0.id())).expect("the worker's stat");
        let after_name = &stat[stat.rfind(')').expect("a process name") + 2..];
        after_name.split_whitespace().nth(index - 3).and_then(|v| v.parse().ok()).expect("a number")
    }

    /// User and system CPU time so far.
    fn cpu_seconds(&self) -> f64 {
        // Fields 14 and 15 of /proc/PID/stat, in clock ticks (100 per second on Linux).
        (self.stat_field(14) + self.stat_field(15)) as f64 / 100.0
    }

    fn resident_kib(&self) -> i64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id())).expect("the worker's status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number")
    }
}

/// `count` callers, one per room, each speaking a clip every [`TURN_CYCLE`], their starts spread
/// over the cycle; runs until killed.
async fn callers(count: usize, url: &str, tag: &str) {
    let clip = speech_clip();
    let mut tasks = Vec::new();
    for index in 0..count {
        let (url, clip) = (url.to_owned(), clip.clone());
        let room_name = format!("{tag}-{index}");
        let offset = TURN_CYCLE.mul_f64(index as f64 / count as f64);
        tasks.push(tokio::spawn(async move {
            let grants = VideoGrants { room_join: true, room: room_name, ..VideoGrants::default() };
            let token = AccessToken::with_api_key("devkey", "secret")
                .with_identity("caller")
                .with_grants(grants)
                .to_jwt()
                .expect("signs");
            let options = ConnectOptions { bind_ips: Some(vec![LOOPBACK]), ..ConnectOptions::default() };
            let (room, mut events) = room::connect(&url, &token, options).await.expect("the caller joins");
            let mut microphone = room.publish_audio("microphone").await.expect("a microphone");
            microphone.ready().await.expect("negotiated");
            // Hear the agent, as a caller does: decode its audio.
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if let RoomEvent::TrackSubscribed { mut track } = event {
                        tokio::spawn(async move { while track.recv().await.is_some() {} });
                    }
                }
            });
            tokio::time::sleep(offset).await;
            let mut cycle = tokio::time::interval(TURN_CYCLE);
            loop {
                cycle.tick().await;
                microphone.push(&clip).expect("queued");
                microphone.flush();
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// 2.5 s of the speech fixture: one turn.
fn speech_clip() -> AudioFrame {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/speech.wav");
    let mut reader = hound::WavReader::open(path).expect("the speech fixture");
    let sample_rate = reader.spec().sample_rate;
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.expect("valid")).collect();
    let at = |seconds: f64| (seconds * f64::from(sample_rate)) as usize;
    AudioFrame { samples: samples[at(0.9)..at(3.4)].to_vec(), sample_rate }
}
