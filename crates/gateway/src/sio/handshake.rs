//! The Socket.IO connect middleware: find the token, authenticate it, admit
//! the session, set the socket up, and log one line per decision.
//!
//! A terminal refusal returns an [`AuthError`]; socketioxide sends it to the
//! client as `connect_error` with `err.message` = `CODE: sentence`. A
//! retryable one (`AUTH_UNAVAILABLE`, a connection cap or a shutdown reached
//! between the transport's opening and its CONNECT) closes the transport
//! instead, so that the client retries by itself (see [`crate::transports`]).
//! The handshake budget is spent earlier, when the transport opens
//! ([`crate::http::admission`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::http::request::Parts;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State, TryData};
use sockgate_auth::{AuthError, ErrorCode, Handshake, TokenSource};
use sockgate_core::{Origin, Session};

use super::conn::{SocketConn, transport_of};
use crate::transports::openings::{ClientIp, Ticket};
use crate::{Gateway, telemetry};

pub(crate) async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(gw): State<Arc<Gateway>>,
) -> Result<(), AuthError> {
    let started = Instant::now();
    let parts = s.req_parts();
    if let Some(ticket) = parts.extensions.get::<Arc<Ticket>>() {
        ticket.settle();
    }
    let remote = parts.extensions.get::<ClientIp>().map(|c| c.0);
    let transport = transport_of(s.transport_type()).as_str();
    let result = admit(&gw, &s, parts, auth, remote).await;
    let took = started.elapsed();
    let verify_us = took.as_micros() as u64;
    telemetry::handshake(
        result.as_ref().map_or_else(|e| e.code.as_str(), |_| "OK"),
        took,
    );
    let stats = gw.node.stats();
    stats.handshake(result.as_ref().map(|_| ()).map_err(|e| e.code), took);
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
            outcome = err.code.as_str(),
            reason = %err.message,
            remote = remote.map(tracing::field::display),
            transport,
            verify_us,
            "handshake refused"
        ),
    }
    if let Err(err) = &result
        && err.code.is_retryable()
    {
        gw.transports.refuse(&s).await;
    }
    result.map(|_| ())
}

async fn admit<A: Adapter>(
    gw: &Gateway,
    s: &SocketRef<A>,
    parts: &Parts,
    auth: Result<Value, socketioxide::ParserError>,
    remote: Option<IpAddr>,
) -> Result<(Arc<Session>, TokenSource), AuthError> {
    let auth = auth.map_err(|_| {
        AuthError::new(
            ErrorCode::TokenInvalid,
            "handshake auth payload is not valid JSON",
        )
    })?;
    let handshake = Handshake {
        auth: Some(&auth),
        authorization: header(parts, "authorization"),
        cookie: header(parts, "cookie"),
        query: parts.uri.query(),
    };
    gw.node.check_open()?;
    let (credential, source) = gw.node.sources().find(&handshake)?;
    check_origin(gw, parts, source)?;
    let identity = gw.node.authenticate(&credential).await?;
    let origin = Origin {
        remote_addr: remote,
        user_agent: header(parts, "user-agent").map(str::to_owned),
        transport: transport_of(s.transport_type()),
    };
    let session = Arc::new(gw.node.session(identity, origin));
    let conn = SocketConn::new(s.clone(), gw.transports.clone());
    let admitting = Instant::now();
    gw.node.admit(session.clone(), Arc::new(conn)).await?;
    super::serve(s, gw, &session);
    gw.node.stats().overhead(admitting.elapsed());
    Ok((session, source))
}

/// Browsers always send `Origin`; other clients may not, and are let
/// through, unless the token came from a cookie: a browser attaches cookies
/// to a cross-site handshake by itself, so a cookie counts only with an
/// allowed `Origin` or `Sec-Fetch-Site: same-origin`.
fn check_origin(gw: &Gateway, parts: &Parts, source: TokenSource) -> Result<(), AuthError> {
    let forbidden = || AuthError::new(ErrorCode::OriginForbidden, "this origin may not connect");
    match header(parts, "origin") {
        Some(origin) if let Some(allowed) = &gw.node.limits().allowed_origins => {
            if allowed.allows(origin) {
                Ok(())
            } else {
                Err(forbidden())
            }
        }
        None if source.is_cookie() => {
            if header(parts, "sec-fetch-site") == Some("same-origin") {
                Ok(())
            } else {
                Err(AuthError::new(
                    ErrorCode::OriginForbidden,
                    "a cookie session needs an allowed Origin",
                ))
            }
        }
        _ => Ok(()),
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}
