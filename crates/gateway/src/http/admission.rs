//! The door of the Socket.IO path, before the engine sees a request.
//!
//! The door reads the query with the engine's own parser
//! ([`Query::parse`]), so that both see the same `sid`: a query that names
//! `EIO`, `transport` or `sid` twice is refused here with HTTP 400
//! `INVALID_REQUEST` (`…&sid=<own>&sid=<victim>` once passed the door's
//! check as one session and was served as the other).
//!
//! Every request gets its client's address ([`ClientIp`], through trusted
//! proxies). A request that opens a transport (an Engine.IO request without
//! `sid`, whatever its method: the engine decides later which methods open
//! what) must also fit the gateway's state (not draining), the connection
//! cap, the cap on transports not yet authenticated, and the client's
//! handshake budget, all before anything is allocated for it. A refusal here
//! is an HTTP 429 or 503 with `Retry-After` and a JSON body `{ code,
//! message, retryAfterMs }`: socket.io-client takes it for a network error
//! (`xhr poll error`, `websocket error`) and retries with its own backoff, so
//! a burst or a restart costs a client a delay, never its connection.
//!
//! A transport that opened carries a `Ticket` in its request's extensions
//! (see [`crate::transports::openings`]), and its `Opener`: the engine's
//! open of a long-polling session binds its sid to them.
//!
//! Later requests of a long-polling session (its polls, posts and upgrade)
//! carry its Engine.IO sid, a bearer credential: they are refused unless
//! they come from the address that opened the session, and, with
//! `SOCKGATE_ALLOWED_ORIGINS`, from an allowed origin. (A session opened from
//! a forbidden origin is let through to its handshake, which refuses it with
//! the terminal `ORIGIN_FORBIDDEN`.)

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sockgate_auth::ErrorCode;
use sockgate_core::limits::{Retry, budget_key};
use sockgate_core::origins::{Origins, is_cross_origin};
use sockgate_engine::engine::{Query, QueryError, Sid};

use crate::transports::openings::{ClientIp, Opener};
use crate::{Gateway, telemetry};

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
    let client = peer.map(|peer| gw.proxies.client(peer, req.headers()));
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientIp(ip));
    }
    warn_if_origin_refused(&gw, req.headers());
    let session = match Query::parse(req.uri()) {
        Ok(query) => query.session(),
        Err(e) => return invalid_query(e),
    };
    if let Some(sid) = session {
        let sid = sid.unwrap_or_else(unknown_sid);
        return match check(&gw, sid, client, req.headers()) {
            Ok(()) => next.run(req).await,
            Err(refusal) => refusal.into_response(),
        };
    }
    let started = Instant::now();
    let origin_allowed = origin_allowed(gw.node.limits().allowed_origins.as_ref(), req.headers());
    let admitted = gw.node.admit_opening(client);
    let ticket = match admitted.and_then(|()| gw.openings.take()) {
        Ok(ticket) => ticket,
        Err(retry) => {
            telemetry::handshake(retry.error.code.as_str(), started.elapsed());
            gw.node
                .stats()
                .handshake(Err(retry.error.code), started.elapsed());
            tracing::info!(
                target: "sockgate::auth",
                outcome = retry.error.code.as_str(),
                reason = %retry.error.message,
                remote = client.map(tracing::field::display),
                "transport refused"
            );
            return refused(&retry);
        }
    };
    req.extensions_mut().insert(ticket);
    // For a long-polling session, its later requests are held to these
    // (bound to its sid when the engine opens it: `sio::opened`).
    if let Some(ip) = client {
        req.extensions_mut().insert(Opener { ip, origin_allowed });
    }
    next.run(req).await
}

/// Whether a request naming session `sid` may go on.
fn check(
    gw: &Gateway,
    sid: Sid,
    client: Option<IpAddr>,
    headers: &axum::http::HeaderMap,
) -> Result<(), Forbidden> {
    let opener = gw.openings.opener(sid);
    let allowed = gw.node.limits().allowed_origins.as_ref();
    if opener.is_none_or(|o| o.origin_allowed) && !origin_allowed(allowed, headers) {
        return Err(Forbidden::Origin);
    }
    match (opener, client) {
        (Some(opener), Some(client)) if budget_key(opener.ip) != budget_key(client) => {
            Err(Forbidden::Address)
        }
        _ => Ok(()),
    }
}

/// A request for a session refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forbidden {
    Origin,
    Address,
}

impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            Forbidden::Origin => (ErrorCode::OriginForbidden, "this origin may not connect"),
            Forbidden::Address => (
                ErrorCode::Forbidden,
                "this session belongs to another client address",
            ),
        };
        let body = serde_json::json!({ "code": code, "message": message });
        (StatusCode::FORBIDDEN, Json(body)).into_response()
    }
}

/// An absent `Origin` (not a browser), or one `SOCKGATE_ALLOWED_ORIGINS` lists.
fn origin_allowed(allowed: Option<&Origins>, headers: &axum::http::HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (allowed, origin) {
        (Some(allowed), Some(origin)) => allowed.allows(origin),
        _ => true,
    }
}

/// A browser page on an origin that is not allowed gets no CORS headers (or
/// a refusal) and retries forever with `xhr poll error`, which its developer
/// sees only in the browser. Logged once per origin every few minutes,
/// naming the setting to change.
fn warn_if_origin_refused(gw: &Gateway, headers: &axum::http::HeaderMap) {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let Some(origin) = get("origin") else {
        return;
    };
    let allowed = gw
        .node
        .limits()
        .allowed_origins
        .as_ref()
        .is_some_and(|a| a.allows(origin));
    if allowed || !is_cross_origin(origin, get("host")) {
        return;
    }
    let origin: String = origin.chars().take(200).collect();
    if gw.openings.refused_origins.first_in_a_while(&origin) {
        tracing::warn!(
            target: "sockgate::origin",
            origin = %origin,
            "a page on this origin cannot use sockgate: add it to SOCKGATE_ALLOWED_ORIGINS \
             (without it, browsers drop the answers and the client retries forever)"
        );
    }
}

/// The id no session has: what a request naming an impossible sid is
/// checked as (an unknown session).
fn unknown_sid() -> Sid {
    Sid::parse("00000000000000000000").expect("twenty alphanumerics")
}

/// A query the engine would refuse too: HTTP 400 `INVALID_REQUEST`.
fn invalid_query(e: QueryError) -> Response {
    let body = serde_json::json!({
        "code": ErrorCode::InvalidRequest,
        "message": format!("{e}: each of EIO, transport and sid may appear once"),
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn refused(retry: &Retry) -> Response {
    let status = match retry.error.code {
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
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

    #[tokio::test]
    async fn a_repeated_parameter_is_an_invalid_request() {
        let sid = Sid::random();
        let uri: axum::http::Uri = format!("/socket.io/?EIO=4&transport=polling&sid=x&sid={sid}")
            .parse()
            .unwrap();
        let response = invalid_query(Query::parse(&uri).unwrap_err());
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "INVALID_REQUEST");
        assert!(body["message"].as_str().unwrap().contains("sid"), "{body}");
    }

    #[test]
    fn a_refusal_says_when_to_come_back() {
        use sockgate_auth::AuthError;
        let retry = Retry {
            error: AuthError::new(
                ErrorCode::RateLimited,
                "too many handshakes from this address; retry in 2 s",
            ),
            after: std::time::Duration::from_millis(1500),
        };
        let response = refused(&retry);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
