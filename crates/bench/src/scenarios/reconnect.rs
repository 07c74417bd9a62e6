//! `reconnect`: N clients connect (each with its own fresh token; with
//! [`Setup::peers`] they alternate between the nodes), then the server is
//! restarted by a shell command (`sh -c`, spawned, not awaited; t0 = the
//! moment it is spawned), and the scenario waits until every client that
//! lost its connection is connected again, or until `window` after t0.
//!
//! Each client behaves like the official socket.io-client 4.x with its
//! default options, on the WebSocket transport (as with
//! `transports: ["websocket"]`):
//!
//! - a closed transport (WebSocket or Engine.IO close, EOF, reset, an
//!   undecodable frame) without a Socket.IO DISCONNECT packet starts
//!   reconnecting, each attempt after [`backoff_delay`]: 1 s × 2^attempt,
//!   ± up to half of that at random, at most 5 s;
//! - every attempt presents a fresh token, as an `auth` callback would
//!   (minted tokens only: a `--tokens-file` token is presented again);
//! - an attempt that fails is retried after the next delay: connection
//!   refused, an HTTP answer other than 101 (a 429 or 503: its
//!   `Retry-After` is ignored, as socket.io-client ignores it), a drop or a
//!   timeout before the CONNECT reply. The backoff counts from 0 again once
//!   a transport has opened (the Engine.IO open packet arrived):
//!   socket.io-client's manager counts the reconnection as done at that
//!   point and resets its backoff, and resets it again when that transport
//!   closes;
//! - a CONNECT_ERROR (`44`) or a DISCONNECT (`41`) from the server ends the
//!   client for good: socket.io-client does not retry those (`given_up`);
//! - Engine.IO pings are answered; events are ignored (the codes of the
//!   `session:end` events received are counted, for the report).
//!
//! Per client, its *disconnect* is the first loss of its connection, and it
//! is *back* when it is connected at the end of the wait; its return time
//! is from its disconnect to the CONNECT reply that ended its last outage.
//! A client that was never disconnected is not counted as back.
//!
//! The wait ends at `window` after t0, or earlier once the command has
//! exited (at least [`SETTLE`] ago) and no disconnected client is still
//! trying. Waiting for the command matters for a rolling restart, where
//! the clients of the second node lose their connection only after those
//! of the first one are back.

use sockgate_protocol::events::server;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{CLOSE_GRACE, to_value};
use crate::fleet::{self, Pace};
use crate::protocol::{Inbound, token_auth};
use crate::report::{Better, Errors, Metric};
use crate::stats::{Summary, percentile};
use crate::{Client, Conn, ConnError, Gate, Report, Setup, Tokens, now_us};

/// socket.io-client's `reconnectionDelay` default, ms.
pub const DELAY_MS: f64 = 1000.0;
/// socket.io-client's `reconnectionDelayMax` default, ms.
pub const DELAY_MAX_MS: f64 = 5000.0;
/// socket.io-client's `randomizationFactor` default.
pub const RANDOMIZATION: f64 = 0.5;

/// The wait ends no earlier than this after the restart command exited, so
/// that losses the generator has not read yet are not missed.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How often the wait looks at the command and the clients.
const POLL: Duration = Duration::from_millis(20);

/// The delay before reconnection attempt number `attempts` (0 for the
/// first after a loss), computed exactly as socket.io-client's `Backoff`
/// does with its defaults, `rand` being its `Math.random()` (in [0, 1)):
/// `ms = 1000 × 2^attempts`, `deviation = floor(rand × 0.5 × ms)`, minus
/// the deviation when `floor(rand × 10)` is even and plus it when odd (the
/// same random number picks both), at most 5000, truncated to whole ms.
pub fn backoff_delay(attempts: u32, rand: f64) -> Duration {
    // From attempt 4 on the result is 5000 whatever `rand` is; the cap on
    // the exponent only keeps the float finite.
    let ms = DELAY_MS * 2f64.powi(attempts.min(64) as i32);
    let deviation = (rand * RANDOMIZATION * ms).floor();
    let ms = if ((rand * 10.0).floor() as i64) & 1 == 0 {
        ms - deviation
    } else {
        ms + deviation
    };
    Duration::from_millis(ms.min(DELAY_MAX_MS) as u64)
}

/// The `reconnect` scenario's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconnectConfig {
    /// Clients to connect before the restart.
    pub connections: usize,
    /// How fast they are connected.
    pub pace: Pace,
    /// Run with `sh -c` once every connection is open.
    pub restart_cmd: String,
    /// How long after the restart began to wait for every client.
    #[serde(with = "crate::report::secs")]
    pub window: Duration,
}

/// What the `reconnect` scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconnectResult {
    /// Clients attempted.
    pub attempted: usize,
    /// Clients connected when the restart began.
    pub connected_before: usize,
    /// Clients whose connection was lost at least once.
    pub disconnected: usize,
    /// Disconnected clients connected again at the end of the wait.
    pub back: usize,
    /// Disconnected clients the server ended for good (CONNECT_ERROR or
    /// DISCONNECT), which socket.io-client does not retry.
    pub given_up: usize,
    /// Disconnected clients still trying at the end of the window.
    pub never_back: usize,
    /// Of the `connected_before` clients, the share (0..1) that were
    /// disconnected and connected again within 5 s of their own
    /// disconnect. A client that was never disconnected does not count as
    /// back. `None` when no client connected.
    pub back_within_5s: Option<f64>,
    /// The same, within 10 s.
    pub back_within_10s: Option<f64>,
    /// The same, within 30 s.
    pub back_within_30s: Option<f64>,
    /// Per client that came back: from its disconnect to its CONNECT reply.
    pub return_time: Option<Summary>,
    /// Per client that came back: from t0 to its CONNECT reply.
    pub since_restart: Option<Summary>,
    /// Connection attempts per client that came back.
    pub attempts_p50: Option<u64>,
    /// The most connection attempts a client that came back made.
    pub attempts_max: Option<u64>,
    /// Handshake latency of the first connections.
    pub connect_latency: Option<Summary>,
    /// SYNs dropped at a full listen queue while connecting (system-wide).
    pub listen_overflows: Option<u64>,
    /// `exit 0`, `exit 1`, `signal 9`, `still running` or `not run`.
    pub restart_status: String,
    /// The command's exit code; `None` when a signal ended it, or it was
    /// still running or not run.
    pub restart_exit_code: Option<i32>,
    /// How long the command ran (when it finished within the window).
    pub restart_s: Option<f64>,
    /// From t0 to the end of the wait.
    pub waited_s: f64,
    /// Failed reconnection attempts by label: what clients met while the
    /// server was away (expected, not errors).
    pub failed_attempts: Errors,
    /// The codes of the `session:end` events clients received.
    pub session_end: Errors,
    /// Set when the restart did not go as planned: no client connected, the
    /// command could not be run, failed, or was still running at the end.
    pub failure: Option<String>,
    /// Errors by label: failed first handshakes, clients dropped before the
    /// restart, given up, or not back within the window.
    pub errors: Errors,
}

/// What every client task shares.
struct Shared {
    /// Node 0 is [`Setup::client`], then [`Setup::peers`].
    nodes: Vec<Arc<Client>>,
    tokens: Tokens,
    stop: Gate,
    /// Clients that lost their connection and are trying to get it back.
    down: AtomicUsize,
    failed: Mutex<Errors>,
}

/// One client's story, returned by its task. A few words per client.
#[derive(Debug, Default)]
struct Life {
    /// When its connection was first lost ([`now_us`]).
    lost_us: Option<u64>,
    /// The CONNECT reply that ended its last outage, if connected now.
    back_us: Option<u64>,
    /// Connection attempts since its first loss.
    attempts: u32,
    /// Why the server ended it for good.
    given_up: Option<String>,
    /// The code of the last `session:end` it received.
    session_end: Option<String>,
}

/// How a connected stretch ended.
enum Ended {
    /// The scenario is over (the connection was closed politely).
    Stopped,
    /// The transport closed: reconnect.
    Lost,
    /// The server sent a Socket.IO DISCONNECT: do not reconnect.
    Disconnected,
}

/// Stays connected, answering pings, until the scenario stops or the
/// connection ends. The connection is dropped (its descriptor freed) before
/// this returns, so a reconnecting client holds one socket at most.
async fn stay(
    mut conn: Conn,
    stopped: &mut (impl Future<Output = ()> + Unpin),
    life: &mut Life,
) -> Ended {
    loop {
        let packet = tokio::select! {
            () = &mut *stopped => None,
            packet = conn.recv() => Some(packet),
        };
        match packet {
            None => {
                conn.close().await;
                return Ended::Stopped;
            }
            Some(Ok(Inbound::Disconnect)) => return Ended::Disconnected,
            Some(Ok(Inbound::Event { name, data, .. })) if name == server::SESSION_END => {
                life.session_end = Some(data["code"].as_str().unwrap_or("?").to_owned());
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => return Ended::Lost,
        }
    }
}

/// One client, from its first CONNECT to the end of the scenario.
async fn live(index: usize, conn: Conn, shared: Arc<Shared>) -> Life {
    let mut life = Life::default();
    let gate = shared.stop.clone();
    let stopped = gate.wait();
    tokio::pin!(stopped);
    let client = &shared.nodes[index % shared.nodes.len()];
    let mut conn = conn;
    loop {
        match stay(conn, &mut stopped, &mut life).await {
            Ended::Stopped => return life,
            Ended::Disconnected => {
                life.lost_us.get_or_insert_with(now_us);
                life.back_us = None;
                life.given_up = Some("socket.io disconnect".into());
                return life;
            }
            Ended::Lost => {
                life.lost_us.get_or_insert_with(now_us);
                life.back_us = None;
            }
        }
        shared.down.fetch_add(1, Ordering::AcqRel);
        let mut backoff = 0;
        conn = loop {
            let delay = backoff_delay(backoff, rand::random());
            backoff += 1;
            tokio::select! {
                () = &mut stopped => return life,
                () = tokio::time::sleep(delay) => {}
            }
            life.attempts += 1;
            let auth = token_auth(&shared.tokens.for_connection(index));
            // Boxed: the handshake's state is only allocated while it runs,
            // not for the whole life of every held client.
            let attempt = Box::pin(Conn::open_traced(client, index, &auth));
            let (result, _, opened) = tokio::select! {
                () = &mut stopped => return life,
                r = attempt => r,
            };
            match result {
                Ok(conn) => {
                    life.back_us = Some(now_us());
                    shared.down.fetch_sub(1, Ordering::AcqRel);
                    break conn;
                }
                Err(ConnError::Refused { code, .. }) => {
                    life.given_up = Some(code);
                    shared.down.fetch_sub(1, Ordering::AcqRel);
                    return life;
                }
                Err(e) => {
                    if let Ok(mut failed) = shared.failed.lock() {
                        failed.add(e.label());
                    }
                    if opened {
                        backoff = 0;
                    }
                }
            }
        };
    }
}

/// Runs `cmd` with `sh -c`; its standard output goes to this process's
/// standard error (standard output is the report's).
fn spawn_restart(cmd: &str) -> Result<Child, String> {
    let mut command = Command::new("sh");
    command.arg("-c").arg(cmd).stdin(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            command.stdout(Stdio::from(fd));
        }
    }
    command
        .spawn()
        .map_err(|e| format!("restart command: cannot run sh: {e}"))
}

fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("signal {signal}");
        }
    }
    "exit ?".into()
}

/// Runs the `reconnect` scenario: connects every client, runs the restart
/// command and waits for the clients to come back (see the module docs).
pub async fn reconnect(setup: &Setup, cfg: &ReconnectConfig) -> ReconnectResult {
    let deadline = Instant::now() + setup.timeout;
    let mut nodes = vec![setup.client.clone()];
    nodes.extend(setup.peers.iter().cloned());
    let shared = Arc::new(Shared {
        nodes,
        tokens: setup.tokens.clone(),
        stop: Gate::default(),
        down: AtomicUsize::new(0),
        failed: Mutex::default(),
    });
    let tokens = setup.tokens.clone();
    let each = shared.clone();
    let launched = fleet::launch(
        setup,
        cfg.connections,
        cfg.pace,
        deadline,
        move |i| token_auth(&tokens.for_connection(i)),
        move |i, conn| live(i, conn, each.clone()),
    )
    .await;
    let (mut latencies, mut errors) = launched.tally();
    let connected_before = launched.connected();

    // The restart, and the wait for the clients.
    let mut failure = None;
    let mut restart_status = "not run".to_owned();
    let mut restart_exit_code = None;
    let mut restart_s = None;
    let t0_us = now_us();
    let t0 = Instant::now();
    let child = if connected_before == 0 {
        failure = Some("no client connected: the restart was not run".to_owned());
        None
    } else {
        match spawn_restart(&cfg.restart_cmd) {
            Ok(child) => Some(child),
            Err(e) => {
                failure = Some(e);
                None
            }
        }
    };
    if let Some(mut child) = child {
        let window_end = t0 + cfg.window;
        let mut exited: Option<(ExitStatus, Duration)> = None;
        loop {
            if exited.is_none() {
                match child.try_wait() {
                    Ok(Some(status)) => exited = Some((status, t0.elapsed())),
                    Ok(None) => {}
                    Err(e) => {
                        failure = Some(format!("restart command: {e}"));
                        break;
                    }
                }
            }
            let now = Instant::now();
            if now >= window_end {
                break;
            }
            if let Some((_, took)) = exited
                && now >= t0 + took + SETTLE
                && shared.down.load(Ordering::Acquire) == 0
            {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if exited.is_none()
            && let Ok(Some(status)) = child.try_wait()
        {
            exited = Some((status, t0.elapsed()));
        }
        match exited {
            Some((status, took)) => {
                restart_status = describe(status);
                restart_exit_code = status.code();
                restart_s = Some(took.as_secs_f64());
                if !status.success() {
                    failure.get_or_insert(format!("restart command: {restart_status}"));
                }
            }
            None => {
                // Left running: killing `sh` would not stop what it started.
                restart_status = "still running".to_owned();
                failure.get_or_insert(
                    "restart command still running at the end of the window".to_owned(),
                );
            }
        }
    }
    let waited = t0.elapsed();
    shared.stop.open();
    let (lives, lost) = fleet::join_all(launched.tasks, Instant::now() + CLOSE_GRACE).await;
    errors.add_n("ERR_TASK_LOST", lost as u64);

    let (mut disconnected, mut back, mut given_up, mut never_back) = (0, 0, 0, 0);
    let (mut returns, mut since, mut attempts) = (Vec::new(), Vec::new(), Vec::new());
    let mut session_end = Errors::default();
    for life in lives {
        if let Some(code) = &life.session_end {
            session_end.add(code.clone());
        }
        let Some(lost_us) = life.lost_us else {
            continue;
        };
        disconnected += 1;
        if lost_us < t0_us {
            errors.add("dropped before the restart");
        }
        if let Some(why) = life.given_up {
            given_up += 1;
            errors.add(format!("gave up: {why}"));
        } else if let Some(back_us) = life.back_us {
            back += 1;
            returns.push(back_us.saturating_sub(lost_us));
            since.push(back_us.saturating_sub(t0_us));
            attempts.push(u64::from(life.attempts));
        } else {
            never_back += 1;
        }
    }
    errors.add_n("ERR_NOT_BACK: within the window", never_back as u64);
    let share = |secs: u64| {
        (connected_before > 0).then(|| {
            let n = returns.iter().filter(|&&us| us <= secs * 1_000_000).count();
            n as f64 / connected_before as f64
        })
    };
    let (back_within_5s, back_within_10s, back_within_30s) = (share(5), share(10), share(30));
    attempts.sort_unstable();
    let failed_attempts = shared.failed.lock().map(|f| f.clone()).unwrap_or_default();
    ReconnectResult {
        attempted: cfg.connections,
        connected_before,
        disconnected,
        back,
        given_up,
        never_back,
        back_within_5s,
        back_within_10s,
        back_within_30s,
        return_time: Summary::of(&mut returns),
        since_restart: Summary::of(&mut since),
        attempts_p50: percentile(&attempts, 50.0),
        attempts_max: attempts.last().copied(),
        connect_latency: Summary::of(&mut latencies),
        listen_overflows: launched.listen_overflows,
        restart_status,
        restart_exit_code,
        restart_s,
        waited_s: waited.as_secs_f64(),
        failed_attempts,
        session_end,
        failure,
        errors,
    }
}

/// `label ×n, ...`, largest first.
fn tally(errors: &Errors) -> String {
    let mut all: Vec<(&String, &u64)> = errors.0.iter().collect();
    all.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let list: Vec<String> = all.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
    list.join(", ")
}

impl ReconnectResult {
    /// The [`Report`]; the restart status and failed attempts go in its notes.
    pub fn report(&self, setup: &Setup, cfg: &ReconnectConfig) -> Report {
        let share = |key: &str, label: &str, v: Option<f64>| {
            Metric::new(key, label, "share", v, Better::Higher)
        };
        let mut metrics = vec![
            Metric::count(
                "reconnect.connected_before",
                "connected before the restart",
                self.connected_before,
            ),
            Metric::count("reconnect.disconnected", "disconnected", self.disconnected),
            Metric::count("reconnect.back", "came back", self.back),
            Metric::new(
                "reconnect.given_up",
                "gave up (refused, disconnected)",
                "",
                Some(self.given_up as f64),
                Better::Lower,
            ),
            Metric::new(
                "reconnect.never_back",
                "not back within the window",
                "",
                Some(self.never_back as f64),
                Better::Lower,
            ),
            share(
                "reconnect.back_within_5s",
                "back within 5 s",
                self.back_within_5s,
            ),
            share(
                "reconnect.back_within_10s",
                "back within 10 s",
                self.back_within_10s,
            ),
            share(
                "reconnect.back_within_30s",
                "back within 30 s",
                self.back_within_30s,
            ),
        ];
        metrics.extend(Metric::latencies(
            "reconnect.return",
            "disconnect→back",
            self.return_time.as_ref(),
        ));
        let mut since = Metric::latencies(
            "reconnect.since_restart",
            "restart→back",
            self.since_restart.as_ref(),
        );
        since.retain(|m| m.key.ends_with(".p50") || m.key.ends_with(".p99"));
        metrics.extend(since);
        metrics.push(Metric::new(
            "reconnect.attempts.p50",
            "attempts per client p50",
            "",
            self.attempts_p50.map(|n| n as f64),
            Better::Lower,
        ));
        metrics.push(Metric::new(
            "reconnect.attempts.max",
            "attempts per client max",
            "",
            self.attempts_max.map(|n| n as f64),
            Better::Lower,
        ));
        metrics.push(Metric::new(
            "reconnect.restart",
            "restart command ran for",
            "s",
            self.restart_s,
            Better::Neither,
        ));
        let mut notes = vec![format!(
            "restart command: {} (t0 = its start; waited {:.1} s of the {:.0} s window)",
            self.restart_status,
            self.waited_s,
            cfg.window.as_secs_f64()
        )];
        let untouched = self.connected_before.saturating_sub(self.disconnected);
        if untouched > 0 {
            notes.push(format!(
                "{untouched} client(s) never lost their connection: not counted as back"
            ));
        }
        if !self.session_end.is_empty() {
            notes.push(format!(
                "session:end received: {}",
                tally(&self.session_end)
            ));
        }
        if !self.failed_attempts.is_empty() {
            notes.push(format!(
                "failed attempts (retried): {}",
                tally(&self.failed_attempts)
            ));
        }
        Report {
            scenario: "reconnect".into(),
            target: setup.client.http_base(),
            ok: self.failure.is_none()
                && self.errors.is_empty()
                && self.connected_before == self.attempted,
            failure: self.failure.clone(),
            elapsed_s: self.waited_s,
            config: to_value(cfg),
            metrics,
            errors: self.errors.clone(),
            notes,
            details: to_value(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(attempts: u32, rand: f64) -> u64 {
        backoff_delay(attempts, rand).as_millis() as u64
    }

    #[test]
    fn backoff_matches_socket_io_client() {
        // rand = 0: no deviation.
        assert_eq!(
            (0..6).map(|a| ms(a, 0.0)).collect::<Vec<_>>(),
            [1000, 2000, 4000, 5000, 5000, 5000]
        );
        // floor(0.05 × 10) = 0, even: minus floor(0.05 × 0.5 × 1000) = 25.
        assert_eq!(ms(0, 0.05), 975);
        // floor(0.15 × 10) = 1, odd: plus floor(0.15 × 0.5 × 1000) = 75.
        assert_eq!(ms(0, 0.15), 1075);
        // The same random number picks the sign: 0.99 → 9, odd, plus 495;
        // 0.85 → 8, even, minus 425.
        assert_eq!(ms(0, 0.99), 1495);
        assert_eq!(ms(0, 0.85), 575);
        assert_eq!(ms(1, 0.35), 2350);
        // 4000 − 400; 4000 + 1900 is capped at 5000.
        assert_eq!(ms(2, 0.2), 3600);
        assert_eq!(ms(2, 0.95), 5000);
        // 8000 − 3500.
        assert_eq!(ms(3, 0.875), 4500);
    }

    #[test]
    fn backoff_stays_within_its_bounds_and_cap() {
        // The lowest and highest delays over random numbers in (0, 1): at
        // most half of `1000 × 2^attempt` off, capped at 5000. (Minus only
        // with rand < 0.9, hence 551 rather than 501 for the first.)
        let extremes: [(u64, u64); 6] = [
            (551, 1499),
            (1101, 2999),
            (2201, 5000),
            (4401, 5000),
            (5000, 5000),
            (5000, 5000),
        ];
        for (attempt, expected) in extremes.into_iter().enumerate() {
            let base = 1000u64 << attempt;
            let mut seen = (u64::MAX, 0);
            for i in 1..100_000 {
                let d = ms(attempt as u32, f64::from(i) / 100_000.0);
                let (above, most) = ((base / 2).min(4999), (base + base / 2).min(5000));
                assert!(d > above && d <= most, "attempt {attempt}: {d}");
                seen = (seen.0.min(d), seen.1.max(d));
            }
            assert_eq!(seen, expected, "attempt {attempt}");
        }
        for attempt in [10, 31, 64, 1000, u32::MAX] {
            for rand in [0.0, 0.3, 0.5, 0.999_999] {
                assert_eq!(ms(attempt, rand), 5000, "attempt {attempt}");
            }
        }
    }

    #[test]
    fn a_report_lines_up_its_metrics() {
        let setup = Setup::new(
            Client::new("http://127.0.0.1:9", 1).unwrap(),
            Tokens::File(Arc::new(vec!["t".into()])),
        );
        let cfg = ReconnectConfig {
            connections: 4,
            pace: Pace::default(),
            restart_cmd: "true".into(),
            window: Duration::from_secs(30),
        };
        let mut errors = Errors::default();
        errors.add("ERR_NOT_BACK: within the window");
        let r = ReconnectResult {
            attempted: 4,
            connected_before: 4,
            disconnected: 3,
            back: 2,
            given_up: 0,
            never_back: 1,
            back_within_5s: Some(0.25),
            back_within_10s: Some(0.5),
            back_within_30s: Some(0.5),
            return_time: Summary::of(&mut [1_200_000, 6_000_000]),
            since_restart: Summary::of(&mut [1_300_000, 6_100_000]),
            attempts_p50: Some(1),
            attempts_max: Some(3),
            connect_latency: None,
            listen_overflows: None,
            restart_status: "exit 0".into(),
            restart_exit_code: Some(0),
            restart_s: Some(0.4),
            waited_s: 30.0,
            failed_attempts: Errors::default(),
            session_end: Errors::default(),
            failure: None,
            errors,
        };
        let report = r.report(&setup, &cfg);
        assert!(!report.ok, "a client that is not back fails the run");
        let value = |k: &str| report.metric(k).and_then(|m| m.value);
        assert_eq!(value("reconnect.back_within_5s"), Some(0.25));
        assert_eq!(value("reconnect.return.p50"), Some(1200.0));
        assert_eq!(value("reconnect.return.max"), Some(6000.0));
        assert_eq!(value("reconnect.since_restart.p99"), Some(6100.0));
        assert!(report.metric("reconnect.since_restart.p90").is_none());
        assert_eq!(value("reconnect.attempts.max"), Some(3.0));
        let within = report.metric("reconnect.back_within_30s").unwrap();
        assert_eq!(
            (within.better, within.cell()),
            (Better::Higher, "0.500 share".to_owned())
        );
        let table = report.table();
        assert!(
            table.contains("1 client(s) never lost their connection"),
            "{table}"
        );
    }
}
