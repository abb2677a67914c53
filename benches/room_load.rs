//! What one call's media costs our participant: for 1, 10 and 50 calls through the dev server,
//! CPU time per participant per second of audio and resident memory per participant.
//!
//! Three processes, so each figure belongs to one party: the dev server (`agent-worker
//! dev-server`), the callers (this program re-run with `--callers`, publishing speech in N
//! rooms), and the measured process: N loopback participants, one per room, each receiving and
//! decoding the caller's speech and encoding and sending it back, as an agent does with its
//! own voice.
//!
//! Run: `cargo bench --bench room_load` (add `-- 1 10` to choose the counts).

#[allow(dead_code, reason = "this benchmark runs no worker")]
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_api::access_token::{AccessToken, VideoGrants};
use support::Reaped;
use voice_agent::audio::AudioFrame;
use voice_agent::livekit::loopback;
use voice_agent::livekit::room::{self, ConnectOptions};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WARM_UP: Duration = Duration::from_secs(4);
const WINDOW: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if args.first().map(String::as_str) == Some("--callers") {
        let count: usize = args[1].parse().expect("a caller count");
        runtime.block_on(callers(count, &args[2]));
        return;
    }
    let counts: Vec<usize> = if args.is_empty() {
        vec![1, 10, 50]
    } else {
        args.iter().map(|a| a.parse().expect("a participant count")).collect()
    };
    println!("calls  cpu per participant (% of a core)  cpu ms per audio second  rss per participant (KiB)");
    for count in counts {
        let figures = runtime.block_on(measure(count));
        println!(
            "{count:>5}  {:>33.3}  {:>23.2}  {:>25.0}",
            figures.cpu_share * 100.0,
            figures.cpu_share * 1000.0,
            figures.rss_per_participant_kib
        );
    }
}

struct Figures {
    cpu_share: f64,
    rss_per_participant_kib: f64,
}

async fn measure(count: usize) -> Figures {
    let (_server, url) = support::dev_server().await;

    let rss_before = rss_kib();
    let mut rooms = Vec::new();
    for index in 0..count {
        let token = token(&format!("load-{index}"), &format!("agent-{index}"), true);
        let options = ConnectOptions { bind_ips: Some(vec![LOOPBACK]), ..ConnectOptions::default() };
        let (room, events) = room::connect(&url, &token, options).await.expect("the participant joins");
        rooms.push(tokio::spawn(loopback::run(room, events, std::future::pending())));
    }
    let _callers = Reaped(
        Command::new(std::env::current_exe().expect("this program"))
            .args(["--callers", &count.to_string(), &url])
            .stdout(Stdio::null())
            .spawn()
            .expect("the callers start"),
    );
    tokio::time::sleep(WARM_UP).await;
    let rss_after = rss_kib();
    let (cpu_start, wall_start) = (cpu_time(), Instant::now());
    tokio::time::sleep(WINDOW).await;
    let cpu = cpu_time() - cpu_start;
    let wall = wall_start.elapsed();
    for room in rooms {
        room.abort();
    }
    Figures {
        cpu_share: cpu.as_secs_f64() / (wall.as_secs_f64() * count as f64),
        rss_per_participant_kib: (rss_after - rss_before) / count as f64,
    }
}

/// The callers' process: one speaker per room, repeating the speech fixture.
async fn callers(count: usize, url: &str) {
    let speech = Arc::new(speech());
    let mut speakers = Vec::new();
    for index in 0..count {
        let token = token(&format!("load-{index}"), &format!("caller-{index}"), false);
        let options =
            ConnectOptions { auto_subscribe: false, bind_ips: Some(vec![LOOPBACK]), ..ConnectOptions::default() };
        let (room, _events) = room::connect(url, &token, options).await.expect("the caller joins");
        let speech = speech.clone();
        speakers.push(tokio::spawn(async move {
            let track = room.publish_audio("microphone").await.expect("published");
            loop {
                if track.queued() < Duration::from_secs(2) {
                    track.push(&speech).expect("queued");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    for speaker in speakers {
        let _ = speaker.await;
    }
}

fn token(room: &str, identity: &str, subscribe: bool) -> String {
    let grants =
        VideoGrants { room_join: true, room: room.into(), can_subscribe: Some(subscribe), ..VideoGrants::default() };
    AccessToken::with_api_key("devkey", "secret").with_identity(identity).with_grants(grants).to_jwt().expect("signs")
}

fn speech() -> AudioFrame {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/speech.wav");
    let mut reader = hound::WavReader::open(path).expect("the speech fixture");
    let sample_rate = reader.spec().sample_rate;
    AudioFrame { samples: reader.samples::<i16>().map(|s| s.expect("a sample")).collect(), sample_rate }
}

/// User plus system CPU time of this process, from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

fn rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number")
}
