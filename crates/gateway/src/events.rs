//! Client events every authenticated socket answers.
//!
//! - `auth:whoami` (ack): `{ userId, sessionId, expiresAt, claims }`.
//! - `auth:refresh { token }` (ack): `{ ok: true, expiresAt }` or
//!   `{ ok: false, code, message }`; on failure the old token stays in force.
//! - `auth:ticket` (ack): a ticket for `POST /auth/refresh`, which renews a
//!   session cookie's session (see [`crate::cookie_refresh`]).
//! - `echo` (ack): the payload, unchanged; used by tests and benchmarks.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use sockgate_auth::source::token_from_payload;
use sockgate_auth::{AuthError, Credential, ErrorCode};
use sockgate_protocol::events::client;
use sockgate_protocol::payloads::TicketAck;

use crate::sessions::{Session, transport_name, unix_now_ms};
use crate::telemetry;
use crate::{Gateway, rooms};

/// Sets up an admitted socket: joins the user room, starts the expiry clock
/// and registers the handlers.
///
/// Called from the handshake middleware, before socketioxide sends the
/// client its CONNECT: a client may emit the moment it is connected, and
/// socketioxide runs the connect handler as a spawned task, so handlers
/// registered there could miss those first events.
pub(crate) fn serve<A: Adapter>(s: &SocketRef<A>, gw: &Gateway, session: &Arc<Session>) {
    telemetry::connection(transport_name(session.transport), 1.0);
    gw.rooms.enter(s, session, &session.user_room());
    gw.start_clock(session);
    s.on(client::WHOAMI, whoami);
    s.on(client::REFRESH, refresh);
    // Each handler is an entry in every socket's own handler table: this
    // one cost 0.15-0.2 KiB per idle connection (sockgate-bench hold, 5,000
    // connections, two runs each way), so it exists only where it can be used.
    if gw.sources.session_cookies.is_some() {
        s.on(client::TICKET, ticket);
    }
    s.on(client::ECHO, echo);
    rooms::register(s);
    s.on_disconnect(on_disconnect);
}

/// The namespace's connect handler. Everything it would do already
/// happened in [`serve`], before the client was told it is connected.
pub(crate) async fn on_connect() {}

async fn on_disconnect<A: Adapter>(
    s: SocketRef<A>,
    reason: DisconnectReason,
    State(gw): State<Arc<Gateway>>,
) {
    let started = Instant::now();
    if let Some(session) = s.extensions.get::<Arc<Session>>() {
        telemetry::connection(transport_name(session.transport), -1.0);
        // The network failed, not the user leaving: a closed tab or app is
        // a clean close, a client's own disconnect a namespace one.
        let network = matches!(
            reason,
            DisconnectReason::TransportError | DisconnectReason::HeartbeatTimeout
        );
        if network && !session.is_ending() {
            gw.stats.lost(&session.user_id, unix_now_ms());
        }
    }
    gw.forget(s.id);
    gw.stats.overhead(started.elapsed());
}

/// The answer to `auth:whoami`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WhoAmI<'a> {
    user_id: &'a str,
    session_id: String,
    expires_at: Option<u64>,
    claims: &'a serde_json::Map<String, Value>,
}

/// The socket's session, once the event fits the socket's budget. When it
/// does not, the ack has already been answered `RATE_LIMITED`. Nothing for a
/// socket the server is ending: it has its `session:end`.
pub(crate) fn admit_event<A: Adapter>(
    s: &SocketRef<A>,
    gw: &Gateway,
    ack: AckSender<A>,
) -> Option<(Arc<Session>, AckSender<A>)> {
    let session = s.extensions.get::<Arc<Session>>()?;
    if session.is_ending() {
        return None;
    }
    match gw.allow_event(&session) {
        Ok(()) => Some((session, ack)),
        Err(e) => {
            let _ = ack.send(&e.to_ack());
            None
        }
    }
}

async fn whoami<A: Adapter>(s: SocketRef<A>, ack: AckSender<A>, State(gw): State<Arc<Gateway>>) {
    if let Some((session, ack)) = admit_event(&s, &gw, ack) {
        let identity = session.identity();
        let _ = ack.send(&WhoAmI {
            user_id: &session.user_id,
            session_id: session.id.to_string(),
            expires_at: identity.expires_at,
            claims: &identity.claims,
        });
    }
}

async fn refresh<A: Adapter>(
    s: SocketRef<A>,
    TryData(payload): TryData<Value>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    let Some((session, ack)) = admit_event(&s, &gw, ack) else {
        return;
    };
    let result = match &payload {
        Ok(payload) => match token_from_payload(payload) {
            Ok(token) => gw.refresh(&session, &Credential::Token(token.into())).await,
            Err(e) => Err(e),
        },
        Err(_) => Err(AuthError::new(
            ErrorCode::TokenInvalid,
            "payload must be { token }",
        )),
    };
    let outcome = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "OK");
    telemetry::refresh(outcome);
    tracing::info!(target: "sockgate::auth", outcome, user = %session.user_id, session = %session.id, "refresh");
    let refreshed = result.is_ok();
    let _ = match result {
        Ok(expires_at) => ack.send(&serde_json::json!({ "ok": true, "expiresAt": expires_at })),
        Err(e) => ack.send(&e.to_ack()),
    };
    if refreshed {
        gw.recheck_rooms(&session).await;
    }
}

/// `auth:ticket` (ack): `{ ok: true, ticket, expiresIn }`, the ticket for
/// one `POST /auth/refresh` that renews the session from a rotated session
/// cookie (see [`crate::cookie_refresh`]). Registered only where session
/// cookies are on ([`serve`]); elsewhere it goes unanswered, like any
/// unknown event.
async fn ticket<A: Adapter>(s: SocketRef<A>, ack: AckSender<A>, State(gw): State<Arc<Gateway>>) {
    let Some((session, ack)) = admit_event(&s, &gw, ack) else {
        return;
    };
    let ticket = gw.tickets.issue(&session.id, session.sid);
    let ttl = crate::cookie_refresh::TICKET_TTL.as_secs();
    let _ = ack.send(&TicketAck {
        ok: true,
        ticket: &ticket,
        expires_in: ttl,
    });
}

async fn echo<A: Adapter>(
    s: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    State(gw): State<Arc<Gateway>>,
) {
    if let Some((_, ack)) = admit_event(&s, &gw, ack) {
        let _ = ack.send(&data.unwrap_or(Value::Null));
    }
}
