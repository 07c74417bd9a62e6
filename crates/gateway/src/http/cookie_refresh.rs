//! Renewing a session that a Next-Auth cookie opened.
//!
//! A browser holds no token to send with `auth:refresh`: its credential is
//! an HTTP-only cookie, sent only with HTTP requests, and a WebSocket sends
//! none after its handshake. So the refresh goes through an HTTP request
//! that carries the (rotated) cookie, tied to the socket by a ticket:
//!
//! 1. the socket asks `auth:ticket` and gets `{ ok, ticket, expiresIn }`: a
//!    random, single-use value valid for a minute
//!    ([`sockgate_core::tickets`]);
//! 2. the page sends `POST /auth/refresh` with `{ "ticket": … }` and its
//!    cookies (`credentials: "include"`), from an allowed origin;
//! 3. sockgate checks the ticket, opens the cookie exactly like a handshake
//!    and applies it to the ticket's session as `auth:refresh` would: same
//!    user, new expiry, rooms re-checked. The answer is `auth:refresh`'s
//!    `{ ok: true, expiresAt }` or `{ ok: false, code, message }`.
//!
//! The socket stays open throughout, so nothing it receives is lost.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sockgate_auth::{AuthError, Credential, ErrorCode, Handshake};
use sockgate_core::SessionId;

use crate::{Gateway, telemetry};

/// The body of `POST /auth/refresh`.
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
    let allowed = gw.node.limits().allowed_origins.as_ref();
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
    let session = gw.node.redeem_ticket(&body.ticket)?;
    let handshake = Handshake {
        cookie: header("cookie"),
        ..Default::default()
    };
    let (credential, _) = gw.node.sources().find(&handshake)?;
    if !matches!(credential, Credential::SessionCookies(_)) {
        return Err(AuthError::new(ErrorCode::AuthRequired, "no session cookie"));
    }
    let expires_at = gw.node.refresh(&session, &credential).await?;
    Ok((session.id, expires_at))
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
