//! The Socket.IO handshake's adapter: the engine's CONNECT as the core's
//! [`Handshake`], [`Node::handshake`](sockgate_core::Node::handshake)
//! (which decides, in its order), then the answer in the engine's terms,
//! and one log line per decision.
//!
//! A terminal refusal is a `connect_error` with `err.message` =
//! `CODE: sentence` and `err.data` = `{ code, message }`. A retryable one
//! (`AUTH_UNAVAILABLE`, a connection cap or a shutdown reached between the
//! transport's opening and its CONNECT) closes the transport instead, so
//! that the client retries by itself. The handshake budget is spent
//! earlier, when the transport opens ([`crate::http::admission`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use sockgate_auth::{AuthError, ErrorCode, TokenSource};
use sockgate_core::{Denied, Handshake, Origin, Session};
use sockgate_engine::io::{Auth, ConnectError, RequestHead, SioSocket};

use super::conn::{SocketConn, transport_of};
use crate::transports::openings::{ClientIp, Ticket};
use crate::{Gateway, telemetry};

/// The main namespace's `connect`.
pub(super) async fn authenticate(
    gw: &Gateway,
    socket: &Arc<SioSocket>,
    auth: Auth<'_>,
    head: &RequestHead,
) -> Result<(), ConnectError> {
    let started = Instant::now();
    if let Some(ticket) = head.extensions.get::<Arc<Ticket>>() {
        ticket.settle();
    }
    let remote = head.extensions.get::<ClientIp>().map(|c| c.0);
    let transport = transport_of(socket.engine().transport()).as_str();
    let result = match auth {
        Auth::Invalid => Err(Denied::Auth(AuthError::new(
            ErrorCode::TokenInvalid,
            "handshake auth payload is not valid JSON",
        ))),
        Auth::None => admit(gw, socket, head, Value::Null, remote).await,
        Auth::Payload(auth) => {
            // A CONNECT holds no binary (the engine refuses binary packets).
            let auth = auth.clone().into_json().unwrap_or_default();
            admit(gw, socket, head, auth, remote).await
        }
    };
    let took = started.elapsed();
    let verify_us = took.as_micros() as u64;
    telemetry::handshake(result.as_ref().map_or_else(Denied::outcome, |_| "OK"), took);
    let stats = gw.node.stats();
    stats.handshake(
        result.as_ref().map(|_| ()).map_err(Denied::stats_code),
        took,
    );
    if let Ok((session, _)) = &result {
        stats.returned(&session.user_id, gw.node.clock().now_ms());
    }
    match &result {
        Ok((session, source)) => tracing::info!(
            target: "sockgate::auth",
            outcome = "OK",
            user = %session.user_id,
            session = %session.id,
            remote = remote.map(tracing::field::display),
            transport,
            source = source.as_str(),
            verify_us,
            "handshake accepted"
        ),
        Err(err) => tracing::info!(
            target: "sockgate::auth",
            outcome = err.code(),
            reason = %err.message(),
            remote = remote.map(tracing::field::display),
            transport,
            verify_us,
            "handshake refused"
        ),
    }
    result.map(|_| ()).map_err(refusal)
}

/// A refusal as the engine sends it.
fn refusal(denied: Denied) -> ConnectError {
    if denied.is_retryable() {
        return ConnectError {
            close_transport: true,
            ..ConnectError::default()
        };
    }
    let data = serde_json::json!({ "code": denied.code(), "message": denied.message() });
    ConnectError {
        message: format!("{}: {}", denied.code(), denied.message()),
        data: Some(data),
        close_transport: false,
    }
}

async fn admit(
    gw: &Gateway,
    s: &Arc<SioSocket>,
    head: &RequestHead,
    auth: Value,
    remote: Option<IpAddr>,
) -> Result<(Arc<Session>, TokenSource), Denied> {
    let header = |name: &str| header(head, name);
    let handshake = Handshake {
        namespace: s.namespace(),
        auth: &auth,
        header: &header,
        query: head.uri.query(),
        origin: Origin {
            remote_addr: remote,
            user_agent: header("user-agent").map(str::to_owned),
            transport: transport_of(s.engine().transport()),
        },
    };
    let conn = Arc::new(SocketConn::new(s.clone()));
    let accepted = gw.node.handshake(handshake, conn).await?;
    if let Some(pid) = accepted.pid {
        s.set_pid(pid);
    }
    let ticket = head.extensions.get::<Arc<Ticket>>().cloned();
    s.set_data(Arc::new(super::extract::Attached {
        session: accepted.session.clone(),
        ticket,
    }));
    telemetry::connection(accepted.session.transport.as_str(), 1.0);
    Ok((accepted.session, accepted.source))
}

fn header<'a>(parts: &'a RequestHead, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}
