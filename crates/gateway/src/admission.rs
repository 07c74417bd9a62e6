//! The door of the Socket.IO path, before socketioxide sees a request.
//!
//! Every request gets its client's address ([`ClientIp`], through trusted
//! proxies). A request that opens a transport (an Engine.IO request without
//! `sid`) must also fit the gateway's state (not draining), the connection
//! cap, the cap on transports not yet authenticated, and the client's
//! handshake budget, all before anything is allocated for it. A refusal here
//! is an HTTP 429 or 503 with `Retry-After` and a JSON body `{ code,
//! message, retryAfterMs }`: socket.io-client takes it for a network error
//! (`xhr poll error`, `websocket error`) and retries with its own backoff, so
//! a burst or a restart costs a client a delay, never its connection.
//!
//! A transport that opened carries a [`Ticket`] in its request's extensions,
//! which socketioxide keeps for the transport's life: it counts as pending
//! until its Socket.IO handshake, and frees its place when the transport
//! goes, whichever comes first.
//!
//! Later requests of a long-polling session (its polls, posts and upgrade)
//! carry its Engine.IO sid, a bearer credential: they are refused unless
//! they come from the address that opened the session, and, with
//! `SOCKGATE_ALLOWED_ORIGINS`, from an allowed origin. (A session opened from
//! a forbidden origin is let through to its handshake, which refuses it with
//! the terminal `ORIGIN_FORBIDDEN`.)

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use socketioxide::socket::Sid;
use sockgate_auth::{AuthError, ErrorCode};

use crate::abuse::Retry;
use crate::proxies::budget_key;
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
    warn_if_origin_refused(&gw, req.headers());
    if let Some(sid) = session_param(req.uri()) {
        return match gw.openings.check(sid, client, &gw, req.headers()) {
            Ok(()) => next.run(req).await,
            Err(refusal) => refusal.into_response(),
        };
    }
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let started = Instant::now();
    let origin_allowed = origin_allowed(&gw, req.headers());
    let ticket = match gw.admit_transport(client) {
        Ok(ticket) => ticket,
        Err(retry) => {
            telemetry::handshake(retry.error.code.as_str(), started.elapsed());
            gw.stats.handshake(Err(retry.error.code), started.elapsed());
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
    req.extensions_mut().insert(ticket.clone());
    let answer = next.run(req).await;
    match client {
        Some(ip) if is_polling_open(&answer) => {
            let opener = Opener { ip, origin_allowed };
            bind_polling_open(answer, &ticket, opener).await
        }
        _ => answer,
    }
}

/// The transports opened and not yet authenticated, and the addresses that
/// opened the long-polling sessions.
#[derive(Debug)]
pub struct Openings {
    pending: AtomicUsize,
    max_pending: usize,
    polling: Mutex<HashMap<Sid, Opener>>,
    /// Origins already warned about (see `warn_if_origin_refused`).
    refused_origins: crate::origins::RefusedOrigins,
}

/// Who opened a long-polling session.
#[derive(Debug, Clone, Copy)]
struct Opener {
    ip: IpAddr,
    /// Whether its `Origin` was allowed (or absent).
    origin_allowed: bool,
}

impl Openings {
    pub fn new(max_pending: usize) -> Self {
        Self {
            pending: AtomicUsize::new(0),
            max_pending,
            polling: Mutex::new(HashMap::new()),
            refused_origins: Default::default(),
        }
    }

    /// Transports opened and not yet authenticated (nor gone).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes a place among the pending transports, or says when to retry.
    pub(crate) fn take(self: &Arc<Self>) -> Result<Arc<Ticket>, Retry> {
        let taken = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_pending).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(Retry {
                error: AuthError::new(
                    ErrorCode::ConnectionLimit,
                    "too many connections are opening; try again shortly",
                ),
                after: PENDING_RETRY,
            });
        }
        Ok(Arc::new(Ticket {
            openings: self.clone(),
            settled: AtomicBool::new(false),
            polling_sid: OnceLock::new(),
        }))
    }

    /// Whether a request naming session `sid` may go on.
    fn check(
        &self,
        sid: Sid,
        client: Option<IpAddr>,
        gw: &Gateway,
        headers: &axum::http::HeaderMap,
    ) -> Result<(), Forbidden> {
        let opener = lock(&self.polling).get(&sid).copied();
        if opener.is_none_or(|o| o.origin_allowed) && !origin_allowed(gw, headers) {
            return Err(Forbidden::Origin);
        }
        match (opener, client) {
            (Some(opener), Some(client)) if budget_key(opener.ip) != budget_key(client) => {
                Err(Forbidden::Address)
            }
            _ => Ok(()),
        }
    }
}

/// A transport's place among the pending ones, held in its request's
/// extensions for as long as socketioxide keeps the transport.
#[derive(Debug)]
pub struct Ticket {
    openings: Arc<Openings>,
    settled: AtomicBool,
    polling_sid: OnceLock<Sid>,
}

impl Ticket {
    /// The transport has reached its Socket.IO handshake: it no longer counts
    /// as pending.
    pub fn settle(&self) {
        if !self.settled.swap(true, Ordering::AcqRel) {
            self.openings.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.settle();
        if let Some(sid) = self.polling_sid.get() {
            lock(&self.openings.polling).remove(sid);
        }
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An absent `Origin` (not a browser), or one `SOCKGATE_ALLOWED_ORIGINS` lists.
fn origin_allowed(gw: &Gateway, headers: &axum::http::HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (&gw.limits.allowed_origins, origin) {
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
        .limits
        .allowed_origins
        .as_ref()
        .is_some_and(|a| a.allows(origin));
    if allowed || !crate::origins::is_cross_origin(origin, get("host")) {
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

/// How soon a client refused for the pending cap may try again.
const PENDING_RETRY: Duration = Duration::from_secs(1);

/// The `sid` an Engine.IO request names.
fn session_param(uri: &Uri) -> Option<Sid> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("sid="))
        .map(|sid| sid.parse().unwrap_or(Sid::ZERO))
}

/// A long-polling open answers `0{"sid":...}` as text; a WebSocket open
/// answers 101.
fn is_polling_open(answer: &Response) -> bool {
    answer.status() == StatusCode::OK
}

/// Notes which address opened a long-polling session, from the sid in the
/// open packet it was answered.
async fn bind_polling_open(answer: Response, ticket: &Ticket, opener: Opener) -> Response {
    let (parts, body) = answer.into_parts();
    let Ok(body) = axum::body::to_bytes(body, OPEN_PACKET_MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    if let Some(sid) = open_packet_sid(&body)
        && ticket.polling_sid.set(sid).is_ok()
    {
        lock(&ticket.openings.polling).insert(sid, opener);
    }
    Response::from_parts(parts, Body::from(body))
}

/// An open packet is a few hundred bytes.
const OPEN_PACKET_MAX: usize = 4096;

fn open_packet_sid(body: &[u8]) -> Option<Sid> {
    #[derive(serde::Deserialize)]
    struct Open {
        sid: String,
    }
    let open: Open = serde_json::from_slice(body.strip_prefix(b"0")?).ok()?;
    open.sid.parse().ok()
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

    #[test]
    fn the_session_comes_from_the_query_and_the_open_packet() {
        let sid = Sid::new();
        let poll: Uri = format!("/socket.io/?EIO=4&transport=polling&sid={sid}")
            .parse()
            .unwrap();
        assert_eq!(session_param(&poll), Some(sid));
        let open: Uri = "/socket.io/?EIO=4&transport=polling".parse().unwrap();
        assert_eq!(session_param(&open), None);
        let junk: Uri = "/socket.io/?EIO=4&sid=nope".parse().unwrap();
        assert_eq!(session_param(&junk), Some(Sid::ZERO));
        let packet = format!("0{{\"sid\":\"{sid}\",\"upgrades\":[\"websocket\"]}}");
        assert_eq!(open_packet_sid(packet.as_bytes()), Some(sid));
        assert_eq!(open_packet_sid(b"{\"code\":\"RATE_LIMITED\"}"), None);
    }

    #[test]
    fn a_ticket_holds_a_pending_place_until_settled_or_dropped() {
        let openings = Arc::new(Openings::new(2));
        let a = openings.take().unwrap();
        let b = openings.take().unwrap();
        assert_eq!(openings.pending(), 2);
        let full = openings.take().unwrap_err();
        assert_eq!(full.error.code, ErrorCode::ConnectionLimit);
        a.settle();
        a.settle();
        assert_eq!(openings.pending(), 1, "settling twice frees one place");
        drop(a);
        assert_eq!(openings.pending(), 1, "a settled ticket frees nothing more");
        let sid = Sid::new();
        b.polling_sid.set(sid).unwrap();
        let opener = Opener {
            ip: "10.0.0.1".parse().unwrap(),
            origin_allowed: true,
        };
        lock(&openings.polling).insert(sid, opener);
        drop(b);
        assert_eq!(openings.pending(), 0);
        assert!(
            lock(&openings.polling).is_empty(),
            "the binding goes with the transport"
        );
    }

    #[test]
    fn a_refusal_says_when_to_come_back() {
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
