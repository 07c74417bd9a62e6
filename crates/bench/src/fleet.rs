//! Opening many connections: one task per connection, at most
//! `concurrency` handshakes in flight, started at most `rate` per second.
//!
//! Each task reports its handshake through one shared channel (not one
//! per connection), then runs the scenario's work on its connection and
//! returns the work's outcome through its join handle.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::report::Errors;
use crate::{Conn, ConnError, Setup};

/// How fast connections are opened.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pace {
    /// Most handshakes in flight at once (at least 1).
    pub concurrency: usize,
    /// Most handshakes started per second; `None` = as fast as `concurrency` allows.
    pub rate: Option<f64>,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            concurrency: 100,
            rate: None,
        }
    }
}

/// The outcome of one handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The connection number.
    pub index: usize,
    /// `Ok` when the CONNECT was accepted, otherwise why it failed.
    pub result: Result<(), ConnError>,
    /// From the start of the TCP connect to the CONNECT reply (or the failure).
    pub elapsed: Duration,
}

/// A launched fleet: the handshakes that reported and the running tasks.
pub struct Launched<T> {
    /// The handshakes that reported by the deadline, in the order they ended.
    pub handshakes: Vec<Handshake>,
    /// Attempts that had not reported (or not started) by the deadline.
    pub unreported: usize,
    /// From the first start to the last report.
    pub elapsed: Duration,
    /// Connections the kernel dropped at a full listen queue meanwhile
    /// (system-wide counter, see [`crate::sys::listen_overflows`]).
    pub listen_overflows: Option<u64>,
    /// The connection tasks: `Some(outcome)` for connected ones, `None`
    /// for failed handshakes.
    pub tasks: JoinSet<Option<T>>,
}

impl<T> Launched<T> {
    /// Handshakes that succeeded.
    pub fn connected(&self) -> usize {
        self.handshakes.iter().filter(|h| h.result.is_ok()).count()
    }

    /// Connected to the node the admin API is called on (node 0). In a
    /// cluster, that node's API counts only its own sockets.
    pub fn connected_to_first_node(&self, setup: &Setup) -> usize {
        self.handshakes
            .iter()
            .filter(|h| h.result.is_ok() && setup.node_of(h.index) == 0)
            .count()
    }

    /// Latencies (µs) of the successful handshakes, and the failures by label.
    pub fn tally(&self) -> (Vec<u64>, Errors) {
        let mut ok = Vec::with_capacity(self.handshakes.len());
        let mut errors = Errors::default();
        for h in &self.handshakes {
            match &h.result {
                Ok(()) => ok.push(h.elapsed.as_micros() as u64),
                Err(e) => errors.add(e.label()),
            }
        }
        errors.add_n(
            "ERR_TIMEOUT: scenario (handshake never finished)",
            self.unreported as u64,
        );
        (ok, errors)
    }
}

/// Opens `n` connections presenting `auth(i)` as the CONNECT payload, and
/// runs `work(i, conn)` on each one that connects, in its task. Returns once
/// every attempt has reported its handshake, or at `deadline`.
pub async fn launch<T, A, W, Fut>(
    setup: &Setup,
    n: usize,
    pace: Pace,
    deadline: Instant,
    auth: A,
    work: W,
) -> Launched<T>
where
    T: Send + 'static,
    A: Fn(usize) -> Value + Send + Sync + 'static,
    W: Fn(usize, Conn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let auth = Arc::new(auth);
    let work = Arc::new(work);
    let gate = Arc::new(Semaphore::new(pace.concurrency.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel::<Handshake>();
    let mut tasks = JoinSet::new();
    let overflows_before = crate::sys::listen_overflows();
    let started = Instant::now();
    let mut spawned = 0;
    for index in 0..n {
        if let Some(rate) = pace.rate.filter(|r| *r > 0.0) {
            let at = started + Duration::from_secs_f64(index as f64 / rate);
            if at >= deadline {
                break;
            }
            tokio::time::sleep_until(at).await;
        } else if Instant::now() >= deadline {
            break;
        }
        let (auth, work, gate, tx, client) = (
            auth.clone(),
            work.clone(),
            gate.clone(),
            tx.clone(),
            setup.node(setup.node_of(index)).clone(),
        );
        tasks.spawn(async move {
            let payload = auth(index);
            let Ok(permit) = gate.acquire_owned().await else {
                return None;
            };
            let (result, elapsed) = Conn::open(&client, index, &payload).await;
            drop(permit);
            drop(payload);
            match result {
                Ok(conn) => {
                    let _ = tx.send(Handshake {
                        index,
                        result: Ok(()),
                        elapsed,
                    });
                    drop(tx);
                    Some(work(index, conn).await)
                }
                Err(e) => {
                    let _ = tx.send(Handshake {
                        index,
                        result: Err(e),
                        elapsed,
                    });
                    None
                }
            }
        });
        spawned += 1;
    }
    drop(tx);
    let mut handshakes = Vec::with_capacity(spawned);
    while handshakes.len() < spawned {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(h)) => handshakes.push(h),
            Ok(None) | Err(_) => break,
        }
    }
    let listen_overflows = match (overflows_before, crate::sys::listen_overflows()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Launched {
        listen_overflows,
        unreported: n - handshakes.len(),
        elapsed: started.elapsed(),
        handshakes,
        tasks,
    }
}

/// Joins every task by `deadline`; the ones still running then are
/// aborted. Returns the outcomes of connected tasks and how many were
/// aborted or panicked.
pub async fn join_all<T: 'static>(
    mut tasks: JoinSet<Option<T>>,
    deadline: Instant,
) -> (Vec<T>, usize) {
    let mut outcomes = Vec::with_capacity(tasks.len());
    let mut lost = 0;
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(Ok(Some(t)))) => outcomes.push(t),
            Ok(Some(Ok(None))) => {}
            Ok(Some(Err(_))) => lost += 1,
            Ok(None) => break,
            Err(_) => {
                lost += tasks.len();
                tasks.abort_all();
                break;
            }
        }
    }
    (outcomes, lost)
}
