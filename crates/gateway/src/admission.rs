//! The door of the Socket.IO path, before socketioxide sees a request.
//!
//! Every request gets its client's address ([`ClientIp`], through trusted
//! proxies). A request that opens a transport (an Engine.IO request without
//! `sid`) must also fit the gateway's state (not draining), the connection
//! cap and the client's handshake budget. A refusal here is an HTTP 429 or
//! 503 with `Retry-After` and a JSON body `{ code, message, retryAfterMs }`:
//! socket.io-client takes it for a network error (`xhr poll error`,
//! `websocket error`) and retries with its own backoff, so a burst or a
//! restart costs a client a delay, never its connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::abuse::Retry;
use crate::{Gateway, telemetry};

/// The address of the client behind a request, after trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The prefix of every Socket.IO request.
const PATH: &str = "/socket.io/";

/// The middleware: see the module documentation.
pub async fn door(State(gw): State<Arc<Gateway>>, mut req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(PATH) {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = peer.map(|peer| gw.guard.client_ip(peer, req.headers()));
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientIp(ip));
    }
    if opens_transport(req.method(), req.uri()) {
        let started = Instant::now();
        if let Err(retry) = gw.admit_transport(client) {
            telemetry::handshake(retry.error.code.as_str(), started.elapsed());
            tracing::info!(
                target: "sockgate::auth",
                outcome = retry.error.code.as_str(),
                reason = %retry.error.message,
                remote = client.map(tracing::field::display),
                "transport refused"
            );
            return refused(&retry);
        }
    }
    next.run(req).await
}

/// An Engine.IO request that opens a session: a poll or an upgrade with no `sid`.
fn opens_transport(method: &Method, uri: &Uri) -> bool {
    method == Method::GET
        && !uri
            .query()
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair.starts_with("sid="))
}

fn refused(retry: &Retry) -> Response {
    let status = match retry.error.code {
        sockgate_auth::ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let secs = retry.after.as_secs_f64().ceil().max(1.0) as u64;
    let body = serde_json::json!({
        "code": retry.error.code,
        "message": retry.error.message,
        "retryAfterMs": retry.after.as_millis() as u64,
    });
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_get_without_a_session_opens_a_transport() {
        let open: Uri = "/socket.io/?EIO=4&transport=polling".parse().unwrap();
        let poll: Uri = "/socket.io/?EIO=4&transport=polling&sid=abc"
            .parse()
            .unwrap();
        let upgrade: Uri = "/socket.io/?EIO=4&transport=websocket&sid=abc"
            .parse()
            .unwrap();
        assert!(opens_transport(&Method::GET, &open));
        assert!(!opens_transport(&Method::GET, &poll));
        assert!(!opens_transport(&Method::GET, &upgrade));
        assert!(!opens_transport(&Method::POST, &poll));
        assert!(!opens_transport(&Method::OPTIONS, &open));
    }

    #[test]
    fn a_refusal_says_when_to_come_back() {
        let retry = Retry {
            error: sockgate_auth::AuthError::new(
                sockgate_auth::ErrorCode::RateLimited,
                "too many handshakes from this address; retry in 2 s",
            ),
            after: std::time::Duration::from_millis(1500),
        };
        let response = refused(&retry);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
