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
//!   status but 2xx. A batch given up on is counted and logged.
//! - **Bounded**: at most [`MAX_QUEUED`] events wait; past it new events
//!   are counted, logged once per outage, and dropped, so a backend that
//!   stays down costs a bounded amount of memory.
//! - **Not flapping**: `user.offline` and `room.vacated` wait
//!   `offline_delay` (`SOCKGATE_WEBHOOK_OFFLINE_DELAY`); a `user.online` or
//!   `room.occupied` for the same user or room within it cancels both, so a
//!   page reload or a deploy's reconnects send neither.
//!
//! This node's events only: in a cluster each node sends its own, and a
//! user with sessions on two nodes is online on each.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use sockgate_core::hooks::happened::{Happened, Watcher};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::app::http::{SIGNATURE_HEADER, sign};
use super::client;

/// Most events one request carries.
pub const MAX_BATCH: usize = 500;
/// Most events waiting (queued, delayed or in a batch being retried).
pub const MAX_QUEUED: usize = 10_000;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// How long `user.offline` and `room.vacated` wait for a return.
    pub offline_delay: Duration,
    /// How long a batch is retried before it is given up.
    pub retry_for: Duration,
    /// Where the delayed events wait over a restart (`user.offline` and
    /// `room.vacated` not yet due at shutdown); `None`: sent at shutdown.
    pub pending_file: Option<PathBuf>,
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
    /// Send what is queued now, delayed events kept for the next start
    /// (or sent, without a file), then answer.
    ShutDown(oneshot::Sender<()>),
}

/// A delayed event kept over a restart.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// When it is due, Unix milliseconds.
    due_ms: u64,
    sent: Sent,
}

/// The node's [`Watcher`]: stamps each event and hands it to the sender
/// task, without waiting.
pub struct Webhooks {
    notes: mpsc::UnboundedSender<Note>,
    wanted: Option<Vec<String>>,
    /// Events waiting, here or in the sender: the bound.
    waiting: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    /// Whether the drop of this outage was logged.
    said_full: Arc<AtomicBool>,
}

impl Webhooks {
    /// The webhooks of `settings`; their sender runs in a task from now on.
    pub fn start(settings: Settings) -> Result<Arc<Self>, String> {
        let url = reqwest::Url::parse(&settings.url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("the scheme {} is not http or https", url.scheme()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let this = Arc::new(Self {
            notes: tx,
            wanted: settings.events.clone(),
            waiting: Arc::default(),
            dropped: Arc::default(),
            said_full: Arc::default(),
        });
        let sender = Sender {
            client: client::build(REQUEST_TIMEOUT)?,
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, &settings.secret),
            settings,
            waiting: this.waiting.clone(),
            dropped: this.dropped.clone(),
            said_full: this.said_full.clone(),
        };
        let queue = sender.load_pending();
        this.waiting
            .fetch_add(queue.delayed.len() as u64, Ordering::Relaxed);
        tokio::spawn(sender.run(rx, queue));
        Ok(this)
    }

    /// On shutdown, after the sessions were ended: sends what is ready,
    /// keeps the delayed events for the next start (a deploy's users come
    /// back within the delay: they are not told offline), waiting at most
    /// `within`.
    pub async fn shut_down(&self, within: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.notes.send(Note::ShutDown(tx)).is_ok() {
            let _ = tokio::time::timeout(within, rx).await;
        }
    }

    /// Events dropped: past the bound, or given up after `retry_for`.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.said_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "sockgate::webhook",
                    max = MAX_QUEUED,
                    "lifecycle events are dropped: {MAX_QUEUED} wait for the webhook already"
                );
            }
            return;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let sent = Sent {
            id: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
            ts: unix_ms(),
            what,
        };
        let _ = self.notes.send(Note::Event(sent));
    }
}

/// The task that batches, delays and sends.
struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
    key: hmac::Key,
    settings: Settings,
    waiting: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    said_full: Arc<AtomicBool>,
}

/// Events on their way: ready to go, and delayed ones by their key.
#[derive(Default)]
struct Queue {
    ready: VecDeque<Sent>,
    /// `user:<id>` or `room:<name>` → the delayed event and when it is due.
    delayed: HashMap<String, (Instant, Sent)>,
}

impl Sender {
    async fn run(self, mut notes: mpsc::UnboundedReceiver<Note>, mut queue: Queue) {
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            if queue.ready.is_empty() {
                // Nothing to send: wait for a note, or for the next delayed
                // event to be due.
                let due = queue.delayed.values().map(|(at, _)| *at).min();
                tokio::select! {
                    note = notes.recv() => match note {
                        Some(note) => self.take(&mut queue, note, &mut flushes),
                        None => return,
                    },
                    () = sleep_until(due) => {}
                }
                self.release_due(&mut queue, false);
            } else {
                // Gather what comes within the batch window, then send.
                let until = Instant::now() + self.settings.batch;
                while let Ok(Some(note)) = tokio::time::timeout_at(until, notes.recv()).await {
                    self.take(&mut queue, note, &mut flushes);
                }
                self.release_due(&mut queue, false);
                self.send_ready(&mut queue).await;
            }
            if queue.ready.is_empty() {
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Files one note: an event into the queue (a delayed one under its
    /// key, a return cancelling it), a flush into `flushes`.
    fn take(&self, queue: &mut Queue, note: Note, flushes: &mut Vec<oneshot::Sender<()>>) {
        let sent = match note {
            Note::ShutDown(done) => {
                flushes.push(done);
                if !self.save_pending(queue) {
                    self.release_due(queue, true);
                }
                return;
            }
            Note::Event(sent) => sent,
        };
        match &sent.what {
            Happened::UserOffline { .. } | Happened::RoomVacated { .. } => {
                self.delay(queue, delay_key(&sent.what), sent);
            }
            Happened::UserOnline { user_id } => {
                if self.cancel(queue, &format!("user:{user_id}")) {
                    self.gone(1);
                } else {
                    queue.ready.push_back(sent);
                }
            }
            Happened::RoomOccupied { room } => {
                if self.cancel(queue, &format!("room:{room}")) {
                    self.gone(1);
                } else {
                    queue.ready.push_back(sent);
                }
            }
            _ => queue.ready.push_back(sent),
        }
    }

    fn delay(&self, queue: &mut Queue, key: String, sent: Sent) {
        let at = Instant::now() + self.settings.offline_delay;
        // Cannot replace one (an offline needs an online between, which
        // cancels it), but an older one replaced is one less waiting.
        if queue.delayed.insert(key, (at, sent)).is_some() {
            self.gone(1);
        }
    }

    /// Drops the delayed event under `key`; true if there was one.
    fn cancel(&self, queue: &mut Queue, key: &str) -> bool {
        if queue.delayed.remove(key).is_some() {
            self.gone(1);
            return true;
        }
        false
    }

    /// Writes the delayed events to the pending file and forgets them here;
    /// false without a file (or when it cannot be written).
    fn save_pending(&self, queue: &mut Queue) -> bool {
        let Some(path) = &self.settings.pending_file else {
            return false;
        };
        let now = Instant::now();
        let now_ms = unix_ms();
        let pending: Vec<Pending> = queue
            .delayed
            .drain()
            .map(|(_, (at, sent))| Pending {
                due_ms: now_ms + at.saturating_duration_since(now).as_millis() as u64,
                sent,
            })
            .collect();
        let n = pending.len() as u64;
        let json = serde_json::to_string(&pending).expect("events serialize");
        if let Err(e) = std::fs::write(path, json) {
            tracing::warn!(target: "sockgate::webhook", error = %e, "the delayed lifecycle events could not be kept for the next start");
            // Back into the queue: sent now rather than lost.
            for p in pending {
                let at = now + Duration::from_millis(p.due_ms.saturating_sub(now_ms));
                queue.delayed.insert(delay_key(&p.sent.what), (at, p.sent));
            }
            return false;
        }
        self.gone(n);
        true
    }

    /// The delayed events a previous run kept, still delayed until they are
    /// due; the file is removed.
    fn load_pending(&self) -> Queue {
        let mut queue = Queue::default();
        let Some(path) = &self.settings.pending_file else {
            return queue;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return queue;
        };
        let _ = std::fs::remove_file(path);
        let pending: Vec<Pending> = serde_json::from_str(&text).unwrap_or_default();
        let (now, now_ms) = (Instant::now(), unix_ms());
        for p in pending {
            let at = now + Duration::from_millis(p.due_ms.saturating_sub(now_ms));
            queue.delayed.insert(delay_key(&p.sent.what), (at, p.sent));
        }
        queue
    }

    /// Moves the delayed events that are due (all of them with `all`) to
    /// the ready ones, oldest first.
    fn release_due(&self, queue: &mut Queue, all: bool) {
        let now = Instant::now();
        let mut due: Vec<(Instant, String)> = queue
            .delayed
            .iter()
            .filter(|(_, (at, _))| all || *at <= now)
            .map(|(key, (at, _))| (*at, key.clone()))
            .collect();
        due.sort();
        for (_, key) in due {
            if let Some((_, sent)) = queue.delayed.remove(&key) {
                queue.ready.push_back(sent);
            }
        }
    }

    /// Sends the ready events, a batch at a time, each until it is taken
    /// or given up on.
    async fn send_ready(&self, queue: &mut Queue) {
        while !queue.ready.is_empty() {
            let n = queue.ready.len().min(MAX_BATCH);
            let batch: Vec<Sent> = queue.ready.drain(..n).collect();
            let body = serde_json::to_vec(&serde_json::json!({ "events": batch }))
                .expect("events serialize");
            if !self.deliver(&body).await {
                self.dropped.fetch_add(n as u64, Ordering::Relaxed);
                tracing::warn!(
                    target: "sockgate::webhook",
                    events = n,
                    retry_for = ?self.settings.retry_for,
                    "lifecycle events given up: the webhook did not take them"
                );
            }
            self.gone(n as u64);
        }
    }

    /// POSTs `body` until a 2xx, backing off, for `retry_for`.
    async fn deliver(&self, body: &[u8]) -> bool {
        let give_up = Instant::now() + self.settings.retry_for;
        let mut wait = Duration::from_millis(100);
        let mut said = false;
        loop {
            let signature = sign(&self.key, unix_ms() / 1000, body);
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

    /// `n` events left the queue (sent, cancelled or given up).
    fn gone(&self, n: u64) {
        self.waiting.fetch_sub(n, Ordering::Relaxed);
        if self.waiting.load(Ordering::Relaxed) < MAX_QUEUED as u64 / 2 {
            self.said_full.store(false, Ordering::Relaxed);
        }
    }
}

/// The key a delayed event waits under: its user's or its room's.
fn delay_key(what: &Happened) -> String {
    match what {
        Happened::RoomVacated { room } | Happened::RoomOccupied { room } => format!("room:{room}"),
        Happened::UserOffline { user_id } | Happened::UserOnline { user_id } => {
            format!("user:{user_id}")
        }
        other => other.kind().to_owned(),
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
