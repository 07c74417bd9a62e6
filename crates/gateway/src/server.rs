//! The HTTP server: Socket.IO on `/socket.io/`, the admin API on `/api`,
//! `/healthz`, background upkeep (expiry clock, JWKS, revocation pruning)
//! and shutdown on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::OriginalUri;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use axum_server::tls_rustls::RustlsConfig;
use socketioxide::SocketIo;
use socketioxide::adapter::{Adapter, Emitter, LocalAdapter};
use socketioxide::handler::ConnectHandler;
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use sockgate_auth::Jwks;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::cluster::{Cluster, ResilientDriver, redacted};
use crate::config::{Config, ConfigError, Secret};
use crate::origins::Origins;
use crate::revocation::Revocations;
use crate::transports::{self, ClosableAcceptor};
use crate::{Gateway, admission, api, cookie_refresh, dashboard, events, handshake, telemetry};
use metrics_exporter_prometheus::PrometheusHandle;

/// How often expired token revocations are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Initial read buffer of a WebSocket connection (socketioxide's default is 4 KiB).
const WS_READ_BUFFER: usize = 1024;

/// Builds the HTTP application: Socket.IO, `/healthz` and, with a key, the
/// admin API. Starts the gateway's background tasks, so call it inside a
/// tokio runtime. Embed the router in your own axum server, or use [`run`].
pub fn app(gateway: Arc<Gateway>, api_key: Option<Secret>) -> (Router, SocketIo) {
    let (router, io, ()) = app_with_adapter::<LocalAdapter>(gateway, api_key, ());
    (router, io)
}

/// [`app`] on another Socket.IO adapter, such as the Redis one of a cluster.
/// Also returns the adapter's initialisation (for Redis, a future that
/// subscribes to the cluster's channels and must be awaited).
pub fn app_with_adapter<A: Adapter + DefinedAdapter>(
    gateway: Arc<Gateway>,
    api_key: Option<Secret>,
    adapter: A::State,
) -> (Router, SocketIo<A>, A::InitRes) {
    let (layer, io) = SocketIo::builder()
        .connect_timeout(gateway.limits.handshake_timeout)
        .max_payload(gateway.limits.max_message as u64)
        .ws_max_message_size(gateway.limits.max_message)
        // Client messages are small; a bigger one grows the buffer as needed.
        .ws_read_buffer_size(WS_READ_BUFFER)
        .with_adapter::<A>(adapter)
        .with_state(gateway.clone())
        .build_layer();
    let init = io.ns("/", events::on_connect.with(handshake::authenticate));
    if gateway.io.set(Arc::new(io.clone())).is_err() {
        panic!("a Gateway can be served by one app only");
    }
    spawn_upkeep(gateway.clone());
    let ready = gateway.clone();
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(move || readyz(ready.clone())));
    // On the public listener, metrics are for the holder of the API key:
    // they tell who is connected and what is refused. A scraper without
    // the key uses SOCKGATE_METRICS_LISTEN (see `serve_metrics`).
    if let (Some(metrics), Some(key)) = (telemetry::install(), &api_key) {
        spawn_metrics_upkeep(metrics.clone());
        let metrics = Router::new().route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        );
        router = router.merge(api::behind_key(metrics, key.clone()));
    }
    if let Some(key) = api_key {
        router = router.merge(dashboard::router(gateway.clone(), key.clone()));
        router = router.nest("/api", api::router(gateway.clone(), key));
    }
    if gateway.sources.session_cookies.is_some() {
        let refresh = Router::new()
            .route(
                "/auth/refresh",
                axum::routing::post(cookie_refresh::refresh),
            )
            .layer(axum::extract::DefaultBodyLimit::max(4 * 1024))
            .with_state(gateway.clone());
        router = router.merge(refresh);
    }

    let mut router = router
        .layer(layer)
        .layer(axum::middleware::from_fn_with_state(
            gateway.transports.clone(),
            transports::follow,
        ))
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            admission::door,
        ))
        .layer(axum::middleware::map_request(own_request_head));
    // Cross-origin browsers (long-polling, the API) only from the allowed
    // origins, never a wildcard: credentials (cookies) may be involved.
    // Outermost, so it also covers the Socket.IO layer.
    if let Some(origins) = &gateway.limits.allowed_origins {
        router = router.layer(cors(origins));
    }
    (router, io, init)
}

/// Gives a Socket.IO request a head of its own.
///
/// hyper parses the URI and header values as slices of its 8–16 KiB
/// connection read buffer, and engineioxide keeps the request head for the
/// whole life of the socket (`SocketRef::req_parts`), so every idle
/// connection would pin that buffer. Copies of the few hundred bytes let
/// it go (measured with massif: 16 KiB per WebSocket connection).
async fn own_request_head(mut req: axum::extract::Request) -> axum::extract::Request {
    if !req.uri().path().starts_with("/socket.io/") {
        return req;
    }
    let headers = req.headers_mut();
    for value in headers.values_mut() {
        if let Ok(owned) = HeaderValue::from_bytes(value.as_bytes()) {
            *value = owned;
        }
    }
    if let Ok(uri) = req.uri().to_string().parse::<axum::http::Uri>() {
        // axum's router has already kept a clone as `OriginalUri`.
        req.extensions_mut().insert(OriginalUri(uri.clone()));
        *req.uri_mut() = uri;
    }
    req
}

/// Ready when every part of the contract works: in a cluster, while Redis answers.
async fn readyz(gateway: Arc<Gateway>) -> (StatusCode, Json<serde_json::Value>) {
    if gateway.is_ready() {
        (StatusCode::OK, Json(serde_json::json!({ "status": "ok" })))
    } else {
        let body = serde_json::json!({ "status": "degraded", "redis": "unreachable" });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    }
}

fn cors(origins: &Origins) -> CorsLayer {
    let origins = origins.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|o| origins.allows(o))
        }))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
}

fn spawn_metrics_upkeep(metrics: PrometheusHandle) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        });
    });
}

fn spawn_upkeep(gateway: Arc<Gateway>) {
    let gw = gateway.clone();
    tokio::spawn(async move { gw.deadlines.run(|deadline| gw.on_due(deadline)).await });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            gateway.guard.shrink();
            gateway.transports.shrink();
            if let Err(e) = gateway.revocations.prune().await {
                tracing::warn!(error = %e, "pruning expired revocations failed");
            }
        }
    });
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the revocation store in {dir}: {source}")]
    Store { dir: String, source: sqlx::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot reach Redis at {url}: {source} (SOCKGATE_REDIS_URL)")]
    Redis {
        url: String,
        source: redis::RedisError,
    },
    #[error("cannot join the cluster: {0}")]
    Adapter(String),
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(std::io::Error),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a stopping node leaves the sessions it lost, for the next one.
const AWAITED_FILE: &str = "awaited-returns.json";

/// Runs the gateway until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), ServeError> {
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
    let (verifier, jwks) = config.verifier()?;
    if let Some(jwks) = jwks {
        keep_jwks_fresh(jwks, config.keys.jwks_refresh).await;
    }
    let revocations = Revocations::open(&config.data_dir)
        .await
        .map_err(|source| ServeError::Store {
            dir: config.data_dir.display().to_string(),
            source,
        })?;
    let policy = config.rooms.policy()?;
    let gateway = Gateway::new(
        verifier,
        config.sources.clone(),
        revocations,
        config.lifecycle.clone(),
    )
    .with_policy(policy)
    .with_limits(config.limits.clone())
    .with_abuse_limits(config.abuse.clone());
    // Sessions a previous process lost at its shutdown are awaited back
    // here (the reconnection success rate, see `stats`).
    gateway
        .stats
        .load_awaited(&config.data_dir.join(AWAITED_FILE));
    let key = config.api_key.clone();
    match &config.redis_url {
        None => {
            let gateway = Arc::new(gateway);
            let (router, io) = app(gateway.clone(), key);
            serve(listener, router, io, gateway, &config, shutdown).await
        }
        Some(url) => {
            let seal = config.cluster_seal()?;
            let cluster =
                Cluster::connect(url, seal)
                    .await
                    .map_err(|source| ServeError::Redis {
                        url: redacted(url),
                        source,
                    })?;
            let gateway = Arc::new(gateway.with_cluster(cluster.clone()));
            let adapter = RedisAdapterCtr::new_with_driver(
                cluster.driver.clone(),
                RedisAdapterConfig::default().with_prefix("sockgate-sio"),
            );
            let (router, io, init) =
                app_with_adapter::<ClusterAdapter>(gateway.clone(), key, adapter);
            init.await.map_err(|e| ServeError::Adapter(e.to_string()))?;
            start_cluster(gateway.clone(), cluster).await;
            serve(listener, router, io, gateway, &config, shutdown).await
        }
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

/// The Socket.IO adapter of a cluster node.
type ClusterAdapter = CustomRedisAdapter<Emitter, ResilientDriver>;

async fn start_cluster(gateway: Arc<Gateway>, cluster: Arc<Cluster>) {
    tracing::info!(node = %cluster.node, "cluster mode: joined through Redis");
    gateway.sync_with_cluster().await;
    tokio::spawn(gateway.clone().follow_announcements(cluster.clone()));
    tokio::spawn(cluster.heartbeat(move || {
        let gateway = gateway.clone();
        tokio::spawn(async move { gateway.sync_with_cluster().await });
    }));
}

async fn serve<A: Adapter>(
    listener: TcpListener,
    router: Router,
    io: SocketIo<A>,
    gateway: Arc<Gateway>,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    let tls = match &config.tls {
        Some(tls) => Some(
            RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(ServeError::Tls)?,
        ),
        None => None,
    };
    if let Some(addr) = config.metrics_listen {
        serve_metrics(addr).await?;
    }
    tracing::info!(%addr, tls = tls.is_some(), api = config.api_key.is_some(), "sockgate listening");
    let handle = axum_server::Handle::new();
    let shutdown_timeout = config.shutdown_timeout;
    let drain_window = config.drain_window;
    let awaited_file = config.data_dir.join(AWAITED_FILE);
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        let sessions = gateway.sessions.len();
        tracing::info!(sessions, drain_window = ?drain_window, "shutting down");
        // Every client learns why and reconnects by itself (to another node
        // or to the restarted one), spread over the drain window.
        gateway.shut_down(drain_window).await;
        gateway.stats.save_awaited(&awaited_file);
        // A moment for the last closes, and for long-polling clients to
        // collect their last packets.
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Connections get `shutdown_timeout` to drain; a client that holds one
        // open (a long-poll caught mid-upgrade, say) must not keep the process up.
        stopper.graceful_shutdown(Some(shutdown_timeout));
        io.close().await;
    });
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let listener = listener.into_std()?;
    // Every connection can be closed on its own (see `transports`).
    match tls {
        Some(tls) => {
            axum_server::from_tcp_rustls(listener, tls)?
                .map(|tls| tls.acceptor(ClosableAcceptor))
                .handle(handle)
                .serve(app)
                .await?
        }
        None => {
            axum_server::from_tcp(listener)?
                .acceptor(ClosableAcceptor)
                .handle(handle)
                .serve(app)
                .await?
        }
    }
    Ok(())
}

/// Serves `/metrics` alone, without a key, on its own address: for a
/// Prometheus scraper on a private network.
async fn serve_metrics(addr: SocketAddr) -> Result<(), ServeError> {
    let Some(metrics) = telemetry::install() else {
        return Ok(());
    };
    spawn_metrics_upkeep(metrics.clone());
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let router = Router::new().route(
        "/metrics",
        get(move || std::future::ready(metrics.render())),
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::body::Bytes;
    use axum::http::{Request, Uri};

    /// A request whose URI and header values are slices of `buf`, as hyper
    /// parses them.
    fn parsed_from(buf: &Bytes, path: &str) -> axum::extract::Request {
        let uri = Uri::from_maybe_shared(buf.slice(..path.len())).unwrap();
        let mut req = Request::builder()
            .uri(uri.clone())
            .body(Body::empty())
            .unwrap();
        let value = HeaderValue::from_maybe_shared(buf.slice(path.len()..)).unwrap();
        req.headers_mut().insert(header::AUTHORIZATION, value);
        req.extensions_mut().insert(OriginalUri(uri));
        req
    }

    fn inside(buf: &Bytes, bytes: &[u8]) -> bool {
        buf.as_ptr_range().contains(&bytes.as_ptr())
    }

    #[tokio::test]
    async fn a_socket_io_request_keeps_nothing_of_the_read_buffer() {
        let path = "/socket.io/?EIO=4&transport=websocket";
        let buf = Bytes::from(format!("{path}Bearer abc"));
        let req = own_request_head(parsed_from(&buf, path)).await;
        let value = req.headers().get(header::AUTHORIZATION).unwrap();
        assert_eq!(value, "Bearer abc");
        assert!(!inside(&buf, value.as_bytes()));
        assert_eq!(req.uri(), path);
        assert!(!inside(&buf, req.uri().path().as_bytes()));
        let original = req.extensions().get::<OriginalUri>().unwrap();
        assert_eq!(original.0, path);
        assert!(!inside(&buf, original.0.path().as_bytes()));
    }

    #[tokio::test]
    async fn other_requests_pass_untouched() {
        let path = "/api/sessions";
        let buf = Bytes::from(format!("{path}Bearer abc"));
        let req = own_request_head(parsed_from(&buf, path)).await;
        let value = req.headers().get(header::AUTHORIZATION).unwrap();
        assert!(inside(&buf, value.as_bytes()));
    }
}
