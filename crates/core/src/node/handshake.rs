//! A handshake, in the core's order: the node open, the credential found
//! (or the app's connect hook asked), the origin, the token verified and
//! checked against revocations, the session and its limits admitted, the
//! hook's rooms entered, a recovered session given back what it missed.
//! The transport adapter converts its request into a [`Handshake`] and
//! the answer into its wire form; it decides nothing.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use sockgate_auth::{AuthError, Credential, ErrorCode, Identity, TokenSource};

use super::{Gone, Node, Resumed};
use crate::connection::Conn;
use crate::hooks::{AppRefusal, Connect, Refused};
use crate::namespace::Namespace;
use crate::recovery::Claim;
use crate::session::{Origin, Session};

/// A handshake, as the transport adapter hands it over.
pub struct Handshake<'a> {
    /// The namespace it connects to (`/`, the main one, or another of
    /// [`crate::namespace::Namespaces`]).
    pub namespace: &'a str,
    /// The CONNECT payload (`auth` of the official client, with its `pid`
    /// and `offset` when it recovers); `Null` without one.
    pub auth: &'a Value,
    /// A request header, by its lower-case name.
    pub header: &'a (dyn Fn(&str) -> Option<&'a str> + Send + Sync),
    /// The request's query string.
    pub query: Option<&'a str>,
    /// Where the client connects from, and how.
    pub origin: Origin,
}

impl Handshake<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        (self.header)(name)
    }
}

/// A handshake accepted.
#[derive(Debug)]
pub struct Accepted {
    /// The session, registered.
    pub session: Arc<Session>,
    /// Where its credential came from.
    pub source: TokenSource,
    /// The `pid` the client recovers with, when recovery is on.
    pub pid: Option<String>,
}

/// A handshake refused: by sockgate, with its code, or by the app's
/// connect hook, with the app's own code (always terminal).
#[derive(Debug)]
pub enum Denied {
    /// sockgate's refusal.
    Auth(AuthError),
    /// The app's.
    App(AppRefusal),
}

impl From<AuthError> for Denied {
    fn from(e: AuthError) -> Self {
        Denied::Auth(e)
    }
}

impl Denied {
    /// The code the client sees.
    pub fn code(&self) -> &str {
        match self {
            Denied::Auth(e) => e.code.as_str(),
            Denied::App(r) => &r.code,
        }
    }

    /// The sentence the client sees.
    pub fn message(&self) -> &str {
        match self {
            Denied::Auth(e) => &e.message,
            Denied::App(r) => &r.message,
        }
    }

    /// The metric label: the code, or `REFUSED_BY_APP` for the app's own
    /// (labels are a closed set).
    pub fn outcome(&self) -> &'static str {
        match self {
            Denied::Auth(e) => e.code.as_str(),
            Denied::App(_) => "REFUSED_BY_APP",
        }
    }

    /// The code the figures count it under.
    pub fn stats_code(&self) -> ErrorCode {
        match self {
            Denied::Auth(e) => e.code,
            Denied::App(_) => ErrorCode::AuthRequired,
        }
    }

    /// Whether the client should retry by itself (its transport closed,
    /// rather than a `connect_error`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Denied::Auth(e) if e.code.is_retryable())
    }
}

impl Node {
    /// Runs a handshake on `conn`, the connection it opens: a registered
    /// session, or why not. On a refusal nothing of it is left.
    pub async fn handshake(&self, hs: Handshake<'_>, conn: Conn) -> Result<Accepted, Denied> {
        self.check_open()?;
        let space = self.namespaces.find(hs.namespace).cloned().ok_or_else(|| {
            AuthError::new(
                ErrorCode::NamespaceForbidden,
                "this namespace is not served",
            )
        })?;
        let (identity, source, rooms) = self.who(&hs, &space).await?;
        space.check_claims(&identity)?;
        let resumed = match recovery_claim(self, hs.auth) {
            Some(claim) => self.resume(&identity, &claim).await,
            None => None,
        };
        let riding = self.rides(&identity.user_id, &conn);
        let events = match space.event_rate {
            Some(rate) => self.guard.event_budget_at(rate),
            None => self.guard.event_budget(),
        };
        let mut session = Session::new(identity, hs.origin, events, self.clock.now())
            .with_user_room(self.user_room.clone())
            .in_namespace(hs.namespace);
        session.riding = riding;
        if let Some(resumed) = &resumed {
            session = session.with_id(resumed.session);
        }
        if source == TokenSource::ConnectHook {
            session = session.admitted_by_app();
        }
        let session = Arc::new(session);
        let admitting = Instant::now();
        self.admit(session.clone(), conn.clone()).await?;
        if !rooms.is_empty()
            && let Err(e) = self.enter_rooms(&conn, &session, &rooms)
        {
            self.undo(&conn, &session);
            return Err(AuthError::new(
                ErrorCode::BackendError,
                format!("the connect hook's rooms: {}", e.message),
            )
            .into());
        }
        match resumed {
            Some(resumed) => self.give_back(&conn, &session, resumed).await?,
            // Before the CONNECT: a message to the user sent once it is
            // connected reaches it.
            None => self.broker.listening(&session.rooms()).await,
        }
        self.stats.overhead(admitting.elapsed());
        Ok(Accepted {
            pid: self.pid(session.id),
            session,
            source,
        })
    }

    /// Whether a socket of `user` on `conn` rides on a connection that
    /// already carries a counted session of the user (another namespace
    /// of the same `io()` Manager): the session limit counts connections.
    ///
    /// Asked only when another socket shares the transport: the look at
    /// the user's sessions grows with them, and every handshake of a
    /// shared identity (thousands of sockets of one `sub`) paid it.
    fn rides(&self, user: &str, conn: &Conn) -> bool {
        let Some(carrier) = conn.carrier().filter(|_| conn.shares_carrier()) else {
            return false;
        };
        self.sessions
            .of_user(user)
            .iter()
            .any(|(s, other)| !s.riding && other.carrier() == Some(carrier))
    }

    /// Who the handshake is: sockgate's own checks, or the connect hook's
    /// answer; with the rooms the hook starts the session in. In a public
    /// namespace, a handshake without a credential is anonymous.
    async fn who(
        &self,
        hs: &Handshake<'_>,
        space: &Namespace,
    ) -> Result<(Identity, TokenSource, Vec<String>), Denied> {
        let sources = space.sources.as_ref().unwrap_or(&self.sources);
        let found = sources.find(&sockgate_auth::Handshake {
            auth: Some(hs.auth),
            authorization: hs.header("authorization"),
            cookie: hs.header("cookie"),
            query: hs.query,
        });
        if space.public && matches!(&found, Err(e) if e.code == ErrorCode::AuthRequired) {
            // A page of another site may not open it either.
            self.check_origin(hs, TokenSource::Anonymous)?;
            return Ok((anonymous(), TokenSource::Anonymous, Vec::new()));
        }
        if self.app.has_connect_hook() && hook_takes(self, &found) {
            return self.ask_hook(hs).await;
        }
        let (credential, source) = found.map_err(|e| self.explain_missing_cookie(hs, e))?;
        self.check_origin(hs, source)?;
        Ok((self.authenticate(&credential).await?, source, Vec::new()))
    }

    /// Asks the app's connect hook who the handshake is. The origin is
    /// checked first, as for a cookie when the request carries one: the
    /// hook may well log users in by their session cookie.
    async fn ask_hook(
        &self,
        hs: &Handshake<'_>,
    ) -> Result<(Identity, TokenSource, Vec<String>), Denied> {
        let as_if = match hs.header("cookie") {
            Some(_) => TokenSource::Cookie,
            None => TokenSource::Auth,
        };
        self.check_origin(hs, as_if)?;
        let header = |name: &str| hs.header(name).map(str::to_owned);
        let connect = Connect {
            auth: hs.auth,
            header: &header,
            remote_addr: hs.origin.remote_addr.map(|a| a.to_string()),
            transport: hs.origin.transport.as_str(),
        };
        let admitted = self
            .app
            .on_connect(connect)
            .await
            .map_err(|refused| match refused {
                Refused::App(refusal) => Denied::App(refusal),
                Refused::Sockgate(e) => Denied::Auth(e),
            })?;
        let identity = admitted.identity(self.user_claim(), self.clock.now())?;
        self.revocations.check(&identity)?;
        Ok((identity, TokenSource::ConnectHook, admitted.rooms))
    }

    /// Gives a recovered session its old transport id and what it missed.
    /// When the history cannot give all of it any more (the second read
    /// found it over the bounds), the session ends before its client is
    /// told anything: its transport closes, and it reconnects to a fresh
    /// one.
    async fn give_back(
        &self,
        conn: &Conn,
        session: &Session,
        resumed: Resumed,
    ) -> Result<(), AuthError> {
        let old_id = resumed.parked.socket.clone();
        let restored = self.restore(conn.as_ref(), session, resumed).await;
        let recovered = restored.is_some_and(|r| conn.recover(&old_id, r.missed, r.through));
        if !recovered {
            self.undo(conn, session);
            return Err(AuthError::new(
                ErrorCode::AuthUnavailable,
                "the recovered session's missed messages could not all be read",
            ));
        }
        tracing::info!(target: "sockgate::session", session = %session.id, user = %session.user_id, "session recovered");
        Ok(())
    }

    /// Takes back an admitted session whose handshake failed after all.
    fn undo(&self, conn: &Conn, session: &Session) {
        conn.leave_all();
        self.forget(session.id, Gone::HandshakeFailed);
    }

    /// Browsers always send `Origin`; other clients may not, and are let
    /// through, unless the token came from a cookie: a browser attaches
    /// cookies to a cross-site handshake by itself, so a cookie counts only
    /// with an allowed `Origin` or `Sec-Fetch-Site: same-origin`.
    fn check_origin(&self, hs: &Handshake<'_>, source: TokenSource) -> Result<(), AuthError> {
        let forbidden =
            || AuthError::new(ErrorCode::OriginForbidden, "this origin may not connect");
        match hs.header("origin") {
            Some(origin) if let Some(allowed) = &self.limits.allowed_origins => {
                if allowed.allows(origin) {
                    Ok(())
                } else {
                    Err(forbidden())
                }
            }
            None if source.is_cookie() => {
                if hs.header("sec-fetch-site") == Some("same-origin") {
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
    /// `127.0.0.1:3001`) is the browser's doing: a cookie goes only to the
    /// host that set it (ports aside) or to its `Domain`. The sentence says
    /// so, the first thing anyone trying cookie mode on two dev hosts needs
    /// to know.
    fn explain_missing_cookie(&self, hs: &Handshake<'_>, e: AuthError) -> AuthError {
        let cookies = self.sources.cookie.is_some() || self.sources.session_cookies.is_some();
        if e.code != ErrorCode::AuthRequired || !cookies {
            return e;
        }
        let page = hs.header("origin").and_then(origin_host);
        let gateway = hs.header("host").and_then(host_of);
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
}

/// A public namespace's socket without a credential: `anon-` and a random
/// id, with no `exp`.
fn anonymous() -> Identity {
    let user = format!("anon-{}", crate::session::random_alphanumeric(16));
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), Value::String(user));
    Identity::from_claims(claims, "sub").expect("an anonymous id is a valid user id")
}

/// The recovery claim of a CONNECT payload: the official client sends
/// `pid` (and `offset`, once it saw one) beside its `auth` when it
/// reconnects to a server that gave it a `pid`.
fn recovery_claim(node: &Node, auth: &Value) -> Option<Claim> {
    let pid = auth.get("pid")?.as_str()?;
    let offset = auth.get("offset").and_then(Value::as_str);
    node.claim(pid, offset)
}

/// Whether the connect hook is asked rather than sockgate's own checks: a
/// handshake with no credential at all, or with a token sockgate cannot
/// verify (no JWT key, or not a JWT: an opaque API key, a session id).
/// Session cookies and JWTs that sockgate has keys for stay sockgate's.
fn hook_takes(node: &Node, found: &Result<(Credential<'_>, TokenSource), AuthError>) -> bool {
    match found {
        Err(e) => e.code == ErrorCode::AuthRequired,
        Ok((Credential::Token(token), _)) => !node.has_jwt_keys() || token.split('.').count() != 3,
        Ok((Credential::SessionCookies(_), _)) => false,
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
