//! The `auth:*` events, and `echo`.
//!
//! - `auth:whoami` (ack): `{ userId, sessionId, expiresAt, claims }`.
//! - `auth:refresh { token }` (ack): `{ ok: true, expiresAt }` or
//!   `{ ok: false, code, message }`; on failure the old token stays in force.
//! - `auth:ticket` (ack): a ticket for `POST /auth/refresh`, which renews a
//!   session cookie's session (see [`crate::http::cookie_refresh`]).
//! - `echo` (ack): the payload, unchanged; used by tests and benchmarks.

use serde::Serialize;
use serde_json::Value;
use sockgate_auth::source::token_from_payload;
use sockgate_auth::{AuthError, Credential, ErrorCode};
use sockgate_core::tickets::TICKET_TTL;
use sockgate_engine::io::Ack;
use sockgate_protocol::payloads::TicketAck;

use super::extract::{Authed, reply};
use crate::{Gateway, telemetry};

/// The answer to `auth:whoami`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WhoAmI<'a> {
    user_id: &'a str,
    session_id: String,
    expires_at: Option<u64>,
    claims: serde_json::Map<String, Value>,
}

/// The claims are those `SOCKGATE_EXPOSED_CLAIMS` lets through, never a
/// credential: page JavaScript reads this answer.
pub(super) async fn whoami(gw: &Gateway, authed: Authed, ack: Option<Ack>) {
    let session = &authed.session;
    let identity = session.identity();
    let answer = WhoAmI {
        user_id: &session.user_id,
        session_id: session.id.to_string(),
        expires_at: identity.expires_at,
        claims: gw.exposed_claims.apply(&identity.claims),
    };
    reply(ack, &answer);
}

pub(super) async fn refresh(
    gw: &Gateway,
    authed: Authed,
    payload: Option<Value>,
    ack: Option<Ack>,
) {
    let session = &authed.session;
    let result = match &payload {
        Some(payload) => match token_from_payload(payload) {
            Ok(token) => {
                let credential = Credential::Token(token.into());
                gw.node.refresh(session, &credential).await
            }
            Err(e) => Err(e),
        },
        None => Err(AuthError::new(
            ErrorCode::TokenInvalid,
            "payload must be { token }",
        )),
    };
    let outcome = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "OK");
    telemetry::refresh(outcome);
    tracing::info!(target: "sockgate::auth", outcome, user = %session.user_id, session = %session.id, "refresh");
    let refreshed = result.is_ok();
    match result {
        Ok(expires_at) => reply(
            ack,
            &serde_json::json!({ "ok": true, "expiresAt": expires_at }),
        ),
        Err(e) => reply(ack, &e.to_ack()),
    }
    if refreshed {
        gw.node.recheck_rooms(session).await;
    }
}

/// `auth:ticket` (ack): `{ ok: true, ticket, expiresIn }`, the ticket for
/// one `POST /auth/refresh` that renews the session from a rotated session
/// cookie. Answered only where session cookies are on; elsewhere it goes
/// unanswered, like any unknown event.
pub(super) async fn ticket(gw: &Gateway, authed: Authed, ack: Option<Ack>) {
    let ticket = gw.node.issue_ticket(&authed.session);
    let answer = TicketAck {
        ok: true,
        ticket: &ticket,
        expires_in: TICKET_TTL.as_secs(),
    };
    reply(ack, &answer);
}

pub(super) async fn echo(data: Option<Value>, ack: Option<Ack>) {
    reply(ack, &data.unwrap_or(Value::Null));
}
