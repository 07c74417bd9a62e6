//! The server: wires the node, the Socket.IO layer, the HTTP routes and
//! the backends together, runs the background upkeep (expiry clock, JWKS,
//! revocation pruning) and shuts down on SIGINT/SIGTERM.
//!
//! This is the one place that names the concrete backends: Redis (the
//! cluster) and SQLite (the revocation store).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use sockgate_auth::Jwks;
use sockgate_core::StoreError;
use tokio::net::TcpListener;

use sockgate_core::backend::{Counted, History, MemoryCensus};

use crate::cluster::{Cluster, Listening, RedisHistory, Seal, redacted};
use crate::config::{Config, ConfigError, Secret, TlsFiles};
use crate::consume::Consumers;
use crate::http::connections::{Connections, Http1Only};
use crate::outbound::lifecycle::{SharedQueue, Webhooks};
use crate::store::history::DiskJournal;
use crate::store::live::{LIVE_FILE, keep_live_sessions, report_crashed_run, take_crashed_run};
use crate::store::{OnDisk, Revocations};
use crate::{Gateway, http, sio, telemetry};
use sockgate_core::backend::memory::MemoryHistory;
use sockgate_core::recovery::{PidKey, Settings as RecoverySettings};

/// How often expired token revocations are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Builds the HTTP application: Socket.IO on `/socket.io/`, `/healthz`
/// and, with a key, the admin API. Starts the gateway's background tasks,
/// so call it inside a tokio runtime. Embed the router in your own axum
/// server, or use [`run`]. Also returns the Socket.IO server.
pub fn app(gateway: Arc<Gateway>, api_key: Option<Secret>) -> (Router, Arc<sio::Server>) {
    let io = sio::server(&gateway);
    spawn_upkeep(gateway.clone());
    let engine = io.clone();
    let socket_io = axum::routing::any(move |req: axum::extract::Request| {
        let engine = engine.clone();
        async move { engine.handle(req).await }
    });
    let router = http::routes(&gateway, api_key).route("/socket.io/", socket_io);
    (http::around(router, &gateway), io)
}

fn spawn_upkeep(gateway: Arc<Gateway>) {
    let gw = gateway.clone();
    tokio::spawn(async move { gw.node.run_deadlines().await });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            gateway.node.tidy().await;
        }
    });
}

/// Why the server could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The revocation store or the history could not be opened.
    #[error("cannot open the data store in {dir}: {source}")]
    Store {
        /// The data directory, as shown.
        dir: String,
        /// Why it could not be opened.
        source: StoreError,
    },
    /// An address could not be listened on (the gateway's or the metrics').
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why it could not be listened on.
        source: std::io::Error,
    },
    /// Redis could not be reached at startup.
    #[error("cannot reach Redis at {url}: {source} (SOCKGATE_REDIS_URL)")]
    Redis {
        /// The Redis URL, without its credentials.
        url: String,
        /// Why it could not be reached.
        source: redis::RedisError,
    },
    /// The lifecycle webhook's URL cannot be used.
    #[error("SOCKGATE_WEBHOOK_URL: {message}")]
    Webhook {
        /// Why.
        message: String,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(std::io::Error),
    /// Any other I/O error while serving.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a stopping single node leaves its pending departures (a
/// `user.offline` not yet due), for the next one.
const PENDING_DEPARTURES_FILE: &str = "pending-departures.json";

/// Where a stopping node leaves the sessions it lost, for the next one.
const AWAITED_FILE: &str = "awaited-returns.json";

/// Runs the gateway until SIGINT or SIGTERM. Raises the process's
/// open-file limit to its hard limit first: every connection holds a
/// descriptor (see [`http::connections`]).
pub async fn run(config: Config) -> Result<(), ServeError> {
    if http::connections::raise_open_file_limit().is_none() {
        tracing::debug!("the open-file limit could not be raised");
    }
    let listener = bind(config.listen)?;
    serve_until(listener, config, shutdown_signal()).await
}

/// The listener [`run`] serves on, with a backlog for handshake bursts.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    listen(addr).map_err(|source| ServeError::Bind { addr, source })
}

/// Serves on `listener` until `shutdown` completes, then shuts down as on
/// SIGTERM: the drain, the last closes, and return. What [`run`] does with
/// the signals; tests and embedders pass their own future (a listener on
/// port 0 and a oneshot channel run a whole gateway in-process).
pub async fn serve_until(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let revocations = Revocations::open(&config.data_dir)
        .await
        .map_err(|source| ServeError::Store {
            dir: config.data_dir.display().to_string(),
            source,
        })?;
    let assembled = crate::assemble::gateway(&config, revocations)?;
    if let Some(jwks) = assembled.jwks {
        keep_jwks_fresh(jwks, config.keys.jwks_refresh).await;
    }
    let gateway = assembled.gateway;
    // Sessions a previous process lost at its shutdown are awaited back
    // here (the reconnection success rate, see `stats`).
    gateway
        .node
        .stats()
        .load_awaited(&config.data_dir.join(AWAITED_FILE));
    let key = config.api_key.clone();
    match &config.redis_url {
        None => {
            let census = Arc::new(MemoryCensus::default());
            census.restore(load_departures(&config.data_dir));
            let gateway = with_webhooks(gateway.with_memory_census(census), &config, None)?;
            let gateway = match config.recovery.clone() {
                Some(settings) => {
                    let (history, journal, key) =
                        durable_history(&config.data_dir, &settings).await?;
                    gateway.with_own_history(settings, key, history, journal)
                }
                None => gateway,
            };
            let gateway = Arc::new(gateway);
            let (router, io) = app(gateway.clone(), key);
            // A single node reports its own crashed run; a cluster's live
            // nodes report a dead one (`cluster::report_lost_nodes`).
            if let Some(webhooks) = &gateway.webhooks {
                let live = config.data_dir.join(LIVE_FILE);
                report_crashed_run(webhooks.as_ref(), take_crashed_run(&live));
                tokio::spawn(keep_live_sessions(gateway.clone(), live));
            }
            let node = format!("{:016x}", rand::random::<u64>());
            serve(listener, router, io, gateway, &config, &node, shutdown).await
        }
        Some(url) => {
            let seal = Seal::new(config.cluster_secret()?.expose().as_bytes());
            let cluster =
                Cluster::connect(url, seal)
                    .await
                    .map_err(|source| ServeError::Redis {
                        url: redacted(url),
                        source,
                    })?;
            let shared: Arc<dyn SharedQueue> = cluster.clone();
            let gateway = with_webhooks(gateway, &config, Some(shared))?;
            let mut gateway = gateway.with_cluster(cluster.clone());
            let stopping = cluster.clone();
            gateway.on_stop = Some(Arc::new(move || {
                let cluster = stopping.clone();
                Box::pin(async move { cluster.stopping().await })
            }));
            let (gateway, history) = match config.recovery.clone() {
                Some(settings) => {
                    let history = Arc::new(RedisHistory::new(cluster.clone(), settings.clone()));
                    let shared: Arc<dyn History> = history.clone();
                    let key = crate::assemble::pid_key(&config)?;
                    (
                        gateway.with_recovery(settings, key, Some(shared)),
                        Some(history),
                    )
                }
                None => (gateway, None),
            };
            let gateway = Arc::new(gateway);
            let (router, io) = app(gateway.clone(), key);
            let listening = Listening::new();
            let edges = listening.clone();
            if !gateway
                .emitter
                .watch_rooms(Box::new(move |room, up| edges.edge(room, up)))
            {
                panic!("a Gateway's rooms are watched by one cluster only");
            }
            tokio::spawn(listening.clone().run(cluster.driver.clone()));
            let bus = crate::cluster::RoomBus::new(cluster.clone(), history.clone(), listening);
            gateway.emitter.set_fanout(Arc::new(bus));
            let node = cluster.node.clone();
            // Its departures come due, then some: see `cluster::lost`.
            let settle = config.offline_delay + Duration::from_secs(10);
            tokio::spawn(crate::cluster::report_lost_nodes(
                cluster.clone(),
                gateway.clone(),
                settle,
            ));
            start_cluster(gateway.clone(), cluster, history).await;
            serve(listener, router, io, gateway, &config, &node, shutdown).await
        }
    }
}

/// Starts the lifecycle webhooks when they are configured, sent by this
/// node or through the cluster's `shared` queue.
fn with_webhooks(
    gateway: Gateway,
    config: &Config,
    shared: Option<Arc<dyn SharedQueue>>,
) -> Result<Gateway, ServeError> {
    let Some(settings) = config.webhook.clone() else {
        return Ok(gateway);
    };
    let webhooks =
        Webhooks::start(settings, shared).map_err(|message| ServeError::Webhook { message })?;
    Ok(gateway.with_webhooks(webhooks))
}

/// The departures a previous single-node run left pending (the file is
/// removed: they are taken once).
fn load_departures(data_dir: &Path) -> Vec<(Counted, u64)> {
    let path = data_dir.join(PENDING_DEPARTURES_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(&path);
    serde_json::from_str(&text).unwrap_or_default()
}

/// A single node's recovery history, taking back what the last run wrote
/// to `history.db` ([`DiskJournal`]).
async fn durable_history(
    dir: &Path,
    settings: &RecoverySettings,
) -> Result<(Arc<MemoryHistory>, Arc<DiskJournal>, PidKey), ServeError> {
    let now = sockgate_core::clock::unix_now_ms();
    let opened = DiskJournal::open(dir, settings.window, settings.history, now).await;
    let (journal, kept) = opened.map_err(|source| ServeError::Store {
        dir: dir.display().to_string(),
        source,
    })?;
    let (messages, parked) = (kept.entries.len(), kept.parked.len());
    let history = MemoryHistory::new(settings.clone()).with_journal(journal.clone(), kept.epoch);
    history.restore(kept.entries, kept.parked);
    if messages + parked > 0 {
        tracing::info!(messages, parked, "the last run's history is back");
    }
    Ok((Arc::new(history), journal, kept.key))
}

fn save_departures(path: &Path, pending: Vec<(Counted, u64)>) {
    if pending.is_empty() {
        return;
    }
    let json = serde_json::to_string(&pending).expect("departures serialize");
    if let Err(e) = std::fs::write(path, json) {
        tracing::warn!(error = %e, "the pending departures could not be kept for the next start; those users are not told offline");
    }
}

/// Most connections waiting to be accepted. tokio's default (128) overflows
/// under handshake bursts, and a dropped SYN costs the client a 1 s retry.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn start_cluster(
    gateway: Arc<Gateway>,
    cluster: Arc<Cluster>,
    history: Option<Arc<RedisHistory>>,
) {
    tracing::info!(node = %cluster.node, "cluster mode: joined through Redis");
    crate::cluster::sync(&gateway.node, &cluster).await;
    tokio::spawn(crate::cluster::follow(gateway.clone(), cluster.clone()));
    tokio::spawn(crate::cluster::follow_rooms(
        gateway.emitter.clone(),
        cluster.clone(),
    ));
    let resync = cluster.clone();
    tokio::spawn(cluster.heartbeat(move || {
        let (gateway, cluster) = (gateway.clone(), resync.clone());
        let history = history.clone();
        tokio::spawn(async move {
            crate::cluster::sync(&gateway.node, &cluster).await;
            if let Some(history) = history {
                history.mark_holes().await;
            }
        });
    }));
}

async fn serve(
    listener: TcpListener,
    router: Router,
    io: Arc<sio::Server>,
    gateway: Arc<Gateway>,
    config: &Config,
    node: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    let consumers = Consumers::start(&gateway, &config.consumers, node);
    let http2 = config.connections.http2;
    let tls = match &config.tls {
        Some(tls) => Some(tls_config(tls, http2).await?),
        None => None,
    };
    if let Some(addr) = config.metrics_listen {
        serve_metrics(addr).await?;
    }
    let connections = connections(config);
    tracing::info!(
        %addr,
        tls = tls.is_some(),
        http2,
        api = config.api_key.is_some(),
        max_tcp_connections = connections_cap(&connections),
        "sockgate listening"
    );
    let handle = axum_server::Handle::new();
    let shutdown_timeout = config.shutdown_timeout;
    let drain_window = config.drain_window;
    let awaited_file = config.data_dir.join(AWAITED_FILE);
    let live_file = config.data_dir.join(LIVE_FILE);
    let departures_file = config.data_dir.join(PENDING_DEPARTURES_FILE);
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        let sessions = gateway.node.session_count();
        tracing::info!(sessions, drain_window = ?drain_window, "shutting down");
        if let Some(on_stop) = &gateway.on_stop {
            on_stop().await;
        }
        // The queues first: what a consumer holds is published and
        // acknowledged while the sessions are still here to get it.
        consumers.stop().await;
        // Every client learns why and reconnects by itself (to another node
        // or to the restarted one), spread over the drain window.
        gateway.node.shut_down(drain_window).await;
        // The drain's events are told (its departures in the census), and
        // go out before the process does.
        let told = gateway.node.flush_happenings();
        let _ = tokio::time::timeout(Duration::from_secs(2), told).await;
        if let Some(census) = &gateway.departures {
            save_departures(&departures_file, census.pending());
        }
        // The drain parked every session: on disk before the process goes,
        // for the next start to recover them.
        if let Some(journal) = &gateway.journal {
            let _ = tokio::time::timeout(Duration::from_secs(5), journal.flush()).await;
        }
        if let Some(webhooks) = &gateway.webhooks {
            webhooks.shut_down(Duration::from_secs(2)).await;
            // Every session ended and was told: nothing for the next start.
            let _ = std::fs::remove_file(live_file);
        }
        gateway.node.stats().save_awaited(&awaited_file);
        // A moment for the last closes, and for long-polling clients to
        // collect their last packets.
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Connections get `shutdown_timeout` to drain; a client that holds one
        // open (a long-poll caught mid-upgrade, say) must not keep the process up.
        stopper.graceful_shutdown(Some(shutdown_timeout));
        io.close_all();
    });
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::from_tcp(listener.into_std()?)?.handle(handle);
    match tls {
        Some(tls) => {
            let tls = RustlsAcceptor::new(tls).acceptor(connections);
            server
                .acceptor(Http1Only::new(tls, http2))
                .serve(app)
                .await?
        }
        None => {
            server
                .acceptor(Http1Only::new(connections, http2))
                .serve(app)
                .await?
        }
    }
    Ok(())
}

/// The acceptor of the main listener, with its caps and timeouts. The cap
/// on open connections defaults to a little under the open-file limit:
/// past that limit `accept` fails, and every client waits, whoever holds
/// the descriptors.
fn connections(config: &Config) -> Connections {
    let settings = &config.connections;
    let limit = http::connections::open_file_limit();
    let max_total = settings
        .max_total
        .unwrap_or_else(http::connections::default_max_total);
    if let Some(limit) = limit
        && max_total > limit
    {
        tracing::warn!(
            max_tcp_connections = max_total,
            open_file_limit = limit,
            "SOCKGATE_MAX_TCP_CONNECTIONS is above the open-file limit (ulimit -n): \
             past the limit new connections wait in the listen queue instead of being refused"
        );
    }
    Connections::new(settings, max_total, config.trusted_proxies.clone())
}

/// The cap as logged: `None` for no cap (no open-file limit known).
fn connections_cap(connections: &Connections) -> Option<usize> {
    Some(connections.max_total()).filter(|&n| n != usize::MAX)
}

/// The TLS settings, offering HTTP/2 by ALPN only when it is served.
async fn tls_config(files: &TlsFiles, http2: bool) -> Result<RustlsConfig, ServeError> {
    let tls = RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(ServeError::Tls)?;
    let mut config = (*tls.get_inner()).clone();
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    tls.reload_from_config(Arc::new(config));
    Ok(tls)
}

/// Serves `/metrics` alone, without a key, on its own address: for a
/// Prometheus scraper on a private network.
async fn serve_metrics(addr: SocketAddr) -> Result<(), ServeError> {
    let Some(metrics) = telemetry::install() else {
        return Ok(());
    };
    http::spawn_metrics_upkeep(metrics.clone());
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let router = http::metrics_route(metrics);
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(())
}

/// Fetches the key set once now (a failure is logged, not fatal: handshakes
/// answer `AUTH_UNAVAILABLE` until a fetch succeeds) and then on a schedule.
async fn keep_jwks_fresh(jwks: Arc<Jwks>, every: Duration) {
    match jwks.refresh().await {
        Ok(n) => tracing::info!(keys = n, "JWKS loaded"),
        Err(e) => tracing::warn!(error = %e, "JWKS fetch failed at startup; retrying"),
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = jwks.refresh().await {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the last good key set");
            }
        }
    });
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
