//! The handle calls submit their records to, and the one task that sends what the spool holds.
//!
//! Submitting only writes to disk and queues the id, so a call never waits for n8n. The task sends
//! one record at a time in the order the schedule gives, reads each body from disk for every try
//! (what is sent is exactly what is stored, and thousands of waiting records cost no memory), and
//! removes a file only after a 2xx.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, LOCATION};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use url::Url;

use super::RecordsError;
use super::active::ActiveCall;
use super::backoff::{self, Backoff, Scope, Verdict};
use super::delivered::DEFAULT_KEEP_DELIVERED;
use super::id::RecordId;
use super::schedule::{Next, Retry, Schedule};
use super::signature;
use super::spool::Spool;
use super::workers;
use crate::config::Secret;
use crate::providers::retry_after;

/// How much of a refusing answer `dead/<id>.answer.txt` keeps.
const ANSWER_KEPT: usize = 64 * 1024;

/// How much of an answer a log line shows.
const ANSWER_LOGGED: usize = 500;

/// How much of a redirect's Location a log line shows.
const LOCATION_LOGGED: usize = 300;

/// Where records wait and where they go.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// `SPOOL_DIR`: with `worker` set, the folder shared by every worker (see
    /// [`OutboxConfig::shared`]); without, the spool itself.
    pub dir: PathBuf,
    /// This worker's id, naming its own sub-spool `dir/workers/<worker>/`; `None` uses `dir` as
    /// one spool, for one process alone.
    pub worker: Option<String>,
    /// Where records go: `{N8N_BASE_URL}{N8N_WEBHOOK_LEAD_CAPTURE}`; `None` keeps them in the
    /// spool (warned once at start).
    pub url: Option<Url>,
    /// N8N_WEBHOOK_SECRET: signs each record's body (`X-Signature-256`).
    pub secret: Option<Secret>,
    /// Per try; a record n8n is slow to take is tried again rather than waited on for ever.
    pub timeout: Duration,
    /// The first wait after a failure; each further failure doubles it.
    pub first_retry: Duration,
    /// The longest wait, so that records flow again soon after a long outage ends.
    pub max_retry: Duration,
    /// Delivered records kept in `delivered/` for the operator's view (RECORDS_KEEP_DELIVERED).
    pub keep_delivered: usize,
}

impl OutboxConfig {
    /// The defaults for timeouts, retries and the delivered archive.
    pub fn new(dir: PathBuf, url: Option<Url>, secret: Option<Secret>) -> Self {
        Self {
            dir,
            worker: None,
            url,
            secret,
            timeout: Duration::from_secs(10),
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(300),
            keep_delivered: DEFAULT_KEEP_DELIVERED,
        }
    }
}

impl OutboxConfig {
    /// An outbox in its own sub-spool of the `dir` shared by many workers, which adopts at start
    /// the sub-spools of workers that are gone and what older versions left directly in `dir`.
    pub fn shared(dir: PathBuf, worker: String, url: Option<Url>, secret: Option<Secret>) -> Self {
        Self { worker: Some(worker), ..Self::new(dir, url, secret) }
    }
}

/// What became of the records this outbox settled, for `agent-worker deliver`'s report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Taken by n8n (2xx) and removed from the spool.
    pub delivered: usize,
    /// Refused by n8n for good and moved to `dead/`.
    pub dead: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    pending: usize,
    tally: Tally,
}

/// A cheap handle on the spool and its delivery task, shared by every call.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    spool: Arc<Spool>,
    counts: Arc<watch::Sender<Counts>>,
    /// `None` when there is nowhere to send: records then only wait on disk.
    queue: Option<mpsc::UnboundedSender<RecordId>>,
    stop: watch::Sender<bool>,
    /// Taken by the first `close`; dropping every handle also ends the task, as its channels close.
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Shows where the spool is and what waits, never the secret or the URL's credentials.
impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox").field("dir", &self.inner.spool.dir()).field("pending", &self.pending()).finish()
    }
}

impl Outbox {
    /// Opens (creates) the spool, locks it, and starts the delivery task, which first sends what
    /// the spool holds.
    pub async fn start(config: OutboxConfig) -> Result<Outbox, RecordsError> {
        let dir = config.dir.clone();
        let worker = config.worker.clone();
        let (spool, waiting) = blocking(&config.dir, move || {
            let spool = match worker {
                Some(worker) => workers::open_shared(&dir, &worker)?,
                None => Spool::open(&dir)?,
            };
            let waiting = spool.list()?;
            Ok((spool, waiting))
        })
        .await?;
        let spool = Arc::new(spool);
        let counts = Arc::new(watch::Sender::new(Counts { pending: waiting.len(), ..Counts::default() }));
        let (stop, stopped) = watch::channel(false);
        let shown = spool.dir().display().to_string();
        let (queue, task) = match config.url {
            None => {
                tracing::warn!(
                    dir = %shown,
                    waiting = waiting.len(),
                    "N8N_BASE_URL is not set: call records are kept in the spool and not sent to n8n"
                );
                (None, None)
            }
            Some(url) => {
                // Its own client, as redirects must not be followed (see `backoff::classify`) and
                // that is a setting of the whole client in reqwest.
                let http = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| RecordsError::Client { reason: e.to_string() })?;
                tracing::info!(dir = %shown, waiting = waiting.len(), endpoint = %without_credentials(&url), "sending call records to n8n");
                let (queue, submitted) = mpsc::unbounded_channel();
                let delivery = Delivery {
                    spool: spool.clone(),
                    http,
                    url,
                    secret: config.secret,
                    timeout: config.timeout,
                    keep_delivered: config.keep_delivered,
                    schedule: Schedule::new(Backoff { first: config.first_retry, cap: config.max_retry }),
                    submitted,
                    stopped,
                    counts: counts.clone(),
                };
                (Some(queue), Some(tokio::spawn(delivery.run(waiting))))
            }
        };
        Ok(Outbox { inner: Arc::new(Inner { spool, counts, queue, stop, task: Mutex::new(task) }) })
    }

    /// Durably stores the record and queues it; returns once it is on disk. After `close` it is
    /// still stored, and sent by the next process that opens the spool.
    /// Its call's checkpoint, if it has one, is removed once the record is stored.
    pub async fn submit(&self, id: &str, body: Vec<u8>) -> Result<(), RecordsError> {
        let id = RecordId::parse(id)?;
        let spool = self.inner.spool.clone();
        let stored = id.clone();
        blocking(self.inner.spool.dir(), move || {
            spool.put(&stored, &body)?;
            spool.remove_active(&stored)
        })
        .await?;
        self.queue(id);
        Ok(())
    }

    /// Checkpoints for the running call `id`, so that its record survives the worker's death.
    pub fn active_call(&self, id: &str) -> Result<ActiveCall, RecordsError> {
        Ok(ActiveCall::new(self.clone(), RecordId::parse(id)?))
    }

    pub(super) fn spool(&self) -> &Arc<Spool> {
        &self.inner.spool
    }

    /// Counts a record that is now on disk and hands it to the delivery task.
    pub(super) fn queue(&self, id: RecordId) {
        self.inner.counts.send_modify(|counts| counts.pending += 1);
        tracing::debug!(%id, "call record stored");
        if let Some(queue) = &self.inner.queue {
            // Fails only once the task has stopped; the record then waits on disk.
            let _ = queue.send(id);
        }
    }

    /// Records on disk not yet delivered (including any in flight).
    pub fn pending(&self) -> usize {
        self.inner.counts.borrow().pending
    }

    /// Records delivered and refused since the outbox started.
    pub fn tally(&self) -> Tally {
        self.inner.counts.borrow().tally
    }

    /// Stops delivering; an attempt in flight may finish until `deadline`. Returns by the
    /// deadline: an attempt still going then is abandoned, and its record stays on disk.
    pub async fn close(&self, deadline: Instant) {
        self.inner.stop.send_replace(true);
        let deadline = tokio::time::Instant::from_std(deadline);
        let Ok(mut task) = tokio::time::timeout_at(deadline, self.inner.task.lock()).await else { return };
        let Some(handle) = task.as_mut() else { return };
        if tokio::time::timeout_at(deadline, &mut *handle).await.is_err() {
            handle.abort();
            // Returns at once: the task is cancelled at its pending await (the POST).
            let _ = handle.await;
            tracing::warn!("stopped sending a call record mid-way; it stays in the spool for the next start");
        }
        *task = None;
    }

    /// Resolves when nothing is pending (used by `agent-worker deliver` and tests); while records
    /// wait and nothing sends them (no URL, or closed) it does not resolve.
    pub async fn drained(&self) {
        let mut counts = self.inner.counts.subscribe();
        let _ = counts.wait_for(|counts| counts.pending == 0).await;
    }
}

/// Runs blocking file work off the async threads, so a slow disk never stalls calls.
pub(super) async fn blocking<T: Send + 'static>(
    dir: &Path,
    work: impl FnOnce() -> Result<T, RecordsError> + Send + 'static,
) -> Result<T, RecordsError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) => Err(RecordsError::Interrupted { dir: dir.to_path_buf(), reason: error.to_string() }),
    }
}

/// N8N_BASE_URL may carry basic-auth credentials; logs get the rest.
fn without_credentials(url: &Url) -> Url {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown
}

/// Where a redirect points, for the log: resolved against the webhook's URL, without credentials
/// (the webhook's own are kept by a relative Location), cut short.
fn moved_to(url: &Url, location: Option<&reqwest::header::HeaderValue>) -> String {
    let Some(location) = location else { return "no Location".to_owned() };
    let Some(target) = location.to_str().ok().and_then(|l| url.join(l).ok()) else {
        return "a Location that is not a URL".to_owned();
    };
    let shown = without_credentials(&target).to_string();
    match shown.char_indices().nth(LOCATION_LOGGED) {
        Some((cut, _)) => format!("{}…", &shown[..cut]),
        None => shown,
    }
}

/// What one POST came to.
struct Outcome {
    verdict: Verdict,
    /// `HTTP 503 Service Unavailable`, or what went wrong on the network.
    what: String,
    /// The start of n8n's answer, when it was not a 2xx.
    answer: String,
}

struct Delivery {
    spool: Arc<Spool>,
    http: reqwest::Client,
    url: Url,
    secret: Option<Secret>,
    timeout: Duration,
    keep_delivered: usize,
    schedule: Schedule,
    submitted: mpsc::UnboundedReceiver<RecordId>,
    stopped: watch::Receiver<bool>,
    counts: Arc<watch::Sender<Counts>>,
}

impl Delivery {
    async fn run(mut self, waiting: Vec<RecordId>) {
        let now = Instant::now();
        for id in waiting {
            self.schedule.add(id, now);
        }
        loop {
            while let Ok(id) = self.submitted.try_recv() {
                self.schedule.add(id, Instant::now());
            }
            // Closed, or every handle is gone: nothing would own this task any more.
            if *self.stopped.borrow() || self.submitted.is_closed() {
                return;
            }
            let wake = match self.schedule.next(Instant::now()) {
                Next::Send(id) => {
                    self.attempt(id).await;
                    continue;
                }
                Next::Wait(at) => Some(at),
                Next::Idle => None,
            };
            tokio::select! {
                () = stop_requested(&mut self.stopped) => return,
                submitted = self.submitted.recv() => match submitted {
                    Some(id) => self.schedule.add(id, Instant::now()),
                    None => return,
                },
                () = sleep_until(wake) => {}
            }
        }
    }

    async fn attempt(&mut self, id: RecordId) {
        let spool = self.spool.clone();
        let reading = id.clone();
        let body = match blocking(self.spool.dir(), move || spool.read(&reading)).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                tracing::warn!(%id, "call record left the spool before n8n had it; someone removed its file");
                self.schedule.forget(&id);
                self.counts.send_modify(|counts| counts.pending = counts.pending.saturating_sub(1));
                return;
            }
            Err(error) => {
                let retry_in = self.again(&id, None, Scope::Record).map(|retry| retry.wait);
                tracing::error!(%id, %error, retry_in = ?retry_in.unwrap_or_default(), "cannot read a call record; will retry");
                return;
            }
        };
        let outcome = self.post(&id, body).await;
        match &outcome.verdict {
            Verdict::Delivered => self.delivered(id).await,
            Verdict::Retry { after, scope } => {
                let Some(retry) = self.again(&id, *after, *scope) else { return };
                let answer = Some(excerpt(&outcome.answer)).filter(|answer| !answer.is_empty());
                tracing::warn!(
                    %id,
                    problem = %outcome.what,
                    answer = answer.as_deref(),
                    failures = retry.failures,
                    retry_in = ?retry.wait,
                    "call record not delivered to n8n yet; will retry"
                );
            }
            Verdict::Dead { reason } => self.bury(id, reason, &outcome).await,
        }
    }

    /// Puts a record that failed back to wait; `None` only for an id the schedule does not hold,
    /// which cannot happen as every id tried comes from it.
    fn again(&mut self, id: &RecordId, after: Option<Duration>, scope: Scope) -> Option<Retry> {
        self.schedule.failed(id, after, scope, Instant::now(), rand::random())
    }

    async fn post(&self, id: &RecordId, body: Vec<u8>) -> Outcome {
        let mut request = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", id.as_str());
        if let Some(secret) = &self.secret {
            request = request.header(signature::HEADER, signature::sign(secret, &body));
        }
        let mut response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) => {
                let what = network_problem(error, self.timeout);
                return Outcome { verdict: backoff::UNREACHABLE, what, answer: String::new() };
            }
        };
        let status = response.status();
        let verdict = backoff::classify(status.as_u16(), retry_after(response.headers()));
        let what = if status.is_redirection() {
            format!(
                "n8n's address moved: HTTP {status} to {}; records wait until N8N_BASE_URL and \
                 N8N_WEBHOOK_LEAD_CAPTURE point at the new address",
                moved_to(&self.url, response.headers().get(LOCATION))
            )
        } else {
            format!("HTTP {status}")
        };
        let answer = match verdict {
            Verdict::Delivered => String::new(),
            // A redirect's page says no more than its Location.
            _ if status.is_redirection() => String::new(),
            _ => read_answer(&mut response).await,
        };
        Outcome { verdict, what, answer }
    }

    async fn delivered(&mut self, id: RecordId) {
        let attempts = self.schedule.settled(&id);
        let spool = self.spool.clone();
        let removing = id.clone();
        let keep = self.keep_delivered;
        if let Err(error) = blocking(self.spool.dir(), move || spool.deliver(&removing, keep)).await {
            tracing::error!(%id, %error, "n8n has the call record, but its file stays; it is sent again at the next start");
        }
        self.counts.send_modify(|counts| {
            counts.pending = counts.pending.saturating_sub(1);
            counts.tally.delivered += 1;
        });
        tracing::info!(%id, attempts, "call record delivered to n8n");
    }

    async fn bury(&mut self, id: RecordId, reason: &str, outcome: &Outcome) {
        let spool = self.spool.clone();
        let burying = id.clone();
        let text = format!("{}\n{reason}\n\n{}", outcome.what, outcome.answer);
        match blocking(self.spool.dir(), move || spool.bury(&burying, &text)).await {
            Ok(path) => {
                self.schedule.settled(&id);
                self.counts.send_modify(|counts| {
                    counts.pending = counts.pending.saturating_sub(1);
                    counts.tally.dead += 1;
                });
                tracing::error!(
                    %id,
                    answer = %outcome.what,
                    body = %excerpt(&outcome.answer),
                    file = %path.display(),
                    "{reason}: the call record is kept in dead/ with n8n's answer and not sent again"
                );
            }
            Err(error) => {
                let retry_in = self.again(&id, None, Scope::Record).map(|retry| retry.wait);
                tracing::error!(
                    %id,
                    %error,
                    retry_in = ?retry_in.unwrap_or_default(),
                    "{reason}, and the call record cannot be moved to dead/; will try again"
                );
            }
        }
    }
}

async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    // An error means every handle is gone, which is a stop too.
    let _ = stopped.wait_for(|stop| *stop).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// What went wrong with a try, for the log: a timeout, or the error's causes without the URL.
fn network_problem(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {timeout:?}");
    }
    crate::net::causes(error)
}

/// Up to `ANSWER_KEPT` bytes of the answer; a broken or slow body keeps what arrived.
async fn read_answer(response: &mut reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < ANSWER_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    kept.truncate(ANSWER_KEPT);
    String::from_utf8_lossy(&kept).into_owned()
}

/// The answer's start on one line, for logs.
fn excerpt(answer: &str) -> String {
    let flat = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(ANSWER_LOGGED) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
