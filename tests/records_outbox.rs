//! Call records against a mock n8n lead-capture webhook: they arrive exactly as stored, with their
//! call id as Idempotency-Key and a signature n8n can check; they are on disk before the first
//! try and leave it only after a 2xx; outages, slow answers and dropped connections are retried,
//! refusals kept in dead/ with n8n's answer, redirects never followed; the spool is private to the
//! worker's user; and `agent-worker deliver` finishes the job after a kill -9 at any moment.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::mocks::n8n_leads::{MockLeads, PATH, Received, Reply};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;
use voice_agent::config::Secret;
use voice_agent::records::{Outbox, OutboxConfig, RecordsError, Tally};

/// A generous bound for things that take milliseconds; only a broken build gets near it.
const LIMIT: Duration = Duration::from_secs(20);

const SECRET: &str = "whsec_0123456789abcdef";

fn config(dir: &Path, url: Option<Url>) -> OutboxConfig {
    OutboxConfig {
        timeout: Duration::from_secs(5),
        first_retry: Duration::from_millis(50),
        max_retry: Duration::from_secs(2),
        ..OutboxConfig::new(dir.to_path_buf(), url, None)
    }
}

async fn start(config: OutboxConfig) -> Outbox {
    Outbox::start(config).await.unwrap_or_else(|e| panic!("{e}"))
}

/// A record as the pipeline writes one: JSON with text in two scripts.
fn record(id: &str) -> Vec<u8> {
    format!(r#"{{"call_id":"{id}","name":"Asha","phone":"+91 98765 43210","summary":"wants a callback — कल सुबह"}}"#)
        .into_bytes()
}

async fn drained(outbox: &Outbox) {
    tokio::time::timeout(LIMIT, outbox.drained()).await.expect("every record delivered in time");
}

/// File names in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
        .collect();
    names.sort();
    names
}

/// Where the waiting record `id` is in the shared spool `dir`: in the folder itself (as earlier
/// versions kept it) or in a worker's sub-spool.
fn waiting(dir: &Path, id: &str) -> Option<PathBuf> {
    let workers = std::fs::read_dir(dir.join("workers")).into_iter().flatten().flatten().map(|e| e.path());
    std::iter::once(dir.to_path_buf()).chain(workers).map(|place| place.join(format!("{id}.json"))).find(|p| p.exists())
}

/// The records still waiting anywhere in the shared spool `dir` (`dead/` aside).
fn left(dir: &Path) -> Vec<String> {
    let workers = std::fs::read_dir(dir.join("workers")).into_iter().flatten().flatten().map(|e| e.path());
    let mut names: Vec<String> = std::iter::once(dir.to_path_buf())
        .chain(workers)
        .flat_map(|place| std::fs::read_dir(place).into_iter().flatten().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

fn keys(received: &[Received]) -> Vec<&str> {
    received.iter().map(|r| r.header("idempotency-key").unwrap_or("<none>")).collect()
}

fn gaps(received: &[Received]) -> Vec<Duration> {
    received.windows(2).map(|pair| pair[1].at - pair[0].at).collect()
}

/// Puts records in a spool the way a previous worker process would have left them.
/// Records waiting in `dir` as one process keeps them, directly in the folder: the layout of
/// earlier versions, which `agent-worker` (one sub-spool per worker) adopts.
async fn spool_records(dir: &Path, ids: &[&str]) {
    let outbox = start(config(dir, None)).await;
    for id in ids {
        outbox.submit(id, record(id)).await.expect("stored");
    }
    outbox.close(Instant::now()).await;
}

#[tokio::test]
async fn records_reach_n8n_signed_exactly_as_stored_and_leave_the_disk_after_a_2xx() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n8n = MockLeads::watching(dir.path(), []).await;
    let config = OutboxConfig { secret: Some(Secret::new(SECRET)), ..config(dir.path(), Some(n8n.url())) };
    let outbox = start(config).await;

    outbox.submit("AJ_abc123", record("AJ_abc123")).await.expect("stored");
    drained(&outbox).await;

    let received = n8n.received();
    assert_eq!(keys(&received), ["AJ_abc123"]);
    let request = &received[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.body, record("AJ_abc123"), "sent byte for byte");
    assert!(request.signed_with(SECRET), "X-Signature-256 is the HMAC of the body: {:?}", request.headers);
    assert!(!request.signed_with("another secret"));
    assert!(request.spool.contains(&"AJ_abc123.json".to_owned()), "on disk before it was sent: {:?}", request.spool);
    assert_eq!(
        files(dir.path()),
        [".lock", "active", "dead", "delivered"],
        "moved out of the waiting records after n8n's 2xx"
    );
    assert_eq!(files(&dir.path().join("delivered")), ["AJ_abc123.json"], "kept for the operator's view");
    assert_eq!((outbox.pending(), outbox.tally()), (0, Tally { delivered: 1, dead: 0 }));
    outbox.close(Instant::now() + LIMIT).await;
}

#[tokio::test]
async fn without_a_secret_records_go_unsigned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n8n = MockLeads::start([]).await;
    let outbox = start(config(dir.path(), Some(n8n.url()))).await;
    outbox.submit("AJ_1", record("AJ_1")).await.expect("stored");
    drained(&outbox).await;
    let received = n8n.received();
    assert_eq!(keys(&received), ["AJ_1"]);
    assert_eq!(received[0].header("x-signature-256"), None);
    outbox.close(Instant::now() + LIMIT).await;
}

/// n8n fails four times with `fault`, then takes the record: every try carries the same record,
/// and the waits between tries grow.
async fn retried_with_growing_waits(fault: Reply) {
    let dir = tempfile::tempdir().expect("temp dir");
    let n8n = MockLeads::start(vec![fault.clone(); 4]).await;
    let outbox = start(config(dir.path(), Some(n8n.url()))).await;
    outbox.submit("AJ_retry", record("AJ_retry")).await.expect("stored");
    drained(&outbox).await;

    let received = n8n.received();
    assert_eq!(keys(&received), ["AJ_retry"; 5], "{fault:?}: four failures, then delivered");
    assert!(received.iter().all(|r| r.body == record("AJ_retry")));
    let gaps = gaps(&received);
    // Backoff from 50 ms: the first wait is at most 50 ms, the fourth at least 200 ms.
    assert!(gaps[3] > gaps[0], "{fault:?}: the waits grow: {gaps:?}");
    assert_eq!(files(dir.path()), [".lock", "active", "dead", "delivered"]);
    outbox.close(Instant::now() + LIMIT).await;
}

#[tokio::test]
async fn a_500_is_retried_with_growing_waits() {
    retried_with_growing_waits(Reply::status(500)).await;
}

#[tokio::test]
async fn a_503_is_retried_with_growing_waits() {
    retried_with_growing_waits(Reply::status(503)).await;
}

#[tokio::test]
async fn a_dropped_connection_is_retried_with_growing_waits() {
    retried_with_growing_waits(Reply::Drop).await;
}

#[tokio::test]
async fn retry_after_is_honoured_on_429_and_503() {
    for status in [429, 503] {
        let dir = tempfile::tempdir().expect("temp dir");
        let n8n = MockLeads::start([Reply::retry_after(status, 1)]).await;
        let outbox = start(config(dir.path(), Some(n8n.url()))).await;
        outbox.submit("AJ_later", record("AJ_later")).await.expect("stored");
        drained(&outbox).await;
        let received = n8n.received();
        assert_eq!(keys(&received), ["AJ_later", "AJ_later"]);
        let gap = gaps(&received)[0];
        // The backoff alone would wait at most 50 ms.
        assert!(gap >= Duration::from_millis(950), "{status} with Retry-After: 1 waited {gap:?}");
        outbox.close(Instant::now() + LIMIT).await;
    }
}

#[tokio::test]
async fn timeouts_408_and_429_are_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n8n = MockLeads::start([Reply::Hang, Reply::status(408), Reply::status(429)]).await;
    let config = OutboxConfig { timeout: Duration::from_millis(300), ..config(dir.path(), Some(n8n.url())) };
    let outbox = start(config).await;
    outbox.submit("AJ_slow", record("AJ_slow")).await.expect("stored");
    drained(&outbox).await;
    assert_eq!(keys(&n8n.received()), ["AJ_slow"; 4]);
    assert_eq!(outbox.tally(), Tally { delivered: 1, dead: 0 });
    assert_eq!(files(&dir.path().join("dead")), Vec::<String>::new());
    outbox.close(Instant::now() + LIMIT).await;
}

#[tokio::test]
async fn a_refused_record_goes_to_dead_with_n8ns_answer_and_is_not_retried() {
    for status in [400, 422] {
        let dir = tempfile::tempdir().expect("temp dir");
        let answer = r#"{"code":"missing_field","message":"phone is required"}"#;
        let n8n = MockLeads::start([Reply::body(status, answer)]).await;
        let outbox = start(config(dir.path(), Some(n8n.url()))).await;
        outbox.submit("AJ_bad", record("AJ_bad")).await.expect("stored");
        outbox.submit("AJ_good", record("AJ_good")).await.expect("stored");
        drained(&outbox).await;
        // Time for several retries at 50 ms, had there been any.
        tokio::time::sleep(Duration::from_millis(400)).await;

        assert_eq!(keys(&n8n.received()), ["AJ_bad", "AJ_good"], "{status} is final; the next record goes on");
        assert_eq!(outbox.tally(), Tally { delivered: 1, dead: 1 });
        let dead = dir.path().join("dead");
        assert_eq!(files(&dead), ["AJ_bad.answer.txt", "AJ_bad.json"]);
        assert_eq!(std::fs::read(dead.join("AJ_bad.json")).expect("kept"), record("AJ_bad"));
        let kept = std::fs::read_to_string(dead.join("AJ_bad.answer.txt")).expect("answer kept");
        assert!(kept.contains(&status.to_string()) && kept.contains("phone is required"), "{kept}");
        assert_eq!(files(dir.path()), [".lock", "active", "dead", "delivered"]);
        outbox.close(Instant::now() + LIMIT).await;
    }
}

#[tokio::test]
async fn records_reach_an_n8n_whose_url_carries_basic_auth_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n8n = MockLeads::start([]).await;
    let mut url = n8n.url();
    url.set_username("n8n-user").expect("a host URL takes credentials");
    url.set_password(Some("s3cret pass")).expect("a host URL takes credentials");
    let outbox = start(config(dir.path(), Some(url))).await;
    outbox.submit("AJ_auth", record("AJ_auth")).await.expect("stored");
    drained(&outbox).await;

    assert_eq!(outbox.tally(), Tally { delivered: 1, dead: 0 }, "delivered, not moved to dead/");
    let received = n8n.received();
    assert_eq!(keys(&received), ["AJ_auth"]);
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "n8n-user:s3cret pass");
    assert_eq!(received[0].header("authorization"), Some(format!("Basic {basic}").as_str()));
    assert_eq!(files(dir.path()), [".lock", "active", "dead", "delivered"]);
    outbox.close(Instant::now() + LIMIT).await;
}

/// An address that counts the connections made to it and never answers.
struct Tripwire {
    url: Url,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Tripwire {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
        let port = listener.local_addr().expect("bound").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        let url = format!("http://mover:hunter2@127.0.0.1:{port}{PATH}").parse().expect("a valid URL");
        Self { url, connections, task }
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_the_record_waits_for_n8ns_new_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let elsewhere = Tripwire::start().await;
    let redirects = [301, 302, 303, 307, 308].map(|status| Reply::redirect(status, elsewhere.url.as_str()));
    let n8n = MockLeads::start(redirects).await;
    let outbox = start(config(dir.path(), Some(n8n.url()))).await;
    outbox.submit("AJ_moved", record("AJ_moved")).await.expect("stored");
    drained(&outbox).await;

    let received = n8n.received();
    assert_eq!(keys(&received), ["AJ_moved"; 6], "every redirect is retried at n8n's address, then delivered");
    assert!(received.iter().all(|r| r.body == record("AJ_moved")));
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0, "nothing, neither a POST nor a GET, went elsewhere");
    assert_eq!(outbox.tally(), Tally { delivered: 1, dead: 0 }, "a redirect never sends a record to dead/");
    assert_eq!(files(&dir.path().join("dead")), Vec::<String>::new());
    outbox.close(Instant::now() + LIMIT).await;
}

#[tokio::test]
async fn without_a_url_records_stay_on_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = start(config(dir.path(), None)).await;
    outbox.submit("AJ_kept", record("AJ_kept")).await.expect("stored");
    assert_eq!(outbox.pending(), 1);
    assert!(tokio::time::timeout(Duration::from_millis(200), outbox.drained()).await.is_err(), "nothing sends it");
    let started = Instant::now();
    outbox.close(Instant::now() + LIMIT).await;
    assert!(started.elapsed() < Duration::from_secs(2), "nothing to wait for");
    assert_eq!(std::fs::read(dir.path().join("AJ_kept.json")).expect("on disk"), record("AJ_kept"));
}

#[tokio::test]
async fn close_returns_by_its_deadline_while_n8n_hangs_and_the_record_stays_for_the_next_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stuck = MockLeads::start([Reply::Hang]).await;
    let config = OutboxConfig { timeout: Duration::from_secs(60), ..config(dir.path(), Some(stuck.url())) };
    let outbox = start(config).await;
    outbox.submit("AJ_stuck", record("AJ_stuck")).await.expect("stored");
    stuck.until(1, LIMIT).await;

    let started = Instant::now();
    outbox.submit("AJ_next", record("AJ_next")).await.expect("stored while n8n hangs");
    assert!(started.elapsed() < Duration::from_secs(2), "a call never waits for n8n");
    assert_eq!(outbox.pending(), 2);

    let started = Instant::now();
    outbox.close(started + Duration::from_millis(300)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "close took {took:?} for a 300 ms deadline");
    assert_eq!(files(dir.path()), [".lock", "AJ_next.json", "AJ_stuck.json", "active", "dead", "delivered"]);
    drop(outbox);

    let n8n = MockLeads::start([]).await;
    let outbox = start(config_for(dir.path(), &n8n)).await;
    drained(&outbox).await;
    let mut delivered = keys(&n8n.received()).into_iter().map(str::to_owned).collect::<Vec<_>>();
    delivered.sort();
    assert_eq!(delivered, ["AJ_next", "AJ_stuck"]);
    outbox.close(Instant::now() + LIMIT).await;
}

fn config_for(dir: &Path, n8n: &MockLeads) -> OutboxConfig {
    config(dir, Some(n8n.url()))
}

#[tokio::test]
async fn a_second_outbox_on_the_same_spool_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start(config(dir.path(), None)).await;
    let error = Outbox::start(config(dir.path(), None)).await.expect_err("already in use");
    assert!(matches!(error, RecordsError::Locked { .. }), "{error}");
    assert!(error.to_string().contains(&dir.path().display().to_string()), "names the directory: {error}");
    first.close(Instant::now()).await;
    drop(first);
    start(config(dir.path(), None)).await;
}

#[tokio::test]
async fn at_start_interrupted_writes_are_removed_and_earlier_records_are_delivered_oldest_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Named against their order, so only their age can put them in it.
    spool_records(dir.path(), &["AJ_zz_first"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    spool_records(dir.path(), &["AJ_mm_second"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    spool_records(dir.path(), &["AJ_aa_third"]).await;
    std::fs::write(dir.path().join("AJ_half.4f1c2b9a0d3e5f67.tmp"), r#"{"call_id":"AJ_ha"#).expect("writable");

    let n8n = MockLeads::watching(dir.path(), []).await;
    let outbox = start(config_for(dir.path(), &n8n)).await;
    assert!(!dir.path().join("AJ_half.4f1c2b9a0d3e5f67.tmp").exists(), "a write a crash interrupted is removed");
    assert_eq!(outbox.pending(), 3);
    drained(&outbox).await;
    let received = n8n.received();
    assert_eq!(keys(&received), ["AJ_zz_first", "AJ_mm_second", "AJ_aa_third"]);
    assert!(received.iter().all(|r| r.body == record(r.header("idempotency-key").expect("keyed"))));
    outbox.close(Instant::now() + LIMIT).await;
}

#[tokio::test]
async fn ids_that_are_not_call_ids_are_refused_by_name_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = start(config(dir.path(), None)).await;
    let long = "x".repeat(129);
    for id in ["", "../outside", "a/b", "AJ 1", "AJ_1.json", long.as_str()] {
        let error = outbox.submit(id, record("x")).await.expect_err(id);
        assert!(matches!(error, RecordsError::InvalidId { .. }), "{error}");
        assert!(error.to_string().contains(&format!("`{id}`")), "names the id: {error}");
    }
    outbox.submit("AJ_1", record("AJ_1")).await.expect("a call id");
    let error = outbox.submit("AJ_1", b"{}".to_vec()).await.expect_err("one record per call");
    assert!(matches!(error, RecordsError::Duplicate { .. }), "{error}");
    assert_eq!(files(dir.path()), [".lock", "AJ_1.json", "active", "dead", "delivered"]);
    assert_eq!(std::fs::read(dir.path().join("AJ_1.json")).expect("kept"), record("AJ_1"), "the first record stays");
    assert_eq!(outbox.pending(), 1);
}

// `agent-worker deliver`, as a process that can be killed at any moment.

struct Deliver {
    child: Child,
}

fn deliver_command(spool: &Path, n8n: &Url) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-worker"));
    command
        .arg("deliver")
        // Away from the repository, so a developer's .env does not join in.
        .current_dir(spool.parent().expect("the spool is in a temp dir"))
        .env("SPOOL_DIR", spool)
        .env("N8N_BASE_URL", n8n.as_str())
        .env("N8N_WEBHOOK_LEAD_CAPTURE", PATH)
        .env("N8N_WEBHOOK_SECRET", SECRET)
        .env("LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn deliver(spool: &Path, n8n: &Url) -> Deliver {
    Deliver { child: deliver_command(spool, n8n).spawn().expect("agent-worker runs") }
}

/// Runs `agent-worker deliver` until it exits by itself; its status and its log.
async fn deliver_to_the_end(spool: &Path, n8n: &Url) -> (std::process::ExitStatus, String) {
    let output = tokio::time::timeout(LIMIT, deliver_command(spool, n8n).output()).await;
    let output = output.expect("deliver exits by itself").expect("agent-worker runs");
    let log = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status, log)
}

impl Deliver {
    /// Waits for a log line containing `text`.
    async fn logs(&mut self, text: &str) {
        let stdout = self.child.stdout.as_mut().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(LIMIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(text) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "deliver logged `{text}`");
    }

    async fn kill_9(&mut self) {
        self.child.start_kill().expect("SIGKILL sent");
        let status = tokio::time::timeout(LIMIT, self.child.wait()).await.expect("dies").expect("waits");
        assert!(!status.success(), "killed, not exited: {status}");
    }

    async fn exit(mut self) -> (std::process::ExitStatus, String) {
        let output = tokio::time::timeout(LIMIT, async {
            let status = self.child.wait().await.expect("waits");
            let mut stderr = String::new();
            if let Some(mut pipe) = self.child.stderr.take() {
                let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr).await;
            }
            (status, stderr)
        });
        output.await.expect("deliver exits by itself")
    }
}

/// An address where nothing listens: n8n is down.
fn nothing_listening() -> Url {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    format!("http://127.0.0.1:{port}").parse().expect("a valid URL")
}

fn spool_dir(temp: &tempfile::TempDir) -> PathBuf {
    temp.path().join("outbox")
}

#[tokio::test]
async fn deliver_needs_n8n_and_says_which_setting_is_missing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_agent-worker"))
        .arg("deliver")
        .current_dir(temp.path())
        .env_remove("N8N_BASE_URL")
        .env("SPOOL_DIR", spool_dir(&temp))
        .output()
        .await
        .expect("agent-worker runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("N8N_BASE_URL") && stderr.contains("required"), "{stderr}");
    assert!(!stderr.contains("LIVEKIT"), "deliver needs nothing of LiveKit: {stderr}");
}

#[tokio::test]
async fn killed_while_n8n_is_down_the_record_is_delivered_exactly_once_by_the_next_run() {
    let temp = tempfile::tempdir().expect("temp dir");
    let spool = spool_dir(&temp);
    spool_records(&spool, &["AJ_down"]).await;

    let mut first = deliver(&spool, &nothing_listening());
    first.logs("will retry").await;
    first.kill_9().await;
    let kept = waiting(&spool, "AJ_down").expect("still on disk");
    assert_eq!(std::fs::read(kept).expect("readable"), record("AJ_down"));

    let n8n = MockLeads::start([]).await;
    let (status, stderr) = deliver(&spool, &n8n.base_url()).exit().await;
    assert!(status.success(), "{status}: {stderr}");
    let received = n8n.received();
    assert_eq!(keys(&received), ["AJ_down"], "exactly once");
    assert_eq!(received[0].body, record("AJ_down"));
    assert!(received[0].signed_with(SECRET));
    assert!(left(&spool).is_empty(), "delivered: {:?}", left(&spool));
}

#[tokio::test]
async fn killed_while_sending_the_record_is_sent_again_with_the_same_key_and_bytes() {
    let temp = tempfile::tempdir().expect("temp dir");
    let spool = spool_dir(&temp);
    spool_records(&spool, &["AJ_midway"]).await;
    let n8n = MockLeads::start([Reply::Hang]).await;

    let mut first = deliver(&spool, &n8n.base_url());
    n8n.until(1, LIMIT).await;
    first.kill_9().await;
    assert!(waiting(&spool, "AJ_midway").is_some(), "n8n never answered, so the record stays");

    let (status, stderr) = deliver(&spool, &n8n.base_url()).exit().await;
    assert!(status.success(), "{status}: {stderr}");
    let received = n8n.received();
    assert_eq!(keys(&received), ["AJ_midway", "AJ_midway"], "sent again under the same Idempotency-Key");
    assert_eq!(received[0].body, received[1].body, "the same bytes");
    assert_eq!(received[1].body, record("AJ_midway"));
    assert!(received.iter().all(|r| r.signed_with(SECRET)));
    assert!(left(&spool).is_empty(), "delivered: {:?}", left(&spool));
}

#[tokio::test]
async fn deliver_stopped_by_sigterm_leaves_the_rest_on_disk_and_exits_zero() {
    let temp = tempfile::tempdir().expect("temp dir");
    let spool = spool_dir(&temp);
    spool_records(&spool, &["AJ_wait"]).await;
    let mut run = deliver(&spool, &nothing_listening());
    run.logs("will retry").await;
    let pid = run.child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(sent.success());
    let (status, stderr) = run.exit().await;
    assert!(status.success(), "{status}: {stderr}");
    assert!(waiting(&spool, "AJ_wait").is_some());
}

#[tokio::test]
async fn deliver_logs_where_n8n_moved_without_credentials_and_delivers_once_it_answers() {
    let temp = tempfile::tempdir().expect("temp dir");
    let spool = spool_dir(&temp);
    spool_records(&spool, &["AJ_moved"]).await;
    let moved = "https://admin:hunter2@n8n.example.net/webhook/lead-capture-v2?from=old";
    let n8n = MockLeads::start([Reply::redirect(308, moved), Reply::redirect(301, "/webhook/elsewhere")]).await;
    let mut base = n8n.base_url();
    base.set_username("worker").expect("a host URL takes credentials");
    base.set_password(Some("base-password")).expect("a host URL takes credentials");

    let (status, log) = deliver_to_the_end(&spool, &base).await;
    assert!(status.success(), "{status}: {log}");
    assert_eq!(keys(&n8n.received()), ["AJ_moved"; 3], "retried at the configured address, then delivered");
    let moved_lines: Vec<&str> = log.lines().filter(|line| line.contains("n8n's address moved")).collect();
    assert_eq!(moved_lines.len(), 2, "{log}");
    assert!(
        moved_lines[0].contains("308")
            && moved_lines[0].contains("https://n8n.example.net/webhook/lead-capture-v2?from=old"),
        "{log}"
    );
    let relative = format!("{}webhook/elsewhere", n8n.base_url());
    assert!(
        moved_lines[1].contains("301") && moved_lines[1].contains(&relative),
        "resolved against n8n's address: {log}"
    );
    for secret in ["hunter2", "admin", "base-password", "worker:"] {
        assert!(!log.contains(secret), "`{secret}` reached the log: {log}");
    }
    assert!(left(&spool).is_empty(), "delivered: {:?}", left(&spool));
}

#[tokio::test]
async fn deliver_warns_when_the_spool_is_open_to_other_users() {
    let temp = tempfile::tempdir().expect("temp dir");
    let spool = spool_dir(&temp);
    spool_records(&spool, &["AJ_private"]).await;
    let n8n = MockLeads::start([]).await;
    let (status, log) = deliver_to_the_end(&spool, &n8n.base_url()).await;
    assert!(status.success(), "{status}: {log}");
    assert!(!log.contains("open to other users"), "a spool the worker made is private: {log}");

    // As an earlier version left it: a world-readable directory and record.
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o755)).expect("settable");
    std::fs::write(spool.join("AJ_open.json"), record("AJ_open")).expect("writable");
    std::fs::set_permissions(spool.join("AJ_open.json"), std::fs::Permissions::from_mode(0o644)).expect("settable");
    let (status, log) = deliver_to_the_end(&spool, &n8n.base_url()).await;
    assert!(status.success(), "the spool is still used: {status}: {log}");
    let warning = log.lines().find(|line| line.contains("open to other users")).unwrap_or_else(|| panic!("{log}"));
    assert!(
        warning.contains("WARN") && warning.contains(&spool.display().to_string()) && warning.contains("755"),
        "{warning}"
    );
    assert!(warning.contains("chmod -R go-rwx"), "says how to close it: {warning}");
    assert_eq!(keys(&n8n.received()), ["AJ_private", "AJ_open"]);
}

#[tokio::test]
async fn a_calls_checkpoint_gives_way_to_its_record_and_is_never_written_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n8n = MockLeads::start([]).await;
    let outbox = start(config_for(dir.path(), &n8n)).await;
    let active = outbox.active_call("AJ_live").expect("a call id");
    active.checkpoint(b"{\"turns\":1}".to_vec()).await.expect("checkpointed");
    active.checkpoint(b"{\"turns\":2}".to_vec()).await.expect("checkpointed");
    assert_eq!(files(&dir.path().join("active")), ["AJ_live.json"]);
    assert!(n8n.received().is_empty(), "a checkpoint is not a record: nothing is sent while the call runs");

    active.submit(record("AJ_live")).await.expect("stored");
    // The checkpoint task may still be running when the call ends; what it writes now is dropped.
    active.checkpoint(b"{\"turns\":3}".to_vec()).await.expect("ignored");
    drop(active);
    drained(&outbox).await;
    assert_eq!(keys(&n8n.received()), ["AJ_live"]);
    assert_eq!(n8n.received()[0].body, record("AJ_live"), "the record, not a checkpoint");
    assert!(files(&dir.path().join("active")).is_empty(), "no checkpoint left to deliver at the next start");
    outbox.close(Instant::now() + LIMIT).await;
}

#[tokio::test]
async fn a_call_that_ends_without_its_record_is_delivered_up_to_its_last_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n8n = MockLeads::start([]).await;
    let outbox = start(config_for(dir.path(), &n8n)).await;
    let active = outbox.active_call("AJ_failed").expect("a call id");
    let checkpoint = br#"{"call_id":"AJ_failed","end_reason":"worker_lost"}"#.to_vec();
    active.checkpoint(checkpoint.clone()).await.expect("checkpointed");
    // The call's task failed or was cut off: its hooks never ran.
    drop(active);
    drained(&outbox).await;
    assert_eq!(keys(&n8n.received()), ["AJ_failed"]);
    assert_eq!(n8n.received()[0].body, checkpoint);
    assert!(files(&dir.path().join("active")).is_empty());
    let never = outbox.active_call("AJ_quiet").expect("a call id");
    drop(never);
    assert_eq!(n8n.received().len(), 1, "a call with no checkpoint has nothing to deliver");
    outbox.close(Instant::now() + LIMIT).await;
}
