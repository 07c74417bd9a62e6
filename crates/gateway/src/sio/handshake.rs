//! The Socket.IO handshake: find the credential, authenticate it, admit
//! the session, set the socket up, and log one line per decision.
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
use sockgate_auth::{AuthError, Credential, ErrorCode, Handshake, Identity, TokenSource};
use sockgate_core::hooks::{AppRefusal, Refused};
use sockgate_core::recovery::Claim;
use sockgate_core::{Gone, Origin, Resumed, Session};
use sockgate_engine::io::{Auth, ConnectError, Missed, RequestHead, SioSocket};

use super::conn::{SocketConn, transport_of};
use crate::gateway::engine_offset;
use crate::outbound::app::connect::ConnectHook;
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

/// The recovery claim of a CONNECT payload: the official client sends
/// `pid` (and `offset`, once it saw one) beside its `auth` when it
/// reconnects to a server that gave it a `pid`.
fn recovery_claim(gw: &Gateway, auth: &Value) -> Option<Claim> {
    let pid = auth.get("pid")?.as_str()?;
    let offset = auth.get("offset").and_then(Value::as_str);
    gw.node.claim(pid, offset)
}

/// Gives the socket of a recovered `session` its old id and what it
/// missed. When the history cannot give all of it any more (the second
/// read found it over the bounds), the session ends before its client is
/// told anything: its transport closes, and it reconnects to a fresh one.
async fn restore(
    gw: &Gateway,
    socket: &SioSocket,
    conn: &Arc<SocketConn>,
    session: &Session,
    resumed: Resumed,
) -> Result<(), AuthError> {
    let old_socket = resumed.parked.socket.clone();
    let restored = gw.node.restore(conn.as_ref(), session, resumed).await;
    let recovered = restored.and_then(|r| {
        let missed = r.missed.into_iter().map(|e| Missed {
            offset: engine_offset(e.offset),
            event: e.message.event,
            args: vec![
                serde_json::from_str::<Value>(e.message.data.get())
                    .unwrap_or_default()
                    .into(),
            ],
        });
        socket
            .recover(&old_socket, missed.collect(), engine_offset(r.through))
            .then_some(())
    });
    if recovered.is_none() {
        socket.leave_all();
        gw.node.forget(session.id, Gone::HandshakeFailed);
        return Err(AuthError::new(
            ErrorCode::AuthUnavailable,
            "the recovered session's missed messages could not all be read",
        ));
    }
    tracing::info!(target: "sockgate::session", session = %session.id, user = %session.user_id, "session recovered");
    Ok(())
}

/// A handshake refused: by sockgate, with its code, or by the app's
/// connect hook, with the app's own code (always terminal).
pub(super) enum Denied {
    Auth(AuthError),
    App(AppRefusal),
}

impl From<AuthError> for Denied {
    fn from(e: AuthError) -> Self {
        Denied::Auth(e)
    }
}

impl Denied {
    fn code(&self) -> &str {
        match self {
            Denied::Auth(e) => e.code.as_str(),
            Denied::App(r) => &r.code,
        }
    }

    fn message(&self) -> &str {
        match self {
            Denied::Auth(e) => &e.message,
            Denied::App(r) => &r.message,
        }
    }

    /// The metric label: the code, or `REFUSED_BY_APP` for the app's own
    /// (labels are a closed set).
    fn outcome(&self) -> &'static str {
        match self {
            Denied::Auth(e) => e.code.as_str(),
            Denied::App(_) => "REFUSED_BY_APP",
        }
    }

    fn stats_code(&self) -> ErrorCode {
        match self {
            Denied::Auth(e) => e.code,
            Denied::App(_) => ErrorCode::AuthRequired,
        }
    }
}

/// A refusal as the engine sends it.
fn refusal(denied: Denied) -> ConnectError {
    if let Denied::Auth(e) = &denied
        && e.code.is_retryable()
    {
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
    let handshake = Handshake {
        auth: Some(&auth),
        authorization: header(head, "authorization"),
        cookie: header(head, "cookie"),
        query: head.uri.query(),
    };
    gw.node.check_open()?;
    let found = gw.node.sources().find(&handshake);
    let (identity, source, rooms) = match (&gw.connect_hook, found) {
        (Some(hook), found) if hook_takes(gw, &found) => {
            ask_hook(gw, hook, head, &auth, remote, s).await?
        }
        (_, found) => {
            let (credential, source) = found.map_err(|e| explain_missing_cookie(gw, head, e))?;
            check_origin(gw, head, source)?;
            (gw.node.authenticate(&credential).await?, source, Vec::new())
        }
    };
    let by_app = source == TokenSource::ConnectHook;
    let resumed = match recovery_claim(gw, &auth) {
        Some(claim) => gw.node.resume(&identity, &claim).await,
        None => None,
    };
    let origin = Origin {
        remote_addr: remote,
        user_agent: header(head, "user-agent").map(str::to_owned),
        transport: transport_of(s.engine().transport()),
    };
    let mut session = gw.node.session(identity, origin);
    if let Some(resumed) = &resumed {
        session = session.with_id(resumed.session);
    }
    if by_app {
        session = session.admitted_by_app();
    }
    let session = Arc::new(session);
    let admitting = Instant::now();
    let conn = Arc::new(SocketConn::new(s.clone()));
    gw.node.admit(session.clone(), conn.clone()).await?;
    if !rooms.is_empty() {
        let as_conn: sockgate_core::Conn = conn.clone();
        if let Err(e) = gw.node.enter_rooms(&as_conn, &session, &rooms) {
            s.leave_all();
            gw.node.forget(session.id, Gone::HandshakeFailed);
            return Err(AuthError::new(
                ErrorCode::BackendError,
                format!("the connect hook's rooms: {}", e.message),
            )
            .into());
        }
    }
    if let Some(resumed) = resumed {
        restore(gw, s, &conn, &session, resumed).await?;
    }
    if let Some(pid) = gw.node.pid(session.id) {
        s.set_pid(pid);
    }
    let ticket = head.extensions.get::<Arc<Ticket>>().cloned();
    s.set_data(Arc::new(super::extract::Attached {
        session: session.clone(),
        ticket,
    }));
    telemetry::connection(session.transport.as_str(), 1.0);
    gw.node.stats().overhead(admitting.elapsed());
    Ok((session, source))
}

/// Whether the connect hook is asked rather than sockgate's own checks: a
/// handshake with no credential at all, or with a token sockgate cannot
/// verify (no JWT key, or not a JWT: an opaque API key, a session id).
/// Session cookies and JWTs that sockgate has keys for stay sockgate's.
fn hook_takes(gw: &Gateway, found: &Result<(Credential<'_>, TokenSource), AuthError>) -> bool {
    match found {
        Err(e) => e.code == ErrorCode::AuthRequired,
        Ok((Credential::Token(token), _)) => {
            !gw.node.has_jwt_keys() || token.split('.').count() != 3
        }
        Ok((Credential::SessionCookies(_), _)) => false,
    }
}

/// Asks the app's connect hook who the handshake is. The origin is checked
/// first, as for a cookie when the request carries one: the hook may well
/// log users in by their session cookie.
async fn ask_hook(
    gw: &Gateway,
    hook: &ConnectHook,
    head: &RequestHead,
    auth: &Value,
    remote: Option<IpAddr>,
    s: &SioSocket,
) -> Result<(Identity, TokenSource, Vec<String>), Denied> {
    let as_if = match header(head, "cookie") {
        Some(_) => TokenSource::Cookie,
        None => TokenSource::Auth,
    };
    check_origin(gw, head, as_if)?;
    let transport = transport_of(s.engine().transport()).as_str();
    let admitted = hook
        .admit(
            auth,
            |name| header(head, name),
            remote.map(|a| a.to_string()),
            transport,
        )
        .await
        .map_err(|refused| match refused {
            Refused::App(refusal) => Denied::App(refusal),
            Refused::Sockgate(e) => Denied::Auth(e),
        })?;
    let identity = admitted.identity(gw.node.user_claim(), gw.node.clock().now())?;
    gw.node.revocations().check(&identity)?;
    Ok((identity, TokenSource::ConnectHook, admitted.rooms))
}

/// Browsers always send `Origin`; other clients may not, and are let
/// through, unless the token came from a cookie: a browser attaches cookies
/// to a cross-site handshake by itself, so a cookie counts only with an
/// allowed `Origin` or `Sec-Fetch-Site: same-origin`.
fn check_origin(gw: &Gateway, parts: &RequestHead, source: TokenSource) -> Result<(), AuthError> {
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

/// Where cookies authenticate, a handshake with none from a page on
/// another host than the gateway's (`localhost:3000` against
/// `127.0.0.1:3001`) is the browser's doing: a cookie goes only to the host
/// that set it (ports aside) or to its `Domain`. The sentence says so, the
/// first thing anyone trying cookie mode on two dev hosts needs to know.
fn explain_missing_cookie(gw: &Gateway, head: &RequestHead, e: AuthError) -> AuthError {
    let sources = gw.node.sources();
    let cookies = sources.cookie.is_some() || sources.session_cookies.is_some();
    if e.code != ErrorCode::AuthRequired || !cookies {
        return e;
    }
    let page = header(head, "origin").and_then(origin_host);
    let gateway = header(head, "host").and_then(host_of);
    match (page, gateway) {
        (Some(page), Some(gateway)) if !page.eq_ignore_ascii_case(gateway) => AuthError::new(
            ErrorCode::AuthRequired,
            format!(
                "no token and no session cookie: the page is on host {page} and the gateway on \
                 {gateway}, and a browser sends a cookie only to the host that set it (or its \
                 Domain); open both under the same host name (docs/nextauth.md#on-localhost)"
            ),
        ),
        _ => e,
    }
}

/// The host of an `Origin` (`http://localhost:3000` → `localhost`).
fn origin_host(origin: &str) -> Option<&str> {
    host_of(origin.split_once("://")?.1)
}

/// The host of a `Host` value, without the port, when it is a plain host
/// name or address: it is echoed in a refusal, so nothing else is.
fn host_of(authority: &str) -> Option<&str> {
    let host = match authority.strip_prefix('[') {
        Some(v6) => &authority[..v6.find(']')? + 2],
        None => authority.split(':').next()?,
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    (!host.is_empty() && host.len() <= 253 && host.chars().all(plain)).then_some(host)
}

fn header<'a>(parts: &'a RequestHead, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_origins_and_host_headers() {
        assert_eq!(origin_host("http://localhost:3000"), Some("localhost"));
        assert_eq!(
            origin_host("https://app.example.com"),
            Some("app.example.com")
        );
        assert_eq!(origin_host("http://[::1]:3000"), Some("[::1]"));
        assert_eq!(host_of("127.0.0.1:3001"), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:3001"), Some("[::1]"));
        assert_eq!(origin_host("null"), None);
        assert_eq!(host_of("evil\r\nhost"), None);
        assert_eq!(host_of("[::1"), None);
    }
}
