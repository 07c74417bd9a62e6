//! A session's life on a node: the opening of its transport, its admission,
//! its events, its refreshes, its expiry clock, and its end.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sockgate_auth::{AuthError, Credential, ErrorCode, Identity};
use sockgate_protocol::events::server;
use sockgate_protocol::payloads::{Expiring, end_reason};

use super::{Gone, Node, json};
use crate::backend::{Admission, Placed};
use crate::connection::Conn;
use crate::deadlines::{Deadline, Due};
use crate::limits::{Retry, Verdict};
use crate::session::{Origin, Session, SessionId};
use crate::telemetry;

/// How long after its handshake a session must have a connected socket.
/// CONNECT goes out right after the handshake middleware; a second is a
/// wide margin on a loaded machine.
const CONFIRM_AFTER: Duration = Duration::from_secs(1);

/// Most sessions a draining node ends per second.
const DRAIN_RATE: f64 = 5000.0;

/// How soon a client refused by a draining node may try again.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(2);

impl Node {
    /// Whether a client may open a transport now: not while draining, not
    /// past the connection cap, not over its address's handshake budget.
    /// Checked before anything is allocated for it.
    pub fn admit_opening(&self, client: Option<IpAddr>) -> Result<(), Retry> {
        self.still_open()?;
        self.guard.connection(self.sessions.len())?;
        self.guard.handshake(client)
    }

    /// Whether a handshake may go on: the node is not draining and not at
    /// its connection cap (both may have changed since its transport opened).
    pub fn check_open(&self) -> Result<(), AuthError> {
        self.still_open()
            .and_then(|()| self.guard.connection(self.sessions.len()))
            .map_err(|r| r.error)
    }

    /// Refuses with `SERVER_SHUTDOWN` once draining.
    fn still_open(&self) -> Result<(), Retry> {
        if !self.is_draining() {
            return Ok(());
        }
        let code = ErrorCode::ServerShutdown;
        Err(Retry {
            error: AuthError::new(code, end_reason(code)),
            after: SHUTDOWN_RETRY,
        })
    }

    /// Full verification of a credential, the same for handshakes and refreshes.
    pub async fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError> {
        let identity = self.verifier.verify_credential(credential).await?;
        self.revocations.check(&identity)?;
        Ok(identity)
    }

    /// A new session for a verified identity, connected now.
    pub fn session(&self, identity: Identity, origin: Origin) -> Session {
        Session::new(
            identity,
            origin,
            self.guard.event_budget(),
            self.clock.now(),
        )
        .with_user_room(self.user_room.clone())
    }

    /// Registers a verified session on `conn`, applying the per-user limit
    /// (across every node the directory sees), puts it in its user room and
    /// starts its expiry clock.
    ///
    /// The token's revocation is checked again once the session is
    /// registered. A revocation first records itself, then ends the
    /// registered sessions it matches; a handshake that checked before the
    /// revocation and registered after its scan (a Redis round trip wide in
    /// a cluster) would otherwise live on the revoked token until `exp`.
    /// With the check on both sides of the registration, one of the two
    /// always sees the other.
    pub async fn admit(&self, session: Arc<Session>, conn: Conn) -> Result<(), AuthError> {
        self.register(session.clone(), conn.clone()).await?;
        if let Err(revoked) = self.revocations.check(&session.identity()) {
            self.sessions.remove(session.id);
            self.release(&session);
            return Err(revoked);
        }
        self.schedule_confirm(&session);
        self.enter(conn.as_ref(), &session, &session.user_room());
        self.start_clock(&session);
        telemetry::sessions(self.sessions.len());
        self.tell_started(&session);
        Ok(())
    }

    async fn register(&self, session: Arc<Session>, conn: Conn) -> Result<(), AuthError> {
        // A namespace socket riding on a connection its user has counted
        // already is not counted again, here or in the cluster.
        let limit = self.lifecycle.session_limit.filter(|_| !session.riding);
        let admitted = match session.riding {
            true => Ok(Admission::Admitted(Vec::new())),
            false => self.directory.admit(&session.info(), limit).await,
        };
        let evicted = match admitted {
            Ok(Admission::Admitted(evicted)) => evicted,
            Ok(Admission::Rejected(count)) => {
                let max = limit.map_or(count, |l| l.max);
                return Err(AuthError::new(
                    ErrorCode::SessionLimit,
                    format!("user already has {count} sessions (limit {max})"),
                ));
            }
            Err(e) => {
                if limit.is_some() {
                    tracing::warn!(
                        error = %e,
                        "cluster session limit unavailable; enforcing it on this node"
                    );
                }
                Vec::new()
            }
        };
        let evicted_here = self.sessions.admit(session, conn, limit)?;
        let code = ErrorCode::SessionEvicted;
        self.end_all(evicted_here, code, end_reason(code));
        for placed in evicted {
            self.end_anywhere(&placed, code).await;
        }
        Ok(())
    }

    /// Spends one event of the session's budget: `RATE_LIMITED` when over,
    /// and the session is ended when the abuse goes on.
    pub fn allow_event(&self, session: &Session) -> Result<(), AuthError> {
        telemetry::message_in();
        let verdict = session.events.spend();
        if verdict == Verdict::Allowed {
            return Ok(());
        }
        telemetry::rate_limited("event");
        if verdict == Verdict::Abusive
            && let Some((session, conn)) = self.sessions.get(session.id)
        {
            let code = ErrorCode::RateLimited;
            self.end(&session, &conn, code, end_reason(code));
        }
        Err(AuthError::new(
            ErrorCode::RateLimited,
            "too many events; slow down",
        ))
    }

    /// In-band refresh: verifies `credential` like a handshake and, when it
    /// names the same user, swaps it in, moves the expiry clock and
    /// rechecks the session's rooms with the new token's rights (a room it
    /// may no longer join is left, with `room:revoked`). Returns the new
    /// `exp`.
    pub async fn refresh(
        &self,
        session: &Session,
        credential: &Credential<'_>,
    ) -> Result<Option<u64>, AuthError> {
        let identity = self.authenticate(credential).await?;
        let expires_at = self.install(session, identity)?;
        self.recheck_rooms(session).await;
        Ok(expires_at)
    }

    /// Puts a newly verified `identity` in force on `session`: same user,
    /// a later `exp`, not revoked; the expiry clock moves with it.
    pub(crate) fn install(
        &self,
        session: &Session,
        identity: Identity,
    ) -> Result<Option<u64>, AuthError> {
        if identity.user_id != session.user_id {
            return Err(AuthError::new(
                ErrorCode::SubjectMismatch,
                "the new token names another user",
            ));
        }
        let expires_at = identity.expires_at;
        let old = session.identity();
        if let (Some(new), Some(current)) = (expires_at, old.expires_at)
            && new <= current
        {
            return Err(AuthError::new(
                ErrorCode::TokenNotNewer,
                format!(
                    "the token expires {}, not later than the one in force: ask the backend for a new one",
                    if new == current {
                        "at the same time".to_owned()
                    } else {
                        format!("{} s earlier", current - new)
                    }
                ),
            ));
        }
        session.replace_identity(Arc::new(identity));
        // As in `admit`: a revocation of the new token that scanned the
        // registry before the swap has missed this session. The refresh then
        // fails and the old token stays, unless that one is revoked too.
        if let Err(revoked) = self.revocations.check(&session.identity()) {
            session.replace_identity(old.clone());
            if self.revocations.check(&old).is_err()
                && let Some((session, conn)) = self.sessions.get(session.id)
            {
                let code = ErrorCode::TokenRevoked;
                self.end(&session, &conn, code, end_reason(code));
            }
            return Err(revoked);
        }
        for deadline in self.deadlines_of(session, &old) {
            self.deadlines.cancel(&deadline);
        }
        self.start_clock(session);
        // Ended while the credential was being verified (a kick, an
        // expiry): its clock must not come back.
        if session.is_ending() {
            self.stop_clock(session);
            return Err(AuthError::new(ErrorCode::NotFound, "the session has ended"));
        }
        Ok(expires_at)
    }

    /// A ticket for renewing `session` over HTTP (see [`crate::tickets`]).
    pub fn issue_ticket(&self, session: &Session) -> String {
        self.tickets.issue(session.id)
    }

    /// The live session a ticket was issued to, once.
    pub fn redeem_ticket(&self, ticket: &str) -> Result<Arc<Session>, AuthError> {
        let id = self.tickets.redeem(ticket).ok_or_else(|| {
            AuthError::new(
                ErrorCode::Unauthorized,
                "the ticket is unknown, used or expired",
            )
        })?;
        self.sessions
            .get(id)
            .map(|(session, _)| session)
            .ok_or_else(|| AuthError::new(ErrorCode::NotFound, "the ticket's session has ended"))
    }

    /// Drains this node: from now on new transports are refused and
    /// `/readyz` fails; every session ends with `SERVER_SHUTDOWN` (a
    /// retryable end: its transport closes and the client reconnects), the
    /// ends spread evenly over `window` so that the clients do not all come
    /// back in the same instant. Returns once the last one has ended.
    pub async fn shut_down(&self, window: Duration) {
        self.draining.store(true, Ordering::Release);
        let all = self.sessions.matching(|_| true);
        let n = all.len() as u32;
        // A small node need not take the whole window: at this pace the
        // returning clients stay well within what one node handshakes per
        // second (7,400 on 2 cores, BENCHMARKS.md).
        let window = window.min(Duration::from_secs_f64(f64::from(n) / DRAIN_RATE));
        let start = tokio::time::Instant::now();
        let code = ErrorCode::ServerShutdown;
        for (i, (session, conn)) in (0..n).zip(all) {
            tokio::time::sleep_until(start + window * i / n).await;
            self.end(&session, &conn, code, end_reason(code));
        }
    }

    /// Ends a session: unregisters it everywhere at once (registry, clock,
    /// rooms, presence, directory), then tells the client and closes its
    /// connection as the code's class requires. Only the first end of a
    /// session does anything: an expiry can meet a revocation.
    pub(crate) fn end(&self, session: &Session, conn: &Conn, code: ErrorCode, message: &str) {
        if !session.begin_end() {
            return;
        }
        tracing::info!(
            target: "sockgate::session",
            session = %session.id,
            user = %session.user_id,
            code = code.as_str(),
            reason = message,
            reconnect = code.is_retryable(),
            "session ended by the server"
        );
        telemetry::session_ended(code.as_str());
        self.stats.ended(code);
        if code.is_retryable() {
            self.stats.lost(&session.user_id, self.clock.now_ms());
        }
        // A drain's sessions recover on the node that takes their client
        // (any node of a cluster; this one, restarted, keeps nothing).
        if code == ErrorCode::ServerShutdown
            && let Some(parked) = self.parked(session, conn.as_ref())
        {
            tokio::spawn(self.park(parked));
        }
        self.sessions.remove(session.id);
        self.release(session);
        self.tell_ended(session, code.as_str(), code.is_retryable());
        conn.end(code, message);
    }

    /// Ends every one of `sessions`; returns how many.
    pub(crate) fn end_all(
        &self,
        sessions: Vec<(Arc<Session>, Conn)>,
        code: ErrorCode,
        message: &str,
    ) -> usize {
        let n = sessions.len();
        for (session, conn) in sessions {
            self.end(&session, &conn, code, message);
        }
        n
    }

    /// Ends a session wherever it is: here, or by announcing it.
    pub(crate) async fn end_anywhere(&self, placed: &Placed, code: ErrorCode) {
        if placed.node == self.directory.node() {
            if let Some((session, conn)) = self.local(&placed.session) {
                self.end(&session, &conn, code, end_reason(code));
            }
            return;
        }
        let msg = crate::backend::Control::End {
            sid: placed.session.clone(),
            code: code.as_str().to_owned(),
        };
        self.control.announce(&msg).await;
    }

    /// The session with public id `id` on this node.
    pub(crate) fn local(&self, id: &str) -> Option<(Arc<Session>, Conn)> {
        self.sessions.get(SessionId::parse(id)?)
    }

    /// Forgets a session whose connection is gone, for any reason but the
    /// server's own end: `why` is how it went, for the watcher
    /// ([`Gone`]).
    pub fn forget(&self, id: SessionId, why: Gone) {
        if let Some(session) = self.sessions.remove(id) {
            self.release(&session);
            self.tell_ended(&session, why.code(), why == Gone::TransportLost);
        }
    }

    /// What goes with a session that left the registry: its ticket, its
    /// clock, its rooms and presence, its directory entry.
    fn release(&self, session: &Session) {
        telemetry::sessions(self.sessions.len());
        self.tickets.forget(session.id);
        self.stop_clock(session);
        for room in self.rooms.forget(session) {
            self.presence.left(&room, &session.user_id);
            self.tell_left(&room, session);
        }
        if !session.riding {
            self.directory.left(session.id.as_str(), &session.user_id);
        }
    }

    fn schedule_confirm(&self, session: &Session) {
        let at = self.clock.now_ms() + CONFIRM_AFTER.as_millis() as u64;
        self.deadlines.schedule((at, session.id, Due::Confirm));
    }

    /// Starts the expiry clock of `session`.
    fn start_clock(&self, session: &Session) {
        for deadline in self.deadlines_of(session, &session.identity()) {
            self.deadlines.schedule(deadline);
        }
    }

    fn stop_clock(&self, session: &Session) {
        for deadline in self.deadlines_of(session, &session.identity()) {
            self.deadlines.cancel(&deadline);
        }
    }

    /// The warning and expiry deadlines of `identity` on `session`.
    fn deadlines_of(&self, session: &Session, identity: &Identity) -> Vec<Deadline> {
        let Some(exp) = identity.expires_at else {
            return Vec::new();
        };
        let exp_ms = exp.saturating_mul(1000);
        let issued = identity
            .issued_at()
            .unwrap_or(session.connected_at)
            .min(exp);
        let lifetime_ms = (exp - issued).saturating_mul(1000);
        let lead_ms = (self.lifecycle.refresh_lead.as_millis() as u64).min(lifetime_ms / 4);
        let grace_ms = self.lifecycle.expiry_grace.as_millis() as u64;
        vec![
            (exp_ms.saturating_sub(lead_ms), session.id, Due::Warn),
            (exp_ms.saturating_add(grace_ms), session.id, Due::Expire),
        ]
    }

    /// Runs every session's deadlines, and the recovery history's trim
    /// when recovery is on, forever: spawn it once.
    pub async fn run_deadlines(&self) {
        let deadlines = self
            .deadlines
            .run(self.clock.as_ref(), |deadline| self.on_due(deadline));
        tokio::join!(
            deadlines,
            self.trim_history(),
            self.run_renewals(),
            self.run_happenings()
        );
    }

    /// Entries made stale by a racing refresh are recognised and ignored.
    fn on_due(&self, deadline: Deadline) {
        let (_, id, due) = deadline;
        let Some((session, conn)) = self.sessions.get(id) else {
            return;
        };
        let identity = session.identity();
        if due != Due::Confirm && !self.deadlines_of(&session, &identity).contains(&deadline) {
            return;
        }
        match due {
            Due::Warn => {
                let expires_at = identity.expires_at.unwrap_or_default();
                if !session.warn_once(expires_at) {
                    return;
                }
                // The client cannot renew what the app's hook admitted:
                // the hook is asked again instead.
                if session.is_by_app() {
                    self.renewals.ask(session.id);
                    return;
                }
                let seconds_left = expires_at.saturating_sub(self.clock.now());
                let expiring = Expiring {
                    expires_at,
                    seconds_left,
                };
                conn.emit_value(server::EXPIRING, &json(&expiring));
            }
            Due::Expire => {
                let code = ErrorCode::SessionExpired;
                self.end(&session, &conn, code, end_reason(code));
            }
            Due::Confirm => self.confirm(&session, &conn),
        }
    }

    /// Removes a session whose connection never came up.
    ///
    /// The handshake registers a session before the transport layer tells
    /// the client it is connected; when the transport is already gone by
    /// then (a client that sends CONNECT and a close in one payload), the
    /// transport layer may drop the socket without telling anyone. Left
    /// alone, such a ghost would count against every limit until its
    /// token's `exp`.
    fn confirm(&self, session: &Session, conn: &Conn) {
        if conn.connected() || !session.begin_end() {
            return;
        }
        tracing::info!(
            target: "sockgate::session",
            session = %session.id,
            user = %session.user_id,
            "session without a transport removed"
        );
        self.sessions.remove(session.id);
        self.release(session);
    }

    /// Periodic upkeep: forgets idle address budgets and expired token
    /// revocations. Call it every minute or so.
    pub async fn tidy(&self) {
        self.guard.shrink();
        if let Err(e) = self.revocations.prune(self.clock.now()).await {
            tracing::warn!(error = %e, "pruning expired revocations failed");
        }
    }
}
