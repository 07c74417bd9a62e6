//! The `auth:*` events.
//!
//! - `auth:whoami` (ack): `{ userId, sessionId, expiresAt, claims }`.
//! - `auth:refresh { token }` (ack): `{ ok: true, expiresAt }` or
//!   `{ ok: false, code, message }`; on failure the old token stays in force.
//! - `auth:ticket` (ack): a ticket for `POST /auth/refresh`, which renews a
//!   session cookie's session (see [`crate::http::cookie_refresh`]).

use sockgate_auth::Credential;
use sockgate_core::tickets::TICKET_TTL;
use sockgate_engine::io::Ack;
use sockgate_protocol::requests::{Refresh, RefreshAck, TicketAck, WhoAmIAck};

use super::extract::{Authed, reply};
use crate::{Gateway, telemetry};

/// The claims are those `SOCKGATE_EXPOSED_CLAIMS` lets through, never a
/// credential: page JavaScript reads this answer.
pub(super) async fn whoami(gw: &Gateway, authed: Authed, ack: Option<Ack>) {
    let session = &authed.session;
    let identity = session.identity();
    let answer = WhoAmIAck {
        user_id: &session.user_id,
        session_id: session.id.as_str(),
        expires_at: identity.expires_at,
        claims: gw.exposed_claims.apply(&identity.claims),
    };
    reply(ack, &answer);
}

pub(super) async fn refresh(gw: &Gateway, authed: Authed, request: Refresh, ack: Option<Ack>) {
    let session = &authed.session;
    let credential = Credential::Token(request.token.into());
    let result = gw.node.refresh(session, &credential).await;
    let outcome = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "OK");
    telemetry::refresh(outcome);
    tracing::info!(target: "sockgate::auth", outcome, user = %session.user_id, session = %session.id, "refresh");
    match result {
        Ok(expires_at) => reply(
            ack,
            &RefreshAck {
                ok: true,
                expires_at,
            },
        ),
        Err(e) => reply(ack, &e.to_ack()),
    }
}

/// `auth:ticket` (ack): `{ ok: true, ticket, expiresIn }`, the ticket for
/// one `POST /auth/refresh` that renews the session from a rotated session
/// cookie. Handled only where session cookies are on; elsewhere it is
/// `UNKNOWN_EVENT`, like any event no one handles.
pub(super) async fn ticket(gw: &Gateway, authed: Authed, ack: Option<Ack>) {
    let ticket = gw.node.issue_ticket(&authed.session);
    let answer = TicketAck {
        ok: true,
        ticket: &ticket,
        expires_in: TICKET_TTL.as_secs(),
    };
    reply(ack, &answer);
}
