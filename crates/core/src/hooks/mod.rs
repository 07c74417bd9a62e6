//! The app's hooks: what sockgate asks the app's backend.
//!
//! [`reply`] reads the backend's answers to events.
//!
//! A client event that sockgate does not handle itself goes to the app
//! ([`App::on_event`]): the app answers the client's ack, and may put the
//! socket in rooms or out of them, emit to it, publish, or end the session,
//! all in one [`Reply`]. The gateway implements [`App`] over HTTP
//! (`outbound/app`); a node without one answers every such event
//! `UNKNOWN_EVENT`.
//!
//! The node keeps the promises around the call: one socket's calls reach
//! the app in the order the client sent them, and their replies are
//! applied in that order (`ordering`); a user has at most so many
//! calls in flight; the side effects of a reply whose session has ended are
//! dropped.

use serde_json::Value;
use serde_json::value::RawValue;

pub use crate::publish::Publish;
use sockgate_auth::{AuthError, ErrorCode, Identity};
use sockgate_protocol::rooms::Action;

pub mod happened;
pub mod reply;

/// A call's future ([`crate::BoxFuture`]'s shape; spelled here so that
/// sessions, which hold a socket's line of calls, need not see the backends).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One client event on its way to the app.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// Unique per call: the app may use it to make a retried call idempotent.
    pub id: String,
    /// The event's name, as the client emitted it.
    pub name: &'a str,
    /// The event's arguments as the client sent them: a JSON array.
    pub args: &'a RawValue,
    /// The user.
    pub user_id: &'a str,
    /// The session's public id.
    pub session_id: &'a str,
    /// The claims of the session's token, without credentials.
    pub claims: serde_json::Map<String, Value>,
    /// The rooms the socket is in, its own user room first, by their
    /// names in its namespace.
    pub rooms: Vec<String>,
    /// The socket's namespace (`/`, or the one it connected to).
    pub namespace: &'a str,
    /// `websocket` or `polling`.
    pub transport: &'static str,
    /// The client's address, behind trusted proxies.
    pub remote_addr: Option<String>,
    /// When the event arrived, Unix milliseconds.
    pub ts: u64,
}

/// An event emitted to the calling socket only.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    /// The event name.
    pub event: String,
    /// Its data.
    pub data: Value,
}

/// The app's answer to an [`Event`]: the ack, and what happens before it.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// What the client's ack gets: the app's value, or `{ ok: false, code,
    /// message }` for an app error.
    pub ack: Value,
    /// Rooms the socket joins (the policy is not asked: the app decided).
    pub join: Vec<String>,
    /// Rooms the socket leaves.
    pub leave: Vec<String>,
    /// Events for this socket.
    pub emit: Vec<Emit>,
    /// Events for rooms and users, through the path of `/api/publish`.
    pub publish: Vec<Publish>,
    /// Ends the session with `ENDED_BY_APP` and this message.
    pub disconnect: Option<String>,
}

/// A session the app's connect hook admitted, to renew before its
/// `expiresAt`: who it is, never what it logged in with.
#[derive(Debug, Clone)]
pub struct Renew<'a> {
    /// The user.
    pub user_id: &'a str,
    /// The session's public id.
    pub session_id: &'a str,
    /// The claims the hook gave, without credentials.
    pub claims: serde_json::Map<String, Value>,
    /// When the session runs out, Unix seconds.
    pub expires_at: Option<u64>,
}

/// A handshake the app's connect hook is asked about.
pub struct Connect<'a> {
    /// The CONNECT payload.
    pub auth: &'a Value,
    /// A request header, by its lower-case name (the hook forwards those
    /// it was told to).
    pub header: &'a (dyn Fn(&str) -> Option<String> + Send + Sync),
    /// The client's address.
    pub remote_addr: Option<String>,
    /// `websocket` or `polling`.
    pub transport: &'a str,
}

/// Who the app's connect hook says a connection is.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    /// The user.
    pub user_id: String,
    /// When the session runs out (renewed by asking again), Unix seconds.
    pub expires_at: Option<u64>,
    /// Claims, as a token's: for room rules and `auth:whoami`.
    pub claims: serde_json::Map<String, Value>,
    /// Rooms the session starts in (the policy is not asked).
    pub rooms: Vec<String>,
}

impl Admitted {
    /// The identity of an admitted connection: its claims with the user
    /// under `user_claim`, `exp` as `expiresAt` and `iat` as `now` (a
    /// revocation of the user covers the sessions admitted before it).
    pub fn identity(&self, user_claim: &str, now: u64) -> Result<Identity, AuthError> {
        let mut claims = self.claims.clone();
        claims.insert(user_claim.to_owned(), Value::from(self.user_id.clone()));
        claims.insert("iat".to_owned(), Value::from(now));
        match self.expires_at {
            Some(exp) => claims.insert("exp".to_owned(), Value::from(exp)),
            None => claims.remove("exp"),
        };
        claims.remove("jti");
        Identity::from_claims(claims, user_claim)
    }
}

/// The app's refusal of a connection, with its own code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRefusal {
    /// `[A-Z][A-Z0-9_]{0,63}`.
    pub code: String,
    /// For the client.
    pub message: String,
}

/// Why the connect hook did not admit a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The app said no, with its code: terminal.
    App(AppRefusal),
    /// sockgate could not get an answer (`AUTH_UNAVAILABLE`, retryable) or
    /// read it (`BACKEND_ERROR`).
    Sockgate(AuthError),
}

/// The app's backend, as the node calls it.
pub trait App: Send + Sync + 'static {
    /// Answers a client event. An `Err` is sockgate's own refusal
    /// (`UNKNOWN_EVENT`, `BACKEND_TIMEOUT`, `BACKEND_UNAVAILABLE`,
    /// `BACKEND_ERROR`), acked as `{ ok: false, code, message }`.
    fn on_event<'a>(&'a self, event: Event<'a>) -> BoxFuture<'a, Result<Reply, AuthError>>;

    /// Whether `id` may do `action` in `room`, asked when the token's
    /// capabilities and the room rules grant nothing (the gateway's
    /// authorization webhook); `AUTH_UNAVAILABLE` when the app cannot
    /// answer. `fresh` asks past any cache (the rechecks of a refresh).
    /// Without an authority: no.
    fn authorize<'a>(
        &'a self,
        id: &'a Identity,
        room: &'a str,
        action: Action,
        fresh: bool,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        let _ = (id, room, action, fresh);
        Box::pin(async { Ok(false) })
    }

    /// Whether the app has a connect hook: handshakes without a credential
    /// sockgate verifies itself are then the hook's.
    fn has_connect_hook(&self) -> bool {
        false
    }

    /// Asks the connect hook who a handshake is.
    fn on_connect<'a>(&'a self, connect: Connect<'a>) -> BoxFuture<'a, Result<Admitted, Refused>> {
        let _ = connect;
        Box::pin(async {
            Err(Refused::Sockgate(AuthError::new(
                ErrorCode::AuthRequired,
                "no connect hook",
            )))
        })
    }

    /// Renews a session the connect hook admitted, before its `expiresAt`.
    fn on_renew<'a>(&'a self, renew: Renew<'a>) -> BoxFuture<'a, Result<Admitted, Refused>> {
        let _ = renew;
        Box::pin(async {
            Err(Refused::Sockgate(AuthError::new(
                ErrorCode::AuthUnavailable,
                "no connect hook",
            )))
        })
    }
}

/// No app: every event sockgate does not handle is `UNKNOWN_EVENT`.
pub struct NoApp;

impl App for NoApp {
    fn on_event<'a>(&'a self, event: Event<'a>) -> BoxFuture<'a, Result<Reply, AuthError>> {
        let name = event.name.to_owned();
        Box::pin(async move { Err(unknown_event(&name)) })
    }
}

/// Whether `code` may be an app's own code: `[A-Z][A-Z0-9_]{0,63}`.
pub fn is_app_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && code.len() <= 64
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The refusal of an event no one handles.
pub fn unknown_event(name: &str) -> AuthError {
    let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    AuthError::new(
        ErrorCode::UnknownEvent,
        format!("no handler for the event `{shown}`"),
    )
}
