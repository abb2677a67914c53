//! 200 calls one after another through one worker: afterwards the process has no more tasks
//! than before and about the same memory. (Its own test binary, so other tests' tasks and
//! allocations do not blur the count. Exact figures are for the bench; bounds here are generous.)

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::livekit::{dev_server, join_as_caller, wait_for};
use voice_agent::livekit::room::{ParticipantKind, RoomEvent};
use voice_agent::worker::{LoopbackSession, resident_kib};

const CALLS: usize = 200;
const WARM_UP: usize = 10;
const LIMIT: Duration = Duration::from_secs(15);

async fn one_call(url: &str, index: usize) {
    let (caller, mut events) = join_as_caller(url, &format!("call-{index}")).await;
    wait_for(&mut events, LIMIT, |e| {
        matches!(e, RoomEvent::ParticipantConnected(p) if p.kind == ParticipantKind::Agent).then_some(())
    })
    .await;
    caller.disconnect().await;
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Waits for the rooms of finished calls to close and their tasks to end.
async fn settled(worker: &support::worker::RunningWorker, calls: usize) -> usize {
    worker.until("every call ended", |s| s.job_count == 0 && s.recent_jobs.len() >= calls.min(20)).await;
    let mut tasks = alive_tasks();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = alive_tasks();
        if now == tasks {
            break;
        }
        tasks = now;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    alive_tasks()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_calls_leave_no_tasks_or_memory_behind() {
    let server = dev_server().await;
    let worker = support::worker::start(&server.url(), "", 10, Arc::new(LoopbackSession));
    worker.registered().await;
    for index in 0..WARM_UP {
        one_call(&server.url(), index).await;
    }
    let tasks_before = settled(&worker, WARM_UP).await;
    let memory_before = resident_kib().expect("RSS readable");

    let started = Instant::now();
    for index in WARM_UP..WARM_UP + CALLS {
        one_call(&server.url(), index).await;
    }
    let elapsed = started.elapsed();
    let tasks_after = settled(&worker, CALLS).await;
    let memory_after = resident_kib().expect("RSS readable");
    println!(
        "{CALLS} calls in {:.1} s: tasks {tasks_before} -> {tasks_after}, resident memory {memory_before} KiB -> {memory_after} KiB",
        elapsed.as_secs_f64()
    );
    assert!(tasks_after <= tasks_before, "every call's tasks ended: {tasks_before} before, {tasks_after} after");
    assert!(
        memory_after <= memory_before + 40 * 1024,
        "memory returned near its baseline: {memory_before} KiB before, {memory_after} KiB after"
    );
    worker.drain().await;
}
