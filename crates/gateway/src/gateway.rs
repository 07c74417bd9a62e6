//! The gateway core: shared state and the operations on live sessions
//! (authenticate, admit, refresh, expire, revoke, kick). The Socket.IO
//! handlers and the admin API are thin layers over this.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;
use sockgate_auth::{AuthError, Credential, ErrorCode, Identity, SourcePolicy, Verifier};

use sockgate_protocol::events::server;
use sockgate_protocol::payloads::{Expiring, RoomRevoked, end_reason};

use crate::abuse::{AbuseLimits, Guard, Retry, Verdict};
use crate::admission::{Openings, Ticket};
use crate::cluster::{Admission, Cluster, Control, Write};
use crate::cookie_refresh::Tickets;
use crate::deadlines::{Deadline, Deadlines, Due};
use crate::origins::Origins;
use crate::policy::{Action, Policy};
use crate::revocation::Revocations;
use crate::rooms::Rooms;
use crate::sessions::{Conn, Registry, Session, SessionInfo, SessionLimit, unix_now, unix_now_ms};
use crate::stats::Stats;
use crate::telemetry;
use crate::transports::Transports;

/// How open connections are held to their tokens.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Extra time after `exp` before the connection is ended.
    pub expiry_grace: Duration,
    /// How long before expiry `auth:expiring` is sent (at most a quarter of
    /// the token's lifetime).
    pub refresh_lead: Duration,
    pub session_limit: Option<SessionLimit>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            expiry_grace: Duration::ZERO,
            refresh_lead: Duration::from_secs(60),
            session_limit: None,
        }
    }
}

/// Size limits on what clients and the backend send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `data` of `room:publish` and `/api/publish`, in bytes.
    pub max_payload: usize,
    /// Most rooms one socket may be in, its own user room not counted.
    pub max_rooms_per_socket: usize,
    /// Largest incoming Socket.IO message (any transport), in bytes.
    pub max_message: usize,
    /// How long a client may take from opening the transport to the
    /// Socket.IO handshake.
    pub handshake_timeout: Duration,
    /// Browser origins allowed to connect; `None` allows any.
    pub allowed_origins: Option<Origins>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload: 64 * 1024,
            max_rooms_per_socket: 100,
            max_message: 128 * 1024,
            handshake_timeout: Duration::from_secs(10),
            allowed_origins: None,
        }
    }
}

/// Shared state of a running gateway.
pub struct Gateway {
    pub verifier: Verifier,
    pub sources: SourcePolicy,
    pub revocations: Revocations,
    pub sessions: Registry,
    pub deadlines: Deadlines,
    pub lifecycle: Lifecycle,
    pub policy: Policy,
    pub rooms: Rooms,
    pub limits: Limits,
    pub guard: Guard,
    /// Set once by [`crate::app`]: the Socket.IO server, for server-side emits.
    pub(crate) io: OnceLock<Arc<dyn Broadcaster>>,
    /// Set in cluster mode.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// The transports sockgate may have to close (see [`crate::transports`]).
    pub(crate) transports: Arc<Transports>,
    /// Set on SIGTERM: new transports are refused, `/readyz` fails.
    draining: AtomicBool,
    /// Transports opened and not yet authenticated (see [`crate::admission`]).
    pub(crate) openings: Arc<Openings>,
    /// Revocations made while Redis was unreachable, to announce at recovery.
    unshared: std::sync::Mutex<Vec<Control>>,
    /// Outstanding cookie-refresh tickets (see [`crate::cookie_refresh`]).
    pub(crate) tickets: Tickets,
    /// What `/api/stats` and the dashboard show (see [`crate::stats`]).
    pub stats: Stats,
}

impl Gateway {
    pub fn new(
        verifier: Verifier,
        sources: SourcePolicy,
        revocations: Revocations,
        lifecycle: Lifecycle,
    ) -> Self {
        Self {
            verifier,
            sources,
            revocations,
            sessions: Registry::default(),
            deadlines: Deadlines::default(),
            lifecycle,
            policy: Policy::default(),
            rooms: Rooms::default(),
            limits: Limits::default(),
            guard: Guard::new(AbuseLimits::default()),
            io: OnceLock::new(),
            cluster: None,
            transports: Arc::default(),
            draining: AtomicBool::new(false),
            openings: Arc::new(Openings::new(AbuseLimits::default().max_pending_handshakes)),
            unshared: std::sync::Mutex::default(),
            tickets: Tickets::default(),
            stats: Stats::default(),
        }
    }

    /// Runs this gateway as one node of a cluster.
    pub fn with_cluster(mut self, cluster: Arc<Cluster>) -> Self {
        self.rooms.set_cluster(cluster.clone());
        self.cluster = Some(cluster);
        self
    }

    /// The cluster, when it can be used right now.
    pub(crate) fn live_cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref().filter(|c| c.is_healthy())
    }

    /// Whether the gateway can serve its whole contract (`/readyz`): not
    /// draining, and in a cluster while Redis answers.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.cluster.as_ref().is_none_or(|c| c.is_healthy())
    }

    /// True once the gateway has begun to shut down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether a client may open a transport now: not while draining, not
    /// past the connection cap, not over its address's handshake budget.
    /// Checked before anything is allocated for it.
    /// Returns the transport's place among those not yet authenticated.
    pub fn admit_transport(&self, client: Option<IpAddr>) -> Result<Arc<Ticket>, Retry> {
        self.still_open()?;
        self.guard.connection(self.sessions.len())?;
        self.guard.handshake(client)?;
        self.openings.take()
    }

    /// Refuses with `SERVER_SHUTDOWN` once draining.
    pub(crate) fn still_open(&self) -> Result<(), Retry> {
        if !self.is_draining() {
            return Ok(());
        }
        Err(Retry {
            error: AuthError::new(
                ErrorCode::ServerShutdown,
                end_reason(ErrorCode::ServerShutdown),
            ),
            after: SHUTDOWN_RETRY,
        })
    }

    /// Sets the room authorization policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn with_abuse_limits(mut self, limits: AbuseLimits) -> Self {
        self.openings = Arc::new(Openings::new(limits.max_pending_handshakes));
        self.guard = Guard::new(limits);
        self
    }

    /// Spends one event of the socket's budget: `RATE_LIMITED` when over,
    /// and the session is ended when the abuse goes on.
    pub fn allow_event(&self, session: &Session) -> Result<(), AuthError> {
        telemetry::message_in();
        let verdict = session.events.spend();
        if verdict == Verdict::Allowed {
            return Ok(());
        }
        telemetry::rate_limited("event");
        if verdict == Verdict::Abusive
            && let Some((session, socket)) = self.sessions.get(session.sid)
        {
            let code = ErrorCode::RateLimited;
            self.end(&session, &socket, code, end_reason(code));
        }
        Err(AuthError::new(
            ErrorCode::RateLimited,
            "too many events; slow down",
        ))
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
        for (i, (session, socket)) in (0..n).zip(all) {
            tokio::time::sleep_until(start + window * i / n).await;
            self.end(
                &session,
                &socket,
                ErrorCode::ServerShutdown,
                end_reason(ErrorCode::ServerShutdown),
            );
        }
    }

    /// Ends a session: unregisters it everywhere at once (registry, clock,
    /// rooms, presence, cluster), then tells the client and closes its
    /// connection as the code's class requires. Only the first end of a
    /// session does anything: an expiry can meet a revocation.
    pub(crate) fn end(&self, session: &Session, socket: &Conn, code: ErrorCode, message: &str) {
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
            self.stats.lost(&session.user_id, unix_now_ms());
        }
        self.sessions.remove(session.sid);
        self.release(session);
        socket.end(code, message);
    }

    /// Emits `event` with `data` to every socket in `rooms` (across the
    /// cluster with the Redis adapter). Returns the sockets reached on this node.
    pub async fn publish(&self, rooms: Vec<String>, event: &str, data: Option<&RawValue>) -> usize {
        let io = self
            .io
            .get()
            .expect("the gateway is served by sockgate::app");
        io.publish(rooms, event, data).await
    }

    /// Full verification of a credential, the same for handshakes and refreshes.
    pub async fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError> {
        let identity = self.verifier.verify_credential(credential).await?;
        self.revocations.check(&identity)?;
        Ok(identity)
    }

    /// Registers a verified session, applying the per-user limit (across
    /// the cluster when there is one and Redis answers).
    ///
    /// The token's revocation is checked again once the session is
    /// registered. A revocation first records itself, then ends the
    /// registered sessions it matches; a handshake that checked before the
    /// revocation and registered after its scan (a Redis round trip wide in
    /// a cluster) would otherwise live on the revoked token until `exp`.
    /// With the check on both sides of the registration, one of the two
    /// always sees the other.
    pub async fn admit(&self, session: Arc<Session>, socket: Conn) -> Result<(), AuthError> {
        self.register(session.clone(), socket).await?;
        if let Err(revoked) = self.revocations.check(&session.identity()) {
            self.sessions.remove(session.sid);
            self.release(&session);
            return Err(revoked);
        }
        self.deadlines.schedule((
            unix_now_ms() + CONFIRM_AFTER.as_millis() as u64,
            session.sid,
            Due::Confirm,
        ));
        Ok(())
    }

    async fn register(&self, session: Arc<Session>, socket: Conn) -> Result<(), AuthError> {
        if let (Some(cluster), Some(limit)) = (self.live_cluster(), self.lifecycle.session_limit) {
            let sid = session.id.to_string();
            match cluster
                .admit(&session.user_id, &sid, &session.info(), limit)
                .await
            {
                Ok(Admission::Rejected(count)) => {
                    return Err(AuthError::new(
                        ErrorCode::SessionLimit,
                        format!("user already has {count} sessions (limit {})", limit.max),
                    ));
                }
                Ok(Admission::Admitted(evicted)) => {
                    self.sessions.admit(session, socket, None)?;
                    for (node, sid) in evicted {
                        self.end_anywhere(cluster, &node, &sid, ErrorCode::SessionEvicted)
                            .await;
                    }
                    return Ok(());
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cluster session limit unavailable; enforcing it on this node"
                ),
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.write(Write::SessionUp {
                sid: session.id.to_string(),
                user_id: session.user_id.clone(),
                info: serde_json::to_string(&session.info()).expect("session info serializes"),
            });
        }
        let evicted = self
            .sessions
            .admit(session, socket, self.lifecycle.session_limit)?;
        for (old, socket) in evicted {
            self.end(
                &old,
                &socket,
                ErrorCode::SessionEvicted,
                end_reason(ErrorCode::SessionEvicted),
            );
        }
        Ok(())
    }

    /// Starts the expiry clock of a connected session.
    pub fn start_clock(&self, session: &Session) {
        for deadline in self.deadlines_of(session, &session.identity()) {
            self.deadlines.schedule(deadline);
        }
    }

    fn stop_clock(&self, session: &Session) {
        for deadline in self.deadlines_of(session, &session.identity()) {
            self.deadlines.cancel(&deadline);
        }
    }

    /// Forgets a disconnected session, its deadlines and its rooms.
    pub fn forget(&self, sid: Sid) {
        self.transports.forget(sid);
        if let Some(session) = self.sessions.remove(sid) {
            self.release(&session);
        }
    }

    /// What goes with a session that left the registry: its clock, its
    /// rooms and presence, its cluster entry.
    fn release(&self, session: &Session) {
        telemetry::sessions(self.sessions.len());
        self.tickets.forget(&session.id);
        self.stop_clock(session);
        self.rooms.forget(session);
        if let Some(cluster) = &self.cluster {
            cluster.write(Write::SessionDown {
                sid: session.id.to_string(),
                user_id: session.user_id.clone(),
            });
        }
    }

    /// The users in `room`: cluster-wide when clustered, else this node's.
    pub async fn room_members(&self, room: &str) -> Vec<String> {
        if let Some(cluster) = self.live_cluster() {
            match cluster.members(room).await {
                Ok(members) => return members,
                Err(e) => tracing::warn!(error = %e, "cluster presence unavailable"),
            }
        }
        self.rooms.members(room)
    }

    /// How many users are in `room`: cluster-wide when clustered; on a
    /// single node an O(1) count, without building the member list.
    pub async fn room_member_count(&self, room: &str) -> usize {
        match self.live_cluster() {
            Some(_) => self.room_members(room).await.len(),
            None => self.rooms.count(room),
        }
    }

    /// The sessions, optionally of one user: cluster-wide when clustered.
    pub async fn list_sessions(&self, user: Option<&str>) -> Vec<SessionInfo> {
        if let Some(cluster) = self.live_cluster() {
            match cluster.sessions(user).await {
                Ok(sessions) => return sessions,
                Err(e) => tracing::warn!(error = %e, "cluster sessions unavailable"),
            }
        }
        let local = match user {
            Some(user) => self.sessions.of_user(user),
            None => self.sessions.matching(|_| true),
        };
        local.iter().map(|(s, _)| s.info()).collect()
    }

    /// After a refresh: rights are recomputed for every room the socket is
    /// in; a room it may no longer join is left, with `room:revoked { room }`.
    /// A room whose answer is unavailable (webhook down) is kept.
    pub async fn recheck_rooms(&self, session: &Session) {
        let Some((_, socket)) = self.sessions.get(session.sid) else {
            return;
        };
        let identity = session.identity();
        let own = session.user_room();
        for room in session.rooms().into_iter().filter(|r| *r != own) {
            let verdict = self
                .policy
                .authorize(&identity, &room, Action::Join, true)
                .await;
            if matches!(&verdict, Err(e) if e.code == ErrorCode::Forbidden) {
                self.rooms.exit(socket.as_ref(), session, &room);
                let revoked = RoomRevoked { room: &room };
                socket.emit_value(server::ROOM_REVOKED, &json(&revoked));
            }
        }
    }

    /// In-band refresh: verifies `credential` like a handshake and, when it
    /// names the same user, swaps it in and moves the expiry clock. Returns
    /// the new `exp`.
    pub async fn refresh(
        &self,
        session: &Session,
        credential: &Credential<'_>,
    ) -> Result<Option<u64>, AuthError> {
        let identity = self.authenticate(credential).await?;
        if identity.user_id != session.user_id {
            return Err(AuthError::new(
                ErrorCode::SubjectMismatch,
                "the new token names another user",
            ));
        }
        let expires_at = identity.expires_at;
        let old = session.identity();
        session.replace_identity(Arc::new(identity));
        // As in `admit`: a revocation of the new token that scanned the
        // registry before the swap has missed this session. The refresh then
        // fails and the old token stays, unless that one is revoked too.
        if let Err(revoked) = self.revocations.check(&session.identity()) {
            session.replace_identity(old.clone());
            if self.revocations.check(&old).is_err()
                && let Some((session, socket)) = self.sessions.get(session.sid)
            {
                let code = ErrorCode::TokenRevoked;
                self.end(&session, &socket, code, end_reason(code));
            }
            return Err(revoked);
        }
        for deadline in self.deadlines_of(session, &old) {
            self.deadlines.cancel(&deadline);
        }
        self.start_clock(session);
        Ok(expires_at)
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
        vec![
            (exp_ms.saturating_sub(lead_ms), session.sid, Due::Warn),
            (
                exp_ms.saturating_add(self.lifecycle.expiry_grace.as_millis() as u64),
                session.sid,
                Due::Expire,
            ),
        ]
    }

    /// Called by the deadline task. Entries made stale by a racing refresh
    /// are recognised and ignored.
    pub fn on_due(&self, deadline: Deadline) {
        let (_, sid, due) = deadline;
        let Some((session, socket)) = self.sessions.get(sid) else {
            return;
        };
        let identity = session.identity();
        if due != Due::Confirm && !self.deadlines_of(&session, &identity).contains(&deadline) {
            return;
        }
        match due {
            Due::Warn => {
                let expires_at = identity.expires_at.unwrap_or_default();
                let seconds_left = expires_at.saturating_sub(unix_now());
                let expiring = Expiring {
                    expires_at,
                    seconds_left,
                };
                socket.emit_value(server::EXPIRING, &json(&expiring));
            }
            Due::Expire => self.end(
                &session,
                &socket,
                ErrorCode::SessionExpired,
                end_reason(ErrorCode::SessionExpired),
            ),
            Due::Confirm => self.confirm(&session, &socket),
        }
    }

    /// Removes a session whose socket never connected.
    ///
    /// The handshake registers a session before socketioxide sends CONNECT;
    /// when the transport is already gone by then (a client that sends
    /// CONNECT and an Engine.IO close in one payload), socketioxide drops
    /// the socket without running its disconnect handler. Left alone, such a
    /// ghost would count against every limit until its token's `exp`.
    fn confirm(&self, session: &Session, socket: &Conn) {
        if socket.connected() || !session.begin_end() {
            return;
        }
        tracing::info!(
            target: "sockgate::session",
            session = %session.id,
            user = %session.user_id,
            "session without a transport removed"
        );
        self.sessions.remove(session.sid);
        self.release(session);
    }

    /// Revokes one token and ends the live sessions running on it. The
    /// sessions end first, here and (through the cluster) elsewhere; the
    /// disk write follows (a failed write is reported, and the revocation
    /// still holds until a restart).
    ///
    /// The revocation is kept until `expires_at`, or until the real `exp` of
    /// the token when a session here runs on it and that is later: a token
    /// must not come back to life because its revocation was pruned early.
    pub async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<Revoked, sqlx::Error> {
        telemetry::revocation("token");
        let expires_at = expires_at.max(self.longest_exp_of(jti));
        self.revocations.remember_token(jti, expires_at);
        let hits = self
            .sessions
            .matching(|s| s.identity().token_id() == Some(jti));
        let msg = Control::RevokeToken {
            jti: jti.to_owned(),
            expires_at,
        };
        let (ended, shared) = self.end_here_and_share(hits, msg).await;
        self.revocations.persist_token(jti, expires_at).await?;
        Ok(Revoked {
            ended,
            shared,
            expires_at,
        })
    }

    /// The latest `exp` of the sessions here that run on token `jti`.
    pub(crate) fn longest_exp_of(&self, jti: &str) -> u64 {
        self.sessions
            .matching(|s| s.identity().token_id() == Some(jti))
            .iter()
            .filter_map(|(s, _)| s.identity().expires_at)
            .max()
            .unwrap_or(0)
    }

    /// Revokes a user's tokens issued before `issued_before` and ends the
    /// live sessions running on one of them; disk write last, as above.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        issued_before: u64,
    ) -> Result<Revoked, sqlx::Error> {
        telemetry::revocation("user");
        self.revocations.remember_user(user_id, issued_before);
        let hits = self
            .sessions
            .of_user(user_id)
            .into_iter()
            .filter(|(s, _)| self.revocations.is_revoked(&s.identity()))
            .collect();
        let msg = Control::RevokeUser {
            user_id: user_id.to_owned(),
            issued_before,
        };
        let (ended, shared) = self.end_here_and_share(hits, msg).await;
        self.revocations
            .persist_user(user_id, issued_before)
            .await?;
        Ok(Revoked {
            ended,
            shared,
            expires_at: issued_before,
        })
    }

    /// Ends one session (admin kick). False when there is no such session.
    pub async fn kick(&self, id: &str) -> bool {
        if let Some((session, socket)) = self.sessions.find(id) {
            let code = ErrorCode::Kicked;
            self.end(&session, &socket, code, end_reason(code));
            return true;
        }
        let Some(cluster) = self.live_cluster() else {
            return false;
        };
        match cluster.has_session(id).await {
            Ok(true) => {
                let msg = Control::End {
                    sid: id.to_owned(),
                    code: ErrorCode::Kicked.as_str().to_owned(),
                };
                cluster.announce(&msg).await;
                true
            }
            _ => false,
        }
    }

    /// Ends every session of a user (admin kick), on every node. Returns how many.
    pub async fn kick_user(&self, user_id: &str) -> usize {
        // Counted before anything ends, while every node still lists them.
        let listed = match self.live_cluster() {
            Some(cluster) => cluster.sessions(Some(user_id)).await.map_or(0, |s| s.len()),
            None => 0,
        };
        let code = ErrorCode::Kicked;
        let local = self.end_all(self.sessions.of_user(user_id), code, end_reason(code));
        if let Some(cluster) = self.live_cluster() {
            let msg = Control::EndUser {
                user_id: user_id.to_owned(),
            };
            cluster.announce(&msg).await;
        }
        listed.max(local)
    }

    /// Ends session `sid` of node `node`: here, or by announcing it.
    async fn end_anywhere(&self, cluster: &Cluster, node: &str, sid: &str, code: ErrorCode) {
        if node == cluster.node {
            if let Some((session, socket)) = self.sessions.find(sid) {
                self.end(&session, &socket, code, end_reason(code));
            }
            return;
        }
        let msg = Control::End {
            sid: sid.to_owned(),
            code: code.as_str().to_owned(),
        };
        cluster.announce(&msg).await;
    }

    /// Ends revoked local sessions while the revocation goes out to the
    /// cluster: the other nodes need not wait for thousands of local ends.
    /// Returns how many ended here, and (in a cluster) whether the
    /// revocation reached the other nodes now.
    async fn end_here_and_share(
        &self,
        hits: Vec<(Arc<Session>, Conn)>,
        msg: Control,
    ) -> (usize, Option<bool>) {
        // `share` runs first: it sends its request and yields at the Redis
        // round trip, during which the local sessions end.
        let (shared, ended) = tokio::join!(biased; self.share(msg), async {
            self.end_all(hits, ErrorCode::TokenRevoked, end_reason(ErrorCode::TokenRevoked))
        });
        (ended, shared)
    }

    /// Ends every one of `sessions`; returns how many.
    pub(crate) fn end_all(
        &self,
        sessions: Vec<(Arc<Session>, Conn)>,
        code: ErrorCode,
        message: &str,
    ) -> usize {
        let n = sessions.len();
        for (session, socket) in sessions {
            self.end(&session, &socket, code, message);
        }
        n
    }

    /// Announces a revocation and stores it in Redis, when clustered.
    ///
    /// A revocation that cannot be announced now (Redis unreachable) waits
    /// in [`Gateway::unshared`] and is announced when Redis is back: the
    /// other nodes may still be serving the token meanwhile.
    async fn share(&self, msg: Control) -> Option<bool> {
        let cluster = self.cluster.as_ref()?;
        if !cluster.is_healthy() || !cluster.announce(&msg).await {
            tracing::warn!("Redis unreachable: the revocation is announced when it is back");
            lock(&self.unshared).push(msg);
            return Some(false);
        }
        // Announced first: the other nodes act on the announcement; the
        // stored copy is for nodes that catch up later.
        let stored = match &msg {
            Control::RevokeToken { jti, expires_at } => {
                cluster.store_revoked_token(jti, *expires_at).await
            }
            Control::RevokeUser {
                user_id,
                issued_before,
            } => cluster.store_revoked_user(user_id, *issued_before).await,
            _ => Ok(()),
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "storing a revocation in Redis failed; shared again at recovery");
        }
        Some(true)
    }

    /// Announces the revocations made while Redis was unreachable; called
    /// once Redis is back. Those that fail again wait for the next recovery.
    pub(crate) async fn share_unshared(&self, cluster: &Cluster) {
        let waiting = std::mem::take(&mut *lock(&self.unshared));
        for msg in waiting {
            if !cluster.announce(&msg).await {
                lock(&self.unshared).push(msg);
            }
        }
    }
}

/// The outcome of a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// Sessions ended on this node.
    pub ended: usize,
    /// In a cluster: whether the other nodes were told now (otherwise they
    /// are told when Redis is back). `None` on a single node.
    pub shared: Option<bool>,
    /// Until when the revocation is kept (`expiresAt`), or the user's
    /// `issuedBefore`.
    pub expires_at: u64,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long after its handshake a session must have a connected socket.
/// CONNECT goes out right after the handshake middleware; a second is a
/// wide margin on a loaded machine.
const CONFIRM_AFTER: Duration = Duration::from_secs(1);

/// Most sessions a draining node ends per second.
const DRAIN_RATE: f64 = 5000.0;

/// How soon a client refused by a draining node may try again.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(2);

/// Server-side emits, whatever adapter the Socket.IO server runs on.
pub trait Broadcaster: Send + Sync + 'static {
    fn publish<'a>(
        &'a self,
        rooms: Vec<String>,
        event: &'a str,
        data: Option<&'a RawValue>,
    ) -> Pin<Box<dyn Future<Output = usize> + Send + 'a>>;
}

impl<A: Adapter> Broadcaster for SocketIo<A> {
    fn publish<'a>(
        &'a self,
        rooms: Vec<String>,
        event: &'a str,
        data: Option<&'a RawValue>,
    ) -> Pin<Box<dyn Future<Output = usize> + Send + 'a>> {
        Box::pin(async move {
            let delivered = self.local().to(rooms.clone()).sockets().len();
            if let Err(e) = self.to(rooms).emit(event, &data).await {
                tracing::warn!(error = %e, "publish to other nodes failed");
            }
            delivered
        })
    }
}

/// A payload as the JSON value [`crate::sessions::Connection::emit_value`] takes.
fn json(payload: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(payload).expect("payloads serialize")
}
