//! Client events for the app's backend: a call per event, in the socket's
//! order, and the reply applied before the ack goes back.

use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Mutex;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_protocol::events::RESERVED_PREFIXES;
use sockgate_protocol::rooms::MAIN_NAMESPACE;
use tokio::sync::mpsc;

use super::Node;
use crate::connection::Conn;
use crate::hooks::{Event, Refused, Renew, Reply, unknown_event};
use crate::rooms::validate;
use crate::session::{Session, SessionId};
use crate::telemetry;
use sockgate_protocol::payloads::end_reason;

/// Calls one user may have in flight across their sockets, by default.
pub const DEFAULT_CALLS_PER_USER: usize = 16;

/// Renewals asked of the app's connect hook at once.
const RENEWALS_AT_ONCE: usize = 64;

/// Sessions whose connect-hook admission is due for renewal.
pub(crate) struct Renewals {
    tx: mpsc::UnboundedSender<SessionId>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<SessionId>>>,
}

impl Default for Renewals {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Renewals {
    /// Queues `id` for renewal (from the deadline task, which cannot wait).
    pub(crate) fn ask(&self, id: SessionId) {
        let _ = self.tx.send(id);
    }
}

impl Node {
    /// Sends the client event `name` with `args` (a JSON array) to the
    /// app's backend and applies its reply; returns what the client's ack
    /// gets: the app's value, or `{ ok: false, code, message }`.
    ///
    /// One socket's calls go out one at a time, in the order the events
    /// arrived: call this from the connection's task, whose first poll of
    /// the returned future takes the call's place in line.
    pub async fn call(&self, conn: &Conn, session: &Session, name: &str, args: &RawValue) -> Value {
        match self.call_app(conn, session, name, args).await {
            Ok(ack) => ack,
            Err(e) => {
                // The app's failures are the app's figures (`app_call`);
                // a missing route is a refusal like the node's own.
                if !matches!(
                    e.code,
                    ErrorCode::BackendTimeout
                        | ErrorCode::BackendUnavailable
                        | ErrorCode::BackendError
                ) {
                    telemetry::call_refused(e.code.as_str());
                }
                serde_json::to_value(e.to_ack()).expect("acks serialize")
            }
        }
    }

    async fn call_app(
        &self,
        conn: &Conn,
        session: &Session,
        name: &str,
        args: &RawValue,
    ) -> Result<Value, AuthError> {
        if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return Err(unknown_event(name));
        }
        let place = session.calls().enter().ok_or_else(|| {
            AuthError::new(
                ErrorCode::RateLimited,
                "too many events waiting for the app's answers on this socket; slow down",
            )
        })?;
        let _turn = place.turn().await;
        let _in_flight = self
            .in_flight
            .start(&session.user_id, self.max_calls_per_user)
            .ok_or_else(|| {
                AuthError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "a user may have {} events waiting for the app at once",
                        self.max_calls_per_user
                    ),
                )
            })?;
        let started = std::time::Instant::now();
        let reply = self.app.on_event(self.event(session, name, args)).await;
        match &reply {
            // No route: no call was made.
            Err(e) if e.code == ErrorCode::UnknownEvent => {}
            Err(e) => {
                let failed = matches!(
                    e.code,
                    ErrorCode::BackendTimeout
                        | ErrorCode::BackendUnavailable
                        | ErrorCode::BackendError
                );
                self.stats.app_call(!failed, started.elapsed());
            }
            Ok(_) => self.stats.app_call(true, started.elapsed()),
        }
        let reply = reply?;
        // Ended while the app thought: its reply is for no one.
        if session.is_ending() || self.sessions.get(session.id).is_none() {
            return Err(AuthError::new(ErrorCode::NotFound, "the session has ended"));
        }
        self.apply_reply(conn, session, reply).await
    }

    /// Renews the sessions the deadline task queues, a few at a time:
    /// part of [`Node::run_deadlines`].
    pub(crate) async fn run_renewals(&self) {
        let Some(mut queue) = self.renewals.rx.lock().expect("renewals lock").take() else {
            return;
        };
        let mut running = FuturesUnordered::new();
        loop {
            tokio::select! {
                Some(id) = queue.recv(), if running.len() < RENEWALS_AT_ONCE => {
                    running.push(self.renew_by_app(id));
                }
                Some(()) = running.next(), if !running.is_empty() => {}
                else => return,
            }
        }
    }

    /// Asks the app's connect hook again for a session it admitted: the
    /// same user with a later `expiresAt` renews it; a refusal ends it with
    /// `SESSION_EXPIRED` (its client reconnects and the hook decides
    /// then); no answer leaves it to expire at its time.
    async fn renew_by_app(&self, id: SessionId) {
        let Some((session, conn)) = self.sessions.get(id) else {
            return;
        };
        let identity = session.identity();
        let renew = Renew {
            user_id: &session.user_id,
            session_id: session.id.as_str(),
            claims: identity.claims.without_credentials(),
            expires_at: identity.expires_at,
        };
        let renewed = match self.app.on_renew(renew).await {
            Ok(admitted) => admitted
                .identity(&self.verifier.rules().user_claim, self.clock.now())
                .and_then(|identity| self.install(&session, identity)),
            Err(Refused::App(refusal)) => Err(AuthError::new(
                ErrorCode::SessionExpired,
                format!("the app refused the renewal: {}", refusal.code),
            )),
            Err(Refused::Sockgate(e)) => {
                tracing::warn!(target: "sockgate::app", session = %session.id, code = e.code.as_str(), reason = %e.message, "renewal not answered; the session expires at its time");
                return;
            }
        };
        if let Err(e) = renewed {
            tracing::info!(target: "sockgate::app", session = %session.id, user = %session.user_id, code = e.code.as_str(), reason = %e.message, "renewal refused");
            let code = ErrorCode::SessionExpired;
            self.end(&session, &conn, code, end_reason(code));
        }
    }

    fn event<'a>(&self, session: &'a Session, name: &'a str, args: &'a RawValue) -> Event<'a> {
        Event {
            id: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
            name,
            args,
            user_id: &session.user_id,
            session_id: session.id.as_str(),
            claims: session.identity().claims.without_credentials(),
            rooms: session.room_names(),
            namespace: session.namespace(),
            transport: session.transport.as_str(),
            remote_addr: session.remote_addr.map(|a| a.to_string()),
            ts: self.clock.now_ms(),
        }
    }

    /// Applies a reply, in order: joins and leaves, emits to the socket,
    /// publishes, the end of the session. The joins and leaves are checked
    /// first, all of them: a reply that breaks a room rule changes nothing
    /// and acks the refusal.
    async fn apply_reply(
        &self,
        conn: &Conn,
        session: &Session,
        reply: Reply,
    ) -> Result<Value, AuthError> {
        self.check_rooms(session, &reply.join, &reply.leave)?;
        let joined: Vec<String> = reply.join.iter().map(|r| session.room_key(r)).collect();
        for key in &joined {
            self.enter(conn.as_ref(), session, key);
        }
        // Before the reply's publishes and its ack: both may count on the
        // socket hearing its new rooms.
        self.broker.listening(&joined).await;
        for room in &reply.leave {
            self.exit(conn.as_ref(), session, &session.room_key(room));
        }
        for emit in &reply.emit {
            conn.emit_value(&emit.event, &emit.data);
        }
        for mut publish in reply.publish {
            // The socket's namespace, unless the reply names another.
            if publish.namespace.is_none() && session.namespace() != MAIN_NAMESPACE {
                publish.namespace = Some(session.namespace().to_owned());
            }
            // Checked with the reply; a key the broker cannot check now
            // leaves this one out, as a broken Redis leaves out a publish
            // without a key.
            if let Err(e) = self.publish(publish).await {
                tracing::warn!(target: "sockgate::app", code = e.code.as_str(), reason = %e.message, "a publish of the app's reply was not delivered");
            }
        }
        if let Some(message) = &reply.disconnect {
            self.end(session, conn, ErrorCode::EndedByApp, message);
        }
        Ok(reply.ack)
    }

    /// Puts a session the connect hook admitted in the rooms it named,
    /// under the rules of a reply's `join`.
    pub(crate) fn enter_rooms(
        &self,
        conn: &Conn,
        session: &Session,
        rooms: &[String],
    ) -> Result<(), AuthError> {
        self.check_rooms(session, rooms, &[])?;
        for room in rooms {
            self.enter(conn.as_ref(), session, &session.room_key(room));
        }
        Ok(())
    }

    /// The app is trusted with rooms (the policy is not asked), not with
    /// the rules every room obeys: names, users' own rooms, the room limit.
    fn check_rooms(
        &self,
        session: &Session,
        join: &[String],
        leave: &[String],
    ) -> Result<(), AuthError> {
        for room in join.iter().chain(leave) {
            validate(room)?;
            if self.user_room.is_user_room(room) {
                return Err(AuthError::new(
                    ErrorCode::Forbidden,
                    "users' own rooms are not joined or left: every socket is in its own",
                ));
            }
        }
        let max = self.limits.max_rooms_per_socket;
        let key = |room: &String| session.room_key(room);
        let leave: Vec<String> = leave.iter().map(key).collect();
        let mut rooms = session.rooms();
        rooms.extend(join.iter().map(key));
        rooms.sort_unstable();
        rooms.dedup();
        rooms.retain(|r| !leave.contains(r));
        // The own user room does not count towards the limit.
        if rooms.len() > max + 1 {
            return Err(AuthError::new(
                ErrorCode::RoomLimit,
                format!("a socket may be in at most {max} rooms"),
            ));
        }
        Ok(())
    }
}
