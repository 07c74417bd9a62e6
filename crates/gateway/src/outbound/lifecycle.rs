//! Lifecycle webhooks: what happens to sessions, users and rooms
//! ([`Happened`]), POSTed to the app in signed batches,
//! `{ "events": [{ "type", "id", "ts", … }] }`, with the `Sockgate-Signature`
//! of the event proxy.
//!
//! - **Batched**: events wait up to `batch` (`SOCKGATE_WEBHOOK_BATCH_MS`)
//!   and go out together, at most [`MAX_BATCH`] a request.
//! - **In order**: one request at a time; a batch is retried until it is
//!   taken, so nothing overtakes it.
//! - **Retried** with a backoff (100 ms, doubling to 10 s) for `retry_for`
//!   (`SOCKGATE_WEBHOOK_RETRY_FOR`): on a network error, a timeout, or any
//!   status but 2xx. A batch given up on is counted
//!   (`sockgate_webhook_events_dropped_total{reason="given_up"}`) and logged.
//! - **Bounded**: at most [`MAX_QUEUED`] events wait on a node, and
//!   [`MAX_SHARED`] in a cluster's queue; past it new events are counted
//!   (`reason="full"`), logged once per outage, and dropped, so a backend
//!   that stays down costs a bounded amount of memory.
//! - **Shared in a cluster**: the nodes append their events to one queue
//!   in Redis ([`SharedQueue`]), and one node at a time (the holder of a
//!   lease) sends it; when that node dies another takes the lease and
//!   sends what is left, the dead node's events included.
//!
//! The node tells its events once for the cluster, delays included
//! (`user.offline` after the offline delay, cancelled by a return): see
//! `sockgate_core::backend::census`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use sockgate_core::BoxFuture;
use sockgate_core::clock::unix_now_ms;
use sockgate_core::hooks::happened::{Happened, Watcher};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::app::http::{SIGNATURE_HEADER, sign};
use super::client;
use crate::telemetry;

/// Most events one request carries.
pub const MAX_BATCH: usize = 500;
/// Most events waiting on a node (queued, or in a batch being retried).
pub const MAX_QUEUED: usize = 10_000;
/// Most events the cluster's shared queue holds (in Redis, about 300 bytes
/// each). Larger than a node's: while a dead sender's lease runs out (6 s)
/// nobody sends, and a rolling restart of 10,000 clients queued 20,000
/// events meanwhile; a bound of 10,000 dropped a quarter of them.
pub const MAX_SHARED: usize = 100_000;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a node waits before it asks the shared queue again, when it is
/// empty or another node sends it.
const SHARED_IDLE: Duration = Duration::from_millis(200);
/// How often the sending node renews its lease (which lasts three times
/// as long).
const LEASE_RENEWAL: Duration = Duration::from_secs(2);

/// The webhook's settings (`SOCKGATE_WEBHOOK_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the batches go.
    pub url: String,
    /// What they are signed with (at least 32 bytes).
    pub secret: Vec<u8>,
    /// The event types sent; `None`: all.
    pub events: Option<Vec<String>>,
    /// How long events wait to go out together.
    pub batch: Duration,
    /// How long a batch is retried before it is given up.
    pub retry_for: Duration,
}

/// The queue a cluster's nodes share, so that any of them sends what a
/// dead one queued (the gateway's is a Redis stream).
pub trait SharedQueue: Send + Sync + 'static {
    /// Appends `events` (each as JSON) while the queue holds fewer than
    /// `max`; how many were taken, in order.
    fn push<'a>(&'a self, events: &'a [String], max: usize)
    -> BoxFuture<'a, Result<usize, String>>;
    /// Whether this node sends the queue now: takes or renews the lease.
    fn lead(&self) -> BoxFuture<'_, Result<bool, String>>;
    /// The oldest `n` events: their ids in the queue, and their JSON
    /// (empty for an entry that is not an event).
    fn peek(&self, n: usize) -> BoxFuture<'_, Result<Vec<(String, String)>, String>>;
    /// Removes sent (or given up) events.
    fn remove<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), String>>;
    /// Gives the lease up, if this node holds it: a stopping node's
    /// successor sends at once, not when the lease runs out.
    fn release(&self) -> BoxFuture<'_, ()>;
}

/// One event as sent.
#[derive(Serialize, Deserialize)]
struct Sent {
    id: String,
    ts: u64,
    #[serde(flatten)]
    what: Happened,
}

/// What the node's watcher hands the sender.
enum Note {
    Event(Sent),
    /// Send (or queue, in a cluster) what is here now, then answer.
    ShutDown(oneshot::Sender<()>),
}

/// The node's [`Watcher`]: stamps each event and hands it to the sender
/// task, without waiting.
pub struct Webhooks {
    notes: mpsc::UnboundedSender<Note>,
    wanted: Option<Vec<String>>,
    /// Events waiting here, in the sender: the bound.
    waiting: Arc<AtomicU64>,
    /// Whether the drop of this outage was logged.
    said_full: Arc<AtomicBool>,
    /// The cluster's queue, when there is one.
    shared: Option<Arc<dyn SharedQueue>>,
    /// Set on shutdown: this node no longer takes the lease.
    stopped: Arc<AtomicBool>,
}

impl Webhooks {
    /// The webhooks of `settings`, sent by this node, or through `shared`
    /// in a cluster; their tasks run from now on.
    pub fn start(
        settings: Settings,
        shared: Option<Arc<dyn SharedQueue>>,
    ) -> Result<Arc<Self>, String> {
        let url = reqwest::Url::parse(&settings.url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("the scheme {} is not http or https", url.scheme()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let this = Arc::new(Self {
            notes: tx,
            wanted: settings.events.clone(),
            waiting: Arc::default(),
            said_full: Arc::default(),
            shared: shared.clone(),
            stopped: Arc::default(),
        });
        let poster = Arc::new(Poster {
            stopped: this.stopped.clone(),
            client: client::build(REQUEST_TIMEOUT)?,
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, &settings.secret),
            settings,
        });
        let sender = Sender {
            poster: poster.clone(),
            shared: shared.clone(),
            waiting: this.waiting.clone(),
            said_full: this.said_full.clone(),
        };
        tokio::spawn(sender.run(rx));
        if let Some(shared) = shared {
            tokio::spawn(poster.send_shared(shared));
        }
        Ok(this)
    }

    /// On shutdown, after the sessions were ended and their events told:
    /// sends (or, in a cluster, queues) what is here, waiting at most
    /// `within`.
    pub async fn shut_down(&self, within: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.notes.send(Note::ShutDown(tx)).is_ok() {
            let _ = tokio::time::timeout(within, rx).await;
        }
        if let Some(shared) = &self.shared {
            self.stopped.store(true, Ordering::Relaxed);
            shared.release().await;
        }
    }
}

impl Watcher for Webhooks {
    fn happened(&self, what: Happened) {
        if let Some(wanted) = &self.wanted
            && !wanted.iter().any(|w| w == what.kind())
        {
            return;
        }
        if self.waiting.load(Ordering::Relaxed) >= MAX_QUEUED as u64 {
            count_dropped(&self.said_full, 1);
            return;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let sent = Sent {
            id: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
            ts: unix_now_ms(),
            what,
        };
        let _ = self.notes.send(Note::Event(sent));
    }
}

/// Counts `n` events dropped at the bound, and says so once per outage.
fn count_dropped(said_full: &AtomicBool, n: u64) {
    telemetry::webhook_events_dropped("full", n);
    if !said_full.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target: "sockgate::webhook",
            max = MAX_QUEUED,
            "lifecycle events are dropped: {MAX_QUEUED} wait for the webhook already"
        );
    }
}

/// The task that gathers the events into batches, and sends them (or
/// queues them, in a cluster).
struct Sender {
    poster: Arc<Poster>,
    shared: Option<Arc<dyn SharedQueue>>,
    waiting: Arc<AtomicU64>,
    said_full: Arc<AtomicBool>,
}

impl Sender {
    async fn run(self, mut notes: mpsc::UnboundedReceiver<Note>) {
        let mut ready: VecDeque<Sent> = VecDeque::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            if ready.is_empty() {
                match notes.recv().await {
                    Some(note) => take(&mut ready, note, &mut flushes),
                    None => return,
                }
            } else {
                // Gather what comes within the batch window, then send.
                let until = Instant::now() + self.poster.settings.batch;
                while let Ok(Some(note)) = tokio::time::timeout_at(until, notes.recv()).await {
                    take(&mut ready, note, &mut flushes);
                }
                match &self.shared {
                    Some(shared) => self.queue_ready(shared.as_ref(), &mut ready).await,
                    None => self.send_ready(&mut ready).await,
                }
            }
            if ready.is_empty() {
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Sends the ready events, a batch at a time, each until it is taken
    /// or given up on.
    async fn send_ready(&self, ready: &mut VecDeque<Sent>) {
        while !ready.is_empty() {
            let n = ready.len().min(MAX_BATCH);
            let batch: Vec<String> = ready.drain(..n).map(|e| to_json(&e)).collect();
            self.poster.post_or_give_up(&batch).await;
            self.gone(n as u64);
        }
    }

    /// Appends the ready events to the cluster's queue; what it could not
    /// take yet (Redis away) waits here for the next round.
    async fn queue_ready(&self, shared: &dyn SharedQueue, ready: &mut VecDeque<Sent>) {
        while !ready.is_empty() {
            let n = ready.len().min(MAX_BATCH);
            let batch: Vec<String> = ready.iter().take(n).map(to_json).collect();
            match shared.push(&batch, MAX_SHARED).await {
                Ok(taken) => {
                    ready.drain(..n);
                    if taken < n {
                        count_dropped(&self.said_full, (n - taken) as u64);
                    }
                    self.gone(n as u64);
                }
                Err(e) => {
                    tracing::debug!(target: "sockgate::webhook", error = %e, "lifecycle events not queued yet; retrying");
                    tokio::time::sleep(SHARED_IDLE).await;
                    return;
                }
            }
        }
    }

    /// `n` events left this node (sent, queued or given up).
    fn gone(&self, n: u64) {
        self.waiting.fetch_sub(n, Ordering::Relaxed);
        if self.waiting.load(Ordering::Relaxed) < MAX_QUEUED as u64 / 2 {
            self.said_full.store(false, Ordering::Relaxed);
        }
    }
}

/// Files one note: an event into the ready ones, a flush into `flushes`.
fn take(ready: &mut VecDeque<Sent>, note: Note, flushes: &mut Vec<oneshot::Sender<()>>) {
    match note {
        Note::Event(sent) => ready.push_back(sent),
        Note::ShutDown(done) => flushes.push(done),
    }
}

fn to_json(sent: &Sent) -> String {
    serde_json::to_string(sent).expect("events serialize")
}

/// Signs and POSTs batches.
struct Poster {
    client: reqwest::Client,
    url: reqwest::Url,
    key: hmac::Key,
    settings: Settings,
    stopped: Arc<AtomicBool>,
}

impl Poster {
    /// POSTs `events` until taken; counts and logs them when given up.
    async fn post_or_give_up(&self, events: &[String]) {
        if events.is_empty() {
            return;
        }
        let body = format!("{{\"events\":[{}]}}", events.join(","));
        if !self.deliver(body.as_bytes()).await {
            telemetry::webhook_events_dropped("given_up", events.len() as u64);
            tracing::warn!(
                target: "sockgate::webhook",
                events = events.len(),
                retry_for = ?self.settings.retry_for,
                "lifecycle events given up: the webhook did not take them"
            );
        }
    }

    /// Sends the cluster's queue while this node holds the lease, forever.
    /// A batch is removed once taken (or given up); a node that loses the
    /// lease mid-batch stops, and the next holder sends the batch again
    /// (at least once: receivers dedupe by `id`).
    async fn send_shared(self: Arc<Self>, shared: Arc<dyn SharedQueue>) {
        loop {
            if self.stopped.load(Ordering::Relaxed) {
                return;
            }
            let batch = match shared.lead().await {
                Ok(true) => shared.peek(MAX_BATCH).await.unwrap_or_default(),
                Ok(false) => Vec::new(),
                Err(e) => {
                    tracing::debug!(target: "sockgate::webhook", error = %e, "the webhook lease was not read; next round");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::time::sleep(SHARED_IDLE).await;
                continue;
            }
            let (ids, events): (Vec<String>, Vec<String>) = batch.into_iter().unzip();
            // An entry that is not an event (written by hand: another field,
            // not JSON) goes, unsent: it would spoil its whole batch.
            let events: Vec<String> = events.into_iter().filter(|e| is_event(e)).collect();
            tokio::select! {
                () = self.post_or_give_up(&events) => {
                    if let Err(e) = shared.remove(&ids).await {
                        tracing::debug!(target: "sockgate::webhook", error = %e, "sent lifecycle events not removed; they go again");
                    }
                }
                () = keep_lease(shared.as_ref()) => {}
            }
        }
    }

    /// POSTs `body` until a 2xx, backing off, for `retry_for`.
    async fn deliver(&self, body: &[u8]) -> bool {
        let give_up = Instant::now() + self.settings.retry_for;
        let mut wait = Duration::from_millis(100);
        let mut said = false;
        loop {
            let signature = sign(&self.key, unix_now_ms() / 1000, body);
            let answer = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature)
                .body(body.to_vec())
                .send()
                .await;
            let why = match answer {
                // The body is not read: a huge one costs nothing.
                Ok(res) if res.status().is_success() => return true,
                Ok(res) => format!("HTTP {}", res.status().as_u16()),
                Err(e) => client::describe(e),
            };
            if !said {
                said = true;
                tracing::warn!(target: "sockgate::webhook", reason = %why, "the webhook did not take a batch; retrying");
            }
            if Instant::now() + wait > give_up {
                return false;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }
}

/// Whether a queued entry is an event as this module writes them.
fn is_event(json: &str) -> bool {
    serde_json::from_str::<Sent>(json).is_ok()
}

/// Renews the lease while a batch is sent; returns when it is lost.
async fn keep_lease(shared: &dyn SharedQueue) {
    loop {
        tokio::time::sleep(LEASE_RENEWAL).await;
        if !matches!(shared.lead().await, Ok(true)) {
            tracing::debug!(target: "sockgate::webhook", "the webhook lease was lost mid-batch; its next holder sends it");
            return;
        }
    }
}
