//! The figures operators watch, measured by the server itself: what
//! `/api/stats` answers and the dashboard draws. Definitions and targets are
//! in `docs/observability.md`.
//!
//! - Counts (handshakes by outcome, ends by code) run since the node started.
//! - Latencies are percentiles over the last [`LATENCY_WINDOW`] of samples
//!   (at most [`MAX_SAMPLES`]): the time sockgate spends deciding a
//!   handshake (`authLatencyMs`) and managing sessions (`sessionOverheadMs`:
//!   admitting one, forgetting one), never client round trips.
//! - Reconnection: a session *lost* (ended with a retryable code, or its
//!   network failed: a transport error or a missed heartbeat) counts as
//!   *recovered* when its user is connected again, on any node, within
//!   [`RETURN_WINDOW`]; `reconnectMs` is the time from the loss to that
//!   handshake.
//! - Every second a point of the 15-minute series is taken (see [`Point`]).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sockgate_auth::ErrorCode;

use crate::clock::unix_now_ms;

/// How far back the latency percentiles look.
pub const LATENCY_WINDOW: Duration = Duration::from_secs(60);
/// How far back `reconnectMs` looks.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most samples a window keeps; older ones go first.
pub const MAX_SAMPLES: usize = 8192;
/// A lost session must be back within this to count as recovered.
pub const RETURN_WINDOW: Duration = Duration::from_secs(60);
/// Most lost sessions awaited at once; past it the oldest is dropped uncounted.
pub const MAX_AWAITED: usize = 100_000;
/// Points kept of the series: 15 minutes, one a second.
pub const SERIES_POINTS: usize = 15 * 60;

const CODES: usize = ErrorCode::ALL.len();

fn index(code: ErrorCode) -> usize {
    ErrorCode::ALL
        .iter()
        .position(|c| *c == code)
        .expect("ALL holds every code")
}

/// One counter per error code.
struct PerCode([AtomicU64; CODES]);

impl Default for PerCode {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl PerCode {
    fn add(&self, code: ErrorCode) {
        self.0[index(code)].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> [u64; CODES] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// `{ CODE: n }` for the codes that occurred.
pub type ByCode = std::collections::BTreeMap<String, u64>;

fn by_code(counts: &[u64; CODES]) -> ByCode {
    ErrorCode::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| (c.as_str().to_owned(), *n))
        .collect()
}

/// Recent samples of one duration, in milliseconds.
struct Window {
    span: Duration,
    samples: Mutex<VecDeque<(Instant, f64)>>,
}

impl Window {
    fn new(span: Duration) -> Self {
        Self {
            span,
            samples: Mutex::default(),
        }
    }

    fn record(&self, ms: f64) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() == MAX_SAMPLES {
            s.pop_front();
        }
        s.push_back((Instant::now(), ms));
    }

    /// The samples of the last `within`, sorted.
    fn sorted(&self, within: Duration) -> Vec<f64> {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        while s.front().is_some_and(|(at, _)| at.elapsed() > self.span) {
            s.pop_front();
        }
        let mut v: Vec<f64> = s
            .iter()
            .filter(|(at, _)| at.elapsed() <= within)
            .map(|(_, ms)| *ms)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn percentiles(&self) -> Percentiles {
        Percentiles::of(&self.sorted(self.span))
    }
}

/// p50 and p99 in milliseconds; `null` when there is no sample.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// The median, in milliseconds.
    pub p50: Option<f64>,
    /// The 99th percentile, in milliseconds.
    pub p99: Option<f64>,
}

impl Percentiles {
    fn of(sorted: &[f64]) -> Self {
        Self {
            p50: quantile(sorted, 0.50),
            p99: quantile(sorted, 0.99),
        }
    }

    /// The worse of two nodes' figures: percentiles do not add up, and an
    /// operator watches for the slowest node.
    fn worst(self, other: Self) -> Self {
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Self {
            p50: max(self.p50, other.p50),
            p99: max(self.p99, other.p99),
        }
    }
}

/// Nearest-rank quantile, rounded to 3 decimals.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some((sorted[rank - 1] * 1000.0).round() / 1000.0)
}

/// Sessions lost and awaited back, by user (oldest loss first).
#[derive(Default)]
struct Awaited {
    by_user: HashMap<String, VecDeque<u64>>,
    count: usize,
}

/// One awaited return, as kept across a restart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lost {
    /// The user whose session was lost.
    pub user: String,
    /// When it was lost, in Unix milliseconds.
    pub at_ms: u64,
}

/// A point of the dashboard's series.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Unix milliseconds.
    pub t: u64,
    /// Sessions open on this node at that second.
    pub connections: usize,
    /// Handshakes decided during the second, admitted or refused.
    pub handshakes_per_sec: u64,
    /// Handshakes refused during the second, by code.
    pub refusals_per_sec: ByCode,
    /// p99 of the handshakes decided during this second.
    pub auth_p99_ms: Option<f64>,
    /// Calls to the app's backend during the second.
    #[serde(default)]
    pub app_calls_per_sec: u64,
}

/// The counters as of the previous point.
#[derive(Default)]
struct Last {
    ok: u64,
    refused: [u64; CODES],
    app_calls: u64,
}

/// Everything one node measures.
pub struct Stats {
    started: Instant,
    handshakes_ok: AtomicU64,
    refused: PerCode,
    ends: PerCode,
    auth: Window,
    overhead: Window,
    reconnect: Window,
    recovered: AtomicU64,
    not_recovered: AtomicU64,
    awaited: Mutex<Awaited>,
    series: Mutex<(VecDeque<Point>, Last)>,
    app_ok: AtomicU64,
    app_failed: AtomicU64,
    app: Window,
    /// Calls to the app in the last whole second (set by [`Stats::tick`]).
    app_rate: AtomicU64,
    /// The consumers of the app's queues on this node.
    consumers: Mutex<Vec<Arc<ConsumerGauge>>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            handshakes_ok: AtomicU64::new(0),
            refused: PerCode::default(),
            ends: PerCode::default(),
            auth: Window::new(LATENCY_WINDOW),
            overhead: Window::new(LATENCY_WINDOW),
            reconnect: Window::new(RECONNECT_WINDOW),
            recovered: AtomicU64::new(0),
            not_recovered: AtomicU64::new(0),
            awaited: Mutex::default(),
            series: Mutex::default(),
            app_ok: AtomicU64::new(0),
            app_failed: AtomicU64::new(0),
            app: Window::new(LATENCY_WINDOW),
            app_rate: AtomicU64::new(0),
            consumers: Mutex::default(),
        }
    }
}

/// A consumer of one of the app's queues, as `/api/stats` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerFigures {
    /// Its name (`redis:events`, or the `[[consumers]]` entry's).
    pub name: String,
    /// `redis`, `nats`, `amqp` or `postgres`.
    pub kind: String,
    /// `connecting`, `running`, `retrying` (the broker is away) or `stopped`.
    pub state: String,
    /// Messages handled: delivered, joins and leaves.
    pub taken: u64,
    /// Messages whose idempotency key was seen: acknowledged, delivered to nobody.
    pub duplicates: u64,
    /// Messages refused (not a message, a broken rule): logged, counted, acknowledged.
    pub refused: u64,
    /// Times the broker could not be reached or answered an error.
    pub broker_errors: u64,
    /// Messages waiting in the queue, when the broker says.
    pub lag: Option<u64>,
    /// The node it runs on (in `/api/stats`'s `consumers`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// One consumer's live figures, updated as it works.
#[derive(Debug)]
pub struct ConsumerGauge {
    name: String,
    kind: &'static str,
    state: Mutex<&'static str>,
    taken: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
    broker_errors: AtomicU64,
    /// `u64::MAX`: not known.
    lag: AtomicU64,
}

impl ConsumerGauge {
    /// A consumer named `name` of a `kind` broker, connecting.
    pub fn new(name: impl Into<String>, kind: &'static str) -> Self {
        Self {
            name: name.into(),
            kind,
            state: Mutex::new("connecting"),
            taken: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            broker_errors: AtomicU64::new(0),
            lag: AtomicU64::new(u64::MAX),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `connecting`, `running`, `retrying` or `stopped`.
    pub fn set_state(&self, state: &'static str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// A message handled.
    pub fn took(&self) {
        self.taken.fetch_add(1, Ordering::Relaxed);
    }

    /// A message whose key was seen.
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// A message refused.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The broker failed once.
    pub fn broker_error(&self) {
        self.broker_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// What the broker says is waiting.
    pub fn set_lag(&self, lag: Option<u64>) {
        self.lag.store(lag.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Its figures now.
    pub fn figures(&self) -> ConsumerFigures {
        let lag = self.lag.load(Ordering::Relaxed);
        ConsumerFigures {
            name: self.name.clone(),
            kind: self.kind.to_owned(),
            state: (*self.state.lock().unwrap_or_else(|e| e.into_inner())).to_owned(),
            taken: self.taken.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            broker_errors: self.broker_errors.load(Ordering::Relaxed),
            lag: (lag != u64::MAX).then_some(lag),
            node: String::new(),
        }
    }
}

/// One node's figures, as `/api/stats` shows them and as nodes share them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// The node's name among the nodes (`local` for a single node).
    pub id: String,
    /// Sessions open on the node now.
    pub connections: usize,
    /// Handshakes admitted since the node started.
    pub handshakes_ok: u64,
    /// Handshakes refused since the node started, by code.
    pub refused: ByCode,
    /// Sessions the server ended since the node started, by code.
    pub ends: ByCode,
    /// Time spent deciding a handshake, over [`LATENCY_WINDOW`].
    pub auth_latency_ms: Percentiles,
    /// Time spent admitting and forgetting sessions, over [`LATENCY_WINDOW`].
    pub session_overhead_ms: Percentiles,
    /// Lost sessions whose user came back within [`RETURN_WINDOW`].
    pub recovered: u64,
    /// Lost sessions whose user did not come back within [`RETURN_WINDOW`].
    pub not_recovered: u64,
    /// Time from a loss to the recovering handshake, over [`RECONNECT_WINDOW`].
    pub reconnect_ms: Percentiles,
    /// The process's resident memory, in bytes (0 off Linux).
    pub rss_bytes: u64,
    /// `ok`, `unreachable`, or `off` outside a cluster.
    pub redis: String,
    /// Seconds since the node started.
    pub uptime_seconds: u64,
    /// Calls to the app's backend answered since the node started.
    #[serde(default)]
    pub app_calls: u64,
    /// Calls to the app's backend that failed (no answer, not an answer).
    #[serde(default)]
    pub app_errors: u64,
    /// The app's answer time, over [`LATENCY_WINDOW`].
    #[serde(default)]
    pub app_latency_ms: Percentiles,
    /// Calls to the app in the last whole second.
    #[serde(default)]
    pub app_calls_per_sec: u64,
    /// The node's consumers of the app's queues.
    #[serde(default)]
    pub consumers: Vec<ConsumerFigures>,
}

impl Stats {
    /// A call to the app's backend: answered, or failed (a timeout, no
    /// connection, a 5xx, not an answer), and how long it took.
    pub fn app_call(&self, answered: bool, took: Duration) {
        let counter = if answered {
            &self.app_ok
        } else {
            &self.app_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.app.record(took.as_secs_f64() * 1000.0);
    }

    /// A handshake decided: `Ok` or the code it was refused with.
    pub fn handshake(&self, outcome: Result<(), ErrorCode>, took: Duration) {
        match outcome {
            Ok(()) => {
                self.handshakes_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(code) => self.refused.add(code),
        }
        self.auth.record(took.as_secs_f64() * 1000.0);
    }

    /// Time spent admitting or forgetting a session.
    pub fn overhead(&self, took: Duration) {
        self.overhead.record(took.as_secs_f64() * 1000.0);
    }

    /// A session the server ended, with its code.
    pub fn ended(&self, code: ErrorCode) {
        self.ends.add(code);
    }

    /// A session of `user` lost at `at_ms`: awaited back for [`RETURN_WINDOW`].
    pub fn lost(&self, user: &str, at_ms: u64) {
        let mut a = self.awaited.lock().unwrap_or_else(|e| e.into_inner());
        if a.count >= MAX_AWAITED {
            return;
        }
        a.by_user
            .entry(user.to_owned())
            .or_default()
            .push_back(at_ms);
        a.count += 1;
    }

    /// A handshake of `user` succeeded at `now_ms`: the oldest of its lost
    /// sessions still in the window is recovered.
    pub fn returned(&self, user: &str, now_ms: u64) {
        let at = {
            let mut a = self.awaited.lock().unwrap_or_else(|e| e.into_inner());
            let Some(queue) = a.by_user.get_mut(user) else {
                return;
            };
            let at = queue.pop_front();
            if queue.is_empty() {
                a.by_user.remove(user);
            }
            if at.is_some() {
                a.count -= 1;
            }
            at
        };
        if let Some(at) = at {
            self.recover(now_ms.saturating_sub(at));
        }
    }

    fn recover(&self, after_ms: u64) {
        self.recovered.fetch_add(1, Ordering::Relaxed);
        self.reconnect.record(after_ms as f64);
    }

    /// Takes the lost sessions whose window has passed. The caller decides
    /// each (see [`Stats::settle`]): in a cluster the user may be back on
    /// another node.
    pub fn overdue(&self, now_ms: u64) -> Vec<Lost> {
        let limit = RETURN_WINDOW.as_millis() as u64;
        let mut a = self.awaited.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        a.by_user.retain(|user, queue| {
            while queue
                .front()
                .is_some_and(|at| now_ms.saturating_sub(*at) > limit)
            {
                let at_ms = queue.pop_front().expect("front exists");
                out.push(Lost {
                    user: user.clone(),
                    at_ms,
                });
            }
            !queue.is_empty()
        });
        a.count -= out.len();
        out
    }

    /// Decides an overdue loss: back after `back_ms`, or not back at all.
    pub fn settle(&self, back_after_ms: Option<u64>) {
        match back_after_ms {
            Some(ms) => self.recover(ms),
            None => {
                self.not_recovered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Every awaited loss, for the next process to go on awaiting (a
    /// restart is when most losses happen).
    pub fn awaited(&self) -> Vec<Lost> {
        let a = self.awaited.lock().unwrap_or_else(|e| e.into_inner());
        a.by_user
            .iter()
            .flat_map(|(user, q)| {
                q.iter().map(|at_ms| Lost {
                    user: user.clone(),
                    at_ms: *at_ms,
                })
            })
            .collect()
    }

    /// Writes the awaited losses to `path` (best effort).
    pub fn save_awaited(&self, path: &Path) {
        let lost = self.awaited();
        if lost.is_empty() {
            return;
        }
        if let Err(e) = serde_json::to_vec(&lost).map(|json| std::fs::write(path, json)) {
            tracing::warn!(error = %e, "could not keep the sessions awaited back");
        }
    }

    /// Awaits again what a previous process saved at `path`, then removes it.
    pub fn load_awaited(&self, path: &Path) {
        let Ok(json) = std::fs::read(path) else {
            return;
        };
        let _ = std::fs::remove_file(path);
        let now = unix_now_ms();
        let limit = RETURN_WINDOW.as_millis() as u64;
        for lost in serde_json::from_slice::<Vec<Lost>>(&json).unwrap_or_default() {
            if now.saturating_sub(lost.at_ms) <= limit {
                self.lost(&lost.user, lost.at_ms);
            } else {
                self.settle(None);
            }
        }
    }

    /// This node's figures now.
    pub fn node(&self, id: &str, connections: usize, redis: &str) -> NodeStats {
        NodeStats {
            id: id.to_owned(),
            connections,
            handshakes_ok: self.handshakes_ok.load(Ordering::Relaxed),
            refused: by_code(&self.refused.snapshot()),
            ends: by_code(&self.ends.snapshot()),
            auth_latency_ms: self.auth.percentiles(),
            session_overhead_ms: self.overhead.percentiles(),
            recovered: self.recovered.load(Ordering::Relaxed),
            not_recovered: self.not_recovered.load(Ordering::Relaxed),
            reconnect_ms: self.reconnect.percentiles(),
            rss_bytes: rss_bytes(),
            redis: redis.to_owned(),
            uptime_seconds: self.started.elapsed().as_secs(),
            app_calls: self.app_ok.load(Ordering::Relaxed)
                + self.app_failed.load(Ordering::Relaxed),
            app_errors: self.app_failed.load(Ordering::Relaxed),
            app_latency_ms: self.app.percentiles(),
            app_calls_per_sec: self.app_rate.load(Ordering::Relaxed),
            consumers: self.consumer_figures(),
        }
    }

    /// Shows `gauge` in the node's figures.
    pub fn add_consumer(&self, gauge: Arc<ConsumerGauge>) {
        self.consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(gauge);
    }

    fn consumer_figures(&self) -> Vec<ConsumerFigures> {
        let gauges = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        gauges.iter().map(|g| g.figures()).collect()
    }

    /// Takes this second's point and keeps the last [`SERIES_POINTS`].
    pub fn tick(&self, connections: usize) -> Point {
        let ok = self.handshakes_ok.load(Ordering::Relaxed);
        let refused = self.refused.snapshot();
        let second = self.auth.sorted(Duration::from_secs(1));
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let (points, last) = &mut *series;
        let refused_delta: [u64; CODES] = std::array::from_fn(|i| refused[i] - last.refused[i]);
        let app_calls =
            self.app_ok.load(Ordering::Relaxed) + self.app_failed.load(Ordering::Relaxed);
        let app_per_sec = app_calls - last.app_calls;
        self.app_rate.store(app_per_sec, Ordering::Relaxed);
        let point = Point {
            t: unix_now_ms(),
            connections,
            handshakes_per_sec: (ok - last.ok) + refused_delta.iter().sum::<u64>(),
            refusals_per_sec: by_code(&refused_delta),
            auth_p99_ms: quantile(&second, 0.99),
            app_calls_per_sec: app_per_sec,
        };
        *last = Last {
            ok,
            refused,
            app_calls,
        };
        if points.len() == SERIES_POINTS {
            points.pop_front();
        }
        points.push_back(point.clone());
        point
    }

    /// The series, oldest point first.
    pub fn history(&self) -> Vec<Point> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.0.iter().cloned().collect()
    }
}

/// The cluster-wide figures: counts summed over the nodes, latencies the
/// worst node's.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Sessions open now, summed over the nodes.
    pub connections: usize,
    /// Handshake decisions, summed over the nodes.
    pub handshakes: Handshakes,
    /// `ok / (ok + refused)`, 4 decimals; `None` before the first handshake.
    pub auth_success_rate: Option<f64>,
    /// The slowest node's handshake decision time.
    pub auth_latency_ms: Percentiles,
    /// The slowest node's session-management time.
    pub session_overhead_ms: Percentiles,
    /// `recovered / (recovered + not recovered)`, 4 decimals; `None` until
    /// a loss was decided.
    pub reconnection_success_rate: Option<f64>,
    /// The slowest node's time to recover from a loss; `None` when no
    /// recovery was measured within [`RECONNECT_WINDOW`].
    pub reconnect_ms: Option<Percentiles>,
    /// Sessions the server ended, by code, summed over the nodes.
    pub ends: ByCode,
    /// The longest uptime of the nodes, in seconds.
    pub uptime_seconds: u64,
    /// The app's backend, as the nodes call it.
    pub app: AppFigures,
    /// The consumers of the app's queues, on every node.
    pub consumers: Vec<ConsumerFigures>,
    /// Each node's own figures, this node first.
    pub nodes: Vec<NodeStats>,
}

/// Calls to the app's backend ([`crate::hooks`]), over the nodes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppFigures {
    /// Calls since the nodes started.
    pub calls: u64,
    /// Failed calls (no answer in time, unreachable, a 5xx, not an answer).
    pub errors: u64,
    /// `errors / calls`, 4 decimals; `None` before the first call.
    pub error_rate: Option<f64>,
    /// The slowest node's answer time.
    pub latency_ms: Percentiles,
    /// Calls in the last whole second, summed over the nodes.
    pub calls_per_sec: u64,
}

/// Handshake decisions since the nodes started.
#[derive(Debug, Clone, Serialize)]
pub struct Handshakes {
    /// Admitted.
    pub ok: u64,
    /// Refused, by code.
    pub refused: ByCode,
}

fn add_into(total: &mut ByCode, more: &ByCode) {
    for (code, n) in more {
        *total.entry(code.clone()).or_default() += n;
    }
}

fn ratio(good: u64, bad: u64) -> Option<f64> {
    let all = good + bad;
    (all > 0).then(|| ((good as f64 / all as f64) * 10_000.0).round() / 10_000.0)
}

impl Summary {
    /// The sum of `nodes`' figures (the first is the node answering).
    pub fn of(nodes: Vec<NodeStats>) -> Self {
        let mut refused = ByCode::new();
        let mut ends = ByCode::new();
        let mut auth = Percentiles::default();
        let mut overhead = Percentiles::default();
        let mut reconnect = Percentiles::default();
        let (mut ok, mut recovered, mut not_recovered, mut connections) = (0, 0, 0, 0);
        for n in &nodes {
            ok += n.handshakes_ok;
            recovered += n.recovered;
            not_recovered += n.not_recovered;
            connections += n.connections;
            add_into(&mut refused, &n.refused);
            add_into(&mut ends, &n.ends);
            auth = auth.worst(n.auth_latency_ms);
            overhead = overhead.worst(n.session_overhead_ms);
            reconnect = reconnect.worst(n.reconnect_ms);
        }
        let refused_total: u64 = refused.values().sum();
        let app_calls: u64 = nodes.iter().map(|n| n.app_calls).sum();
        let app_errors: u64 = nodes.iter().map(|n| n.app_errors).sum();
        let app = AppFigures {
            calls: app_calls,
            errors: app_errors,
            error_rate: ratio(app_errors, app_calls - app_errors),
            latency_ms: nodes
                .iter()
                .fold(Percentiles::default(), |w, n| w.worst(n.app_latency_ms)),
            calls_per_sec: nodes.iter().map(|n| n.app_calls_per_sec).sum(),
        };
        Self {
            connections,
            auth_success_rate: ratio(ok, refused_total),
            handshakes: Handshakes { ok, refused },
            auth_latency_ms: auth,
            session_overhead_ms: overhead,
            reconnection_success_rate: ratio(recovered, not_recovered),
            reconnect_ms: reconnect.p50.is_some().then_some(reconnect),
            ends,
            uptime_seconds: nodes.iter().map(|n| n.uptime_seconds).max().unwrap_or(0),
            app,
            consumers: nodes
                .iter()
                .flat_map(|n| {
                    n.consumers.iter().map(|c| ConsumerFigures {
                        node: n.id.clone(),
                        ..c.clone()
                    })
                })
                .collect(),
            nodes,
        }
    }
}

/// This process's resident memory (Linux), else 0.
fn rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_the_success_rate_are_exact() {
        let s = Stats::default();
        for _ in 0..10 {
            s.handshake(Ok(()), Duration::from_micros(200));
        }
        for _ in 0..3 {
            s.handshake(Err(ErrorCode::TokenExpired), Duration::from_micros(100));
        }
        for _ in 0..2 {
            s.handshake(Err(ErrorCode::TokenInvalid), Duration::from_micros(100));
        }
        let sum = Summary::of(vec![s.node("n", 9, "off")]);
        assert_eq!(sum.handshakes.ok, 10);
        assert_eq!(sum.handshakes.refused["TOKEN_EXPIRED"], 3);
        assert_eq!(sum.handshakes.refused["TOKEN_INVALID"], 2);
        assert_eq!(sum.auth_success_rate, Some(0.6667));
        assert_eq!(sum.auth_latency_ms.p50, Some(0.2));
        assert_eq!(sum.reconnection_success_rate, None);
        assert!(sum.reconnect_ms.is_none());
    }

    #[test]
    fn a_lost_session_is_recovered_once_by_its_user_within_the_window() {
        let s = Stats::default();
        s.lost("alice", 1_000);
        s.lost("alice", 1_500);
        s.lost("bob", 1_000);
        s.returned("carol", 2_000);
        s.returned("alice", 2_000);
        assert!(s.overdue(2_000 + RETURN_WINDOW.as_millis() as u64).len() == 2);
        let node = s.node("n", 0, "off");
        assert_eq!(node.recovered, 1);
        assert_eq!(node.reconnect_ms.p50, Some(1000.0));
    }

    #[test]
    fn overdue_losses_are_settled_by_the_caller_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("sockgate-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("awaited.json");
        let s = Stats::default();
        let now = unix_now_ms();
        s.lost("alice", now);
        s.lost("bob", now - RETURN_WINDOW.as_millis() as u64 - 1);
        s.save_awaited(&path);
        let next = Stats::default();
        next.load_awaited(&path);
        assert!(!path.exists());
        next.returned("alice", now + 1_200);
        for lost in next.overdue(now + RETURN_WINDOW.as_millis() as u64 + 1) {
            next.settle(None);
            assert_eq!(
                lost.user, "nobody",
                "alice was back, bob was settled at load"
            );
        }
        let sum = Summary::of(vec![next.node("n", 1, "off")]);
        assert_eq!(sum.reconnection_success_rate, Some(0.5));
        assert_eq!(sum.reconnect_ms.unwrap().p99, Some(1200.0));
    }

    #[test]
    fn a_point_a_second_with_the_deltas() {
        let s = Stats::default();
        s.handshake(Ok(()), Duration::from_millis(1));
        s.handshake(Err(ErrorCode::RateLimited), Duration::from_millis(2));
        let p = s.tick(1);
        assert_eq!(p.handshakes_per_sec, 2);
        assert_eq!(p.refusals_per_sec["RATE_LIMITED"], 1);
        assert_eq!(p.auth_p99_ms, Some(2.0));
        let p = s.tick(1);
        assert_eq!(p.handshakes_per_sec, 0);
        assert!(p.refusals_per_sec.is_empty());
        assert_eq!(s.history().len(), 2);
    }
}
