//! The HTTP side: the routes beside Socket.IO (`/healthz`, `/readyz`,
//! `/metrics`, the admin API, the dashboard, `/auth/refresh`) and the
//! layers every request passes (the door, CORS, an owned request head).
//!
//! - [`admission`]: the door of the Socket.IO path;
//! - [`connections`]: the TCP connections under every request (caps,
//!   timeouts, HTTP/1.1 only);
//! - [`api`]: the admin API;
//! - [`dashboard`]: the live dashboard page, its login and its event stream;
//! - [`cookie_refresh`]: renewing a session a Next-Auth cookie opened.

pub mod admission;
pub mod api;
pub mod connections;
pub mod cookie_refresh;
pub mod dashboard;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::OriginalUri;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use sockgate_core::origins::Origins;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Secret;
use crate::{Gateway, telemetry};

/// The routes beside Socket.IO: `/healthz`, `/readyz` and, with a key,
/// `/metrics`, the admin API and the dashboard; `/auth/refresh` where
/// session cookies are on.
pub(crate) fn routes(gateway: &Arc<Gateway>, api_key: Option<Secret>) -> Router {
    let ready = gateway.clone();
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(move || readyz(ready.clone())));
    // On the public listener, metrics are for the holder of the API key:
    // they tell who is connected and what is refused. A scraper without
    // the key uses SOCKGATE_METRICS_LISTEN (see `crate::server`).
    if let (Some(metrics), Some(key)) = (telemetry::install(), &api_key) {
        spawn_metrics_upkeep(metrics.clone());
        router = router.merge(api::behind_key(metrics_route(metrics), key.clone()));
    }
    if let Some(key) = api_key {
        router = router.merge(dashboard::router(gateway.clone(), key.clone()));
        router = router.nest("/api", api::router(gateway.clone(), key));
    }
    if gateway.node.sources().session_cookies.is_some() {
        let refresh = Router::new()
            .route(
                "/auth/refresh",
                axum::routing::post(cookie_refresh::refresh),
            )
            .layer(axum::extract::DefaultBodyLimit::max(4 * 1024))
            .with_state(gateway.clone());
        router = router.merge(refresh);
    }
    router
}

/// The layers outside Socket.IO: the door, an owned request head and,
/// with allowed origins, CORS.
pub(crate) fn around(router: Router, gateway: &Arc<Gateway>) -> Router {
    let mut router = router
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            admission::door,
        ))
        .layer(axum::middleware::map_request(own_request_head));
    // Cross-origin browsers (long-polling, the API) only from the allowed
    // origins, never a wildcard: credentials (cookies) may be involved.
    // Outermost, so it also covers the Socket.IO layer.
    if let Some(origins) = &gateway.node.limits().allowed_origins {
        router = router.layer(cors(origins));
    }
    router
}

/// `GET /metrics`, rendered by `metrics`.
pub(crate) fn metrics_route(metrics: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || std::future::ready(metrics.render())),
    )
}

/// Gives a Socket.IO request a head of its own.
///
/// hyper parses the URI and header values as slices of its 8–16 KiB
/// connection read buffer, and the engine keeps a connection's opening
/// request head until its Socket.IO handshake, so every connection not yet
/// authenticated would pin that buffer. Copies of the few hundred bytes
/// let it go (measured with massif under the earlier Socket.IO layer,
/// which kept the head for the socket's whole life: 16 KiB per WebSocket
/// connection).
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
    if gateway.node.is_ready() {
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

/// Runs the exporter's upkeep every five seconds, once per process.
pub(crate) fn spawn_metrics_upkeep(metrics: PrometheusHandle) {
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
