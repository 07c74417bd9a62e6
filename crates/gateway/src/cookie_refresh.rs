//! Renewing a session that a Next-Auth cookie opened.
//!
//! A browser holds no token to send with `auth:refresh`: its credential is
//! an HTTP-only cookie, sent only with HTTP requests, and a WebSocket sends
//! none after its handshake. So the refresh goes through an HTTP request
//! that carries the (rotated) cookie, tied to the socket by a ticket:
//!
//! 1. the socket asks `auth:ticket` and gets `{ ok, ticket, expiresIn }`: a
//!    random, single-use value valid for [`TICKET_TTL`];
//! 2. the page sends `POST /auth/refresh` with `{ "ticket": … }` and its
//!    cookies (`credentials: "include"`), from an allowed origin;
//! 3. sockgate checks the ticket, opens the cookie exactly like a handshake
//!    and applies it to the ticket's session as `auth:refresh` would: same
//!    user, new expiry, rooms re-checked. The answer is `auth:refresh`'s
//!    `{ ok: true, expiresAt }` or `{ ok: false, code, message }`.
//!
//! The socket stays open throughout, so nothing it receives is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sockgate_auth::{AuthError, Credential, ErrorCode, Handshake};
use subtle::ConstantTimeEq;

use crate::Gateway;
use socketioxide::socket::Sid;

use crate::sessions::{SessionId, random_alphanumeric};
use crate::telemetry;

/// How long a ticket may wait for its request.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// The outstanding ticket of each session that asked for one, with the
/// session's registry key (so a redeemed ticket finds its session without
/// a scan of the registry).
#[derive(Default)]
pub struct Tickets {
    by_session: Mutex<HashMap<SessionId, Issued>>,
}

struct Issued {
    secret: String,
    at: Instant,
    sid: Sid,
}

impl Tickets {
    /// A new ticket for `session`, replacing any it had:
    /// `<session id>.<32 random alphanumerics>`.
    pub fn issue(&self, session: &SessionId, sid: Sid) -> String {
        let secret = random_alphanumeric(32);
        let ticket = format!("{session}.{secret}");
        let mut map = self.by_session.lock().unwrap_or_else(|e| e.into_inner());
        let issued = Issued {
            secret,
            at: Instant::now(),
            sid,
        };
        map.insert(session.clone(), issued);
        ticket
    }

    /// The session a ticket was issued to, once: a used, replaced or
    /// expired ticket names none.
    pub fn redeem(&self, ticket: &str) -> Option<(SessionId, Sid)> {
        let (id, secret) = ticket.split_once('.')?;
        let id = SessionId::from_public(id);
        let mut map = self.by_session.lock().unwrap_or_else(|e| e.into_inner());
        let issued = map.get(&id)?;
        if !bool::from(issued.secret.as_bytes().ct_eq(secret.as_bytes())) {
            return None;
        }
        let fresh = issued.at.elapsed() < TICKET_TTL;
        let sid = issued.sid;
        map.remove(&id);
        fresh.then_some((id, sid))
    }

    /// Drops the ticket of a session that ended.
    pub fn forget(&self, session: &SessionId) {
        let mut map = self.by_session.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(session);
    }
}

#[derive(Deserialize)]
pub struct RefreshRequest {
    ticket: String,
}

/// `POST /auth/refresh`.
pub async fn refresh(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Json<RefreshRequest>, axum::extract::rejection::JsonRejection>,
) -> (StatusCode, Json<Value>) {
    let result = apply(&gw, &headers, body.ok().map(|b| b.0)).await;
    let outcome = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "OK");
    telemetry::refresh(outcome);
    match result {
        Ok((session, expires_at)) => {
            tracing::info!(target: "sockgate::auth", outcome, session = %session, source = "session-cookie", "refresh");
            (
                StatusCode::OK,
                Json(json!({ "ok": true, "expiresAt": expires_at })),
            )
        }
        Err(e) => {
            tracing::info!(target: "sockgate::auth", outcome, reason = %e.message, source = "session-cookie", "refresh refused");
            (status_of(e.code), Json(e.to_ack()))
        }
    }
}

async fn apply(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Option<RefreshRequest>,
) -> Result<(SessionId, Option<u64>), AuthError> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    // A browser attaches the cookie to any site's request: only the app's
    // own origins may spend a ticket.
    let allowed = gw.limits.allowed_origins.as_ref();
    if !header("origin").is_some_and(|o| allowed.is_some_and(|a| a.allows(o))) {
        return Err(AuthError::new(
            ErrorCode::OriginForbidden,
            "a cookie refresh needs an allowed Origin",
        ));
    }
    let body = body.ok_or_else(|| {
        AuthError::new(
            ErrorCode::InvalidRequest,
            "the body must be { \"ticket\": string }",
        )
    })?;
    // The ticket first: a request without a live one costs no decryption.
    let (id, sid) = gw.tickets.redeem(&body.ticket).ok_or_else(|| {
        AuthError::new(
            ErrorCode::Unauthorized,
            "the ticket is unknown, used or expired",
        )
    })?;
    let (session, _) = gw
        .sessions
        .get(sid)
        .ok_or_else(|| AuthError::new(ErrorCode::NotFound, "the ticket's session has ended"))?;
    let handshake = Handshake {
        cookie: header("cookie"),
        ..Default::default()
    };
    let (credential, _) = gw.sources.find(&handshake)?;
    if !matches!(credential, Credential::SessionCookies(_)) {
        return Err(AuthError::new(ErrorCode::AuthRequired, "no session cookie"));
    }
    let expires_at = gw.refresh(&session, &credential).await?;
    gw.recheck_rooms(&session).await;
    Ok((id, expires_at))
}

fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::OriginForbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AuthUnavailable | ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
        // The cookie's own refusals, as a handshake would have them.
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_good_once_for_its_session_only() {
        let tickets = Tickets::default();
        let a = SessionId::random();
        let b = SessionId::random();
        let sid = Sid::new();
        let ticket = tickets.issue(&a, sid);
        let forged = format!("{b}.{}", ticket.split_once('.').unwrap().1);
        assert_eq!(tickets.redeem(&forged), None);
        assert_eq!(tickets.redeem(&ticket), Some((a.clone(), sid)));
        assert_eq!(tickets.redeem(&ticket), None, "single use");
        let old = tickets.issue(&a, sid);
        let new = tickets.issue(&a, sid);
        assert_eq!(tickets.redeem(&old), None, "replaced");
        assert_eq!(tickets.redeem(&new), Some((a.clone(), sid)));
        let gone = tickets.issue(&a, sid);
        tickets.forget(&a);
        assert_eq!(tickets.redeem(&gone), None);
        assert_eq!(tickets.redeem("no-dot"), None);
    }
}
