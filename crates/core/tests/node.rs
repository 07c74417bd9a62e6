//! `Node` end to end on the in-memory backends, with real HMAC tokens and
//! tokio's paused clock: a token's whole life (warning, expiry, refresh,
//! revocation) runs in milliseconds.
//!
//! Tokens are minted at the test's start (`iat` at or before `t0`): the
//! verifier checks `exp` and `iat` against the wall clock, which stands
//! still while the node's clock is advanced, so a token "issued" at a later
//! node time would be refused as issued in the future.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use sockgate_auth::jsonwebtoken::{EncodingKey, Header};
use sockgate_auth::{Credential, ErrorCode, Rules, SourcePolicy, Verifier, VerifyKey};
use sockgate_core::backend::memory::MemoryHistory;
use sockgate_core::limits::{AbuseLimits, Rate};
use sockgate_core::recovery::{self, Message, PidKey};
use sockgate_core::session::{LimitPolicy, SessionLimit};
use sockgate_core::{
    Conn, Connection, Lifecycle, Node, Origin, Revocations, Revoked, Session, SessionId,
    TokioClock, Transport,
};
use sockgate_protocol::events::server;

const SECRET: &str = "core-node-tests-secret-core-node-tests";

/// What the node did to a connection.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Emit(String, Value),
    Join(String),
    Leave(String),
    End(ErrorCode, String),
}

/// A connection that records everything the node does to it.
struct Recorder {
    connected: AtomicBool,
    calls: Mutex<Vec<Call>>,
}

impl Recorder {
    fn new(connected: bool) -> Arc<Self> {
        Arc::new(Self {
            connected: AtomicBool::new(connected),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn emits(&self) -> Vec<(String, Value)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Emit(event, data) => Some((event, data)),
                _ => None,
            })
            .collect()
    }

    fn joins(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Join(room) => Some(room),
                _ => None,
            })
            .collect()
    }

    /// The codes of the `end` calls, in order.
    fn ends(&self) -> Vec<ErrorCode> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::End(code, _) => Some(code),
                _ => None,
            })
            .collect()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
}

impl Connection for Recorder {
    fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn emit_value(&self, event: &str, data: &Value) {
        self.record(Call::Emit(event.to_owned(), data.clone()));
    }

    fn join(&self, room: &str) {
        self.record(Call::Join(room.to_owned()));
    }

    fn leave(&self, room: &str) {
        self.record(Call::Leave(room.to_owned()));
    }

    fn end(&self, code: ErrorCode, message: &str) {
        self.connected.store(false, Ordering::Release);
        self.record(Call::End(code, message.to_owned()));
    }
}

fn verifier() -> Verifier {
    let rules = Rules::default();
    let key = VerifyKey::hmac(SECRET.as_bytes(), &rules).unwrap();
    Verifier::new(rules).with_hmac(key)
}

/// A node on tokio's (paused) clock with its deadline task running.
fn node_with(lifecycle: Lifecycle, abuse: Option<AbuseLimits>) -> Arc<Node> {
    let mut node = Node::new(
        verifier(),
        SourcePolicy::default(),
        Revocations::in_memory(),
        lifecycle,
    )
    .with_clock(Arc::new(TokioClock::new()));
    if let Some(abuse) = abuse {
        node = node.with_abuse_limits(abuse);
    }
    let node = Arc::new(node);
    let runner = node.clone();
    tokio::spawn(async move { runner.run_deadlines().await });
    node
}

fn node() -> Arc<Node> {
    node_with(Lifecycle::default(), None)
}

fn limited(max: usize, policy: LimitPolicy) -> Arc<Node> {
    let lifecycle = Lifecycle {
        session_limit: Some(SessionLimit { max, policy }),
        ..Lifecycle::default()
    };
    node_with(lifecycle, None)
}

/// An HS256 token of `sub` with id `jti`, issued at `iat`, expiring at `exp`.
fn token(sub: &str, jti: &str, iat: u64, exp: u64) -> String {
    let claims = json!({ "sub": sub, "jti": jti, "iat": iat, "exp": exp });
    sockgate_auth::jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn credential(token: &str) -> Credential<'_> {
    Credential::Token(token.into())
}

fn origin() -> Origin {
    Origin {
        remote_addr: Some("10.0.0.7".parse().unwrap()),
        user_agent: Some("node-tests".to_owned()),
        transport: Transport::WebSocket,
    }
}

/// Verifies `token` and admits its session on a new connection.
async fn try_connect(
    node: &Node,
    token: &str,
    connected: bool,
) -> (Arc<Session>, Arc<Recorder>, Result<(), ErrorCode>) {
    let identity = node.authenticate(&credential(token)).await.unwrap();
    let session = Arc::new(node.session(identity, origin()));
    let conn = Recorder::new(connected);
    let admitted = node
        .admit(session.clone(), conn.clone() as Conn)
        .await
        .map_err(|e| e.code);
    (session, conn, admitted)
}

async fn connect(node: &Node, token: &str) -> (Arc<Session>, Arc<Recorder>) {
    let (session, conn, admitted) = try_connect(node, token, true).await;
    admitted.unwrap();
    (session, conn)
}

/// Lets the deadline task run what fell due.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Moves the node's clock to `at_ms` (Unix milliseconds).
async fn advance_to(node: &Node, at_ms: u64) {
    let now = node.clock().now_ms();
    assert!(at_ms >= now, "cannot go back from {now} to {at_ms}");
    tokio::time::advance(Duration::from_millis(at_ms - now)).await;
    settle().await;
    assert_eq!(node.clock().now_ms(), at_ms);
}

fn ids(node: &Node) -> Vec<String> {
    let mut ids: Vec<String> = node
        .sessions_here()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

// --- admission --------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_verified_session_is_registered_in_its_user_room_and_counted() {
    let node = node();
    let t0 = node.clock().now();
    let (session, conn) = connect(&node, &token("alice", "a1", t0, t0 + 600)).await;

    assert_eq!(session.user_id, "alice");
    assert_eq!(session.connected_at, t0);
    assert_eq!(node.session_count(), 1);
    assert_eq!(conn.joins(), ["user:alice"]);
    assert!(session.in_room("user:alice"));
    assert_eq!(node.room_member_count("user:alice").await, 1);
    let listed = node.sessions_here();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_id, session.id.as_str());
    assert_eq!(listed[0].expires_at, Some(t0 + 600));
    assert_eq!(listed[0].transport, "websocket");
    // The transport check, the warning and the expiry.
    assert_eq!(node.deadline_count(), 3);
    assert!(conn.ends().is_empty());

    // A second socket of the same user: two sessions, still one user there.
    let (_, other) = connect(&node, &token("alice", "a2", t0, t0 + 600)).await;
    assert_eq!(other.joins(), ["user:alice"]);
    assert_eq!(node.session_count(), 2);
    assert_eq!(node.room_member_count("user:alice").await, 1);
    assert_eq!(node.room_members("user:alice").await, ["alice"]);
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_is_refused_by_authenticate() {
    let node = node();
    let t0 = node.clock().now();
    let revoked = token("alice", "a1", t0, t0 + 600);
    node.revoke_token("a1", t0 + 600).await.unwrap();
    let err = node.authenticate(&credential(&revoked)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenRevoked);
    // Another token of the same user is not concerned.
    let fresh = token("alice", "a2", t0, t0 + 600);
    assert_eq!(
        node.authenticate(&credential(&fresh))
            .await
            .unwrap()
            .user_id,
        "alice"
    );

    // A user revocation refuses that user's older tokens.
    node.revoke_user("bob", t0).await.unwrap();
    let old = token("bob", "b1", t0 - 10, t0 + 600);
    let err = node.authenticate(&credential(&old)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenRevoked);
    let new = token("bob", "b2", t0, t0 + 600);
    assert!(node.authenticate(&credential(&new)).await.is_ok());
    assert_eq!(node.session_count(), 0);
}

/// A revocation that lands between the handshake's verification and its
/// admission is caught by the admission's second check.
#[tokio::test(start_paused = true)]
async fn admission_rechecks_the_revocation_after_registering() {
    let node = node();
    let t0 = node.clock().now();
    let identity = node
        .authenticate(&credential(&token("alice", "a1", t0, t0 + 600)))
        .await
        .unwrap();
    let session = Arc::new(node.session(identity, origin()));
    node.revoke_token("a1", t0 + 600).await.unwrap();
    let conn = Recorder::new(true);
    let err = node
        .admit(session.clone(), conn.clone() as Conn)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenRevoked);
    assert_eq!(node.session_count(), 0);
    assert_eq!(node.deadline_count(), 0);
    assert_eq!(node.room_member_count("user:alice").await, 0);
    assert!(conn.calls().is_empty(), "{:?}", conn.calls());
}

// --- limits -----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_session_limit_refuses_one_more_with_reject() {
    let node = limited(2, LimitPolicy::Reject);
    let t0 = node.clock().now();
    let (first, first_conn) = connect(&node, &token("alice", "a1", t0, t0 + 600)).await;
    let (second, second_conn) = connect(&node, &token("alice", "a2", t0, t0 + 600)).await;

    let (third, third_conn, admitted) =
        try_connect(&node, &token("alice", "a3", t0, t0 + 600), true).await;
    assert_eq!(admitted, Err(ErrorCode::SessionLimit));
    assert_eq!(node.session_count(), 2);
    assert_eq!(
        ids(&node),
        sorted(vec![first.id.to_string(), second.id.to_string()])
    );
    assert!(!third.in_room("user:alice"));
    assert!(third_conn.calls().is_empty());
    assert!(first_conn.ends().is_empty() && second_conn.ends().is_empty());

    // The limit is per user.
    connect(&node, &token("bob", "b1", t0, t0 + 600)).await;
    assert_eq!(node.session_count(), 3);

    // Once one of alice's ends, she may open another.
    assert!(node.kick(first.id.as_str()).await);
    connect(&node, &token("alice", "a4", t0, t0 + 600)).await;
    assert_eq!(node.session_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_session_limit_evicts_the_oldest_with_evict_oldest() {
    let node = limited(2, LimitPolicy::EvictOldest);
    let t0 = node.clock().now();
    let (first, first_conn) = connect(&node, &token("alice", "a1", t0, t0 + 600)).await;
    let (second, second_conn) = connect(&node, &token("alice", "a2", t0, t0 + 600)).await;
    let (third, third_conn) = connect(&node, &token("alice", "a3", t0, t0 + 600)).await;

    assert_eq!(first_conn.ends(), [ErrorCode::SessionEvicted]);
    assert!(second_conn.ends().is_empty());
    assert!(third_conn.ends().is_empty());
    assert_eq!(third_conn.joins(), ["user:alice"]);
    assert_eq!(node.session_count(), 2);
    assert_eq!(
        ids(&node),
        sorted(vec![second.id.to_string(), third.id.to_string()])
    );
    assert!(!first.in_room("user:alice"), "the evicted left its rooms");
    assert_eq!(node.room_member_count("user:alice").await, 1);

    // The next one evicts the oldest left, in admission order.
    let (fourth, _) = connect(&node, &token("alice", "a4", t0, t0 + 600)).await;
    assert_eq!(second_conn.ends(), [ErrorCode::SessionEvicted]);
    assert!(third_conn.ends().is_empty());
    assert_eq!(
        ids(&node),
        sorted(vec![third.id.to_string(), fourth.id.to_string()])
    );
    assert_eq!(first_conn.ends().len(), 1, "an evicted session ends once");

    // The evicted sessions' clocks are stopped: only the survivors' remain
    // once the transport checks have run.
    advance_to(&node, node.clock().now_ms() + 1_000).await;
    assert_eq!(node.deadline_count(), 4);
}

#[tokio::test(start_paused = true)]
async fn events_over_the_budget_are_refused_then_the_session_is_ended() {
    let abuse = AbuseLimits {
        events_per_socket: Rate {
            per_second: 1,
            burst: 2,
        },
        ..AbuseLimits::default()
    };
    let node = node_with(Lifecycle::default(), Some(abuse));
    let t0 = node.clock().now();
    let (session, conn) = connect(&node, &token("alice", "a1", t0, t0 + 600)).await;

    assert!(node.allow_event(&session).is_ok());
    assert!(node.allow_event(&session).is_ok());
    // Refused while the abuse is short of twice the burst...
    for _ in 0..3 {
        let err = node.allow_event(&session).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(conn.ends().is_empty());
        assert_eq!(node.session_count(), 1);
    }
    // ...then the session is cut.
    let err = node.allow_event(&session).unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
    assert_eq!(conn.ends(), [ErrorCode::RateLimited]);
    assert_eq!(node.session_count(), 0);
    assert!(session.is_ending());

    // More events of the dead session end nothing more.
    assert!(node.allow_event(&session).is_err());
    assert_eq!(conn.ends().len(), 1);
}

// --- expiry -----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_warning_comes_a_lead_before_exp_and_the_session_ends_at_exp() {
    let node = node();
    let t0 = node.clock().now();
    let exp = t0 + 600;
    let (session, conn) = connect(&node, &token("alice", "a1", t0, exp)).await;
    let warn_ms = (exp - 60) * 1000;

    advance_to(&node, warn_ms - 1).await;
    assert!(conn.emits().is_empty(), "{:?}", conn.emits());
    assert_eq!(node.deadline_count(), 2, "the transport check has run");

    advance_to(&node, warn_ms).await;
    assert_eq!(
        conn.emits(),
        [(
            server::EXPIRING.to_owned(),
            json!({ "expiresAt": exp, "secondsLeft": 60 })
        )]
    );
    assert!(conn.ends().is_empty());

    advance_to(&node, exp * 1000 - 1).await;
    assert!(conn.ends().is_empty());
    assert_eq!(node.session_count(), 1);

    advance_to(&node, exp * 1000).await;
    assert_eq!(conn.ends(), [ErrorCode::SessionExpired]);
    assert_eq!(conn.emits().len(), 1, "one warning only");
    assert_eq!(node.deadline_count(), 0);
    assert_eq!(node.session_count(), 0);
    assert!(node.sessions_here().is_empty());
    assert!(!session.in_room("user:alice"));
    assert_eq!(node.room_member_count("user:alice").await, 0);
    let figures = node.stats().node("local", 0, "off");
    assert_eq!(figures.ends["SESSION_EXPIRED"], 1);
}

#[tokio::test(start_paused = true)]
async fn the_lead_is_at_most_a_quarter_of_the_lifetime_and_the_grace_delays_the_end() {
    let lifecycle = Lifecycle {
        expiry_grace: Duration::from_secs(5),
        ..Lifecycle::default()
    };
    let node = node_with(lifecycle, None);
    let t0 = node.clock().now();
    // 100 s of life: warned 25 s before exp, not 60.
    let exp = t0 + 100;
    let (_, conn) = connect(&node, &token("alice", "a1", t0, exp)).await;

    advance_to(&node, (exp - 25) * 1000 - 1).await;
    assert!(conn.emits().is_empty());
    advance_to(&node, (exp - 25) * 1000).await;
    assert_eq!(conn.emits().len(), 1);
    assert_eq!(conn.emits()[0].1["secondsLeft"], 25);

    advance_to(&node, (exp + 5) * 1000 - 1).await;
    assert!(conn.ends().is_empty(), "within the grace");
    advance_to(&node, (exp + 5) * 1000).await;
    assert_eq!(conn.ends(), [ErrorCode::SessionExpired]);
    assert_eq!(node.deadline_count(), 0);
}

// --- refresh ----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_refresh_moves_the_expiry_clock() {
    let node = node();
    let t0 = node.clock().now();
    let (old_exp, new_exp) = (t0 + 600, t0 + 1200);
    let (session, conn) = connect(&node, &token("alice", "a1", t0, old_exp)).await;
    let later = token("alice", "a2", t0, new_exp);

    advance_to(&node, (t0 + 300) * 1000).await;
    let refreshed = node.refresh(&session, &credential(&later)).await.unwrap();
    assert_eq!(refreshed, Some(new_exp));
    assert_eq!(session.identity().token_id(), Some("a2"));
    assert_eq!(session.info().expires_at, Some(new_exp));
    assert_eq!(node.deadline_count(), 2, "the old deadlines are gone");

    // Neither the old warning nor the old expiry fires.
    advance_to(&node, old_exp * 1000 + 1_000).await;
    assert!(conn.emits().is_empty(), "{:?}", conn.emits());
    assert!(conn.ends().is_empty());
    assert_eq!(node.session_count(), 1);

    advance_to(&node, (new_exp - 60) * 1000).await;
    assert_eq!(
        conn.emits(),
        [(
            server::EXPIRING.to_owned(),
            json!({ "expiresAt": new_exp, "secondsLeft": 60 })
        )]
    );
    advance_to(&node, new_exp * 1000 - 1).await;
    assert!(conn.ends().is_empty());
    advance_to(&node, new_exp * 1000).await;
    assert_eq!(conn.ends(), [ErrorCode::SessionExpired]);
    assert_eq!(node.deadline_count(), 0);
    assert_eq!(node.session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_naming_another_user_is_refused_and_the_old_token_stays() {
    let node = node();
    let t0 = node.clock().now();
    let exp = t0 + 600;
    let (session, conn) = connect(&node, &token("alice", "a1", t0, exp)).await;

    let bobs = token("bob", "b1", t0, t0 + 1200);
    let err = node
        .refresh(&session, &credential(&bobs))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SubjectMismatch);
    assert_eq!(session.identity().token_id(), Some("a1"));
    assert_eq!(session.identity().user_id, "alice");
    assert_eq!(node.deadline_count(), 3);

    // The old clock still runs.
    advance_to(&node, (exp - 60) * 1000).await;
    assert_eq!(conn.emits().len(), 1);
    assert_eq!(conn.emits()[0].1["expiresAt"], exp);
    advance_to(&node, exp * 1000).await;
    assert_eq!(conn.ends(), [ErrorCode::SessionExpired]);
    assert_eq!(node.session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_with_a_revoked_token_fails_and_the_old_token_stays() {
    let node = node();
    let t0 = node.clock().now();
    let exp = t0 + 600;
    let (session, conn) = connect(&node, &token("alice", "a1", t0, exp)).await;
    let later = token("alice", "a2", t0, t0 + 1200);
    let revoked = node.revoke_token("a2", t0 + 1200).await.unwrap();
    assert_eq!(revoked.ended, 0, "no session runs on a2");

    let err = node
        .refresh(&session, &credential(&later))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenRevoked);
    assert_eq!(session.identity().token_id(), Some("a1"));
    assert!(
        conn.ends().is_empty(),
        "the session goes on on its old token"
    );
    assert_eq!(node.session_count(), 1);

    advance_to(&node, exp * 1000 - 1).await;
    assert!(conn.ends().is_empty());
    advance_to(&node, exp * 1000).await;
    assert_eq!(conn.ends(), [ErrorCode::SessionExpired]);
}

// --- revocation -------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn revoking_a_token_ends_the_session_running_on_it() {
    let node = node();
    let t0 = node.clock().now();
    let a1 = token("alice", "a1", t0, t0 + 600);
    let (revoked_session, revoked_conn) = connect(&node, &a1).await;
    let (_, other_conn) = connect(&node, &token("alice", "a2", t0, t0 + 600)).await;
    let (_, bob_conn) = connect(&node, &token("bob", "b1", t0, t0 + 600)).await;

    // Kept at least until the exp of the token seen here.
    let revoked = node.revoke_token("a1", 0).await.unwrap();
    assert_eq!(
        revoked,
        Revoked {
            ended: 1,
            shared: None,
            expires_at: t0 + 600,
        }
    );
    assert_eq!(revoked_conn.ends(), [ErrorCode::TokenRevoked]);
    assert!(other_conn.ends().is_empty());
    assert!(bob_conn.ends().is_empty());
    assert_eq!(node.session_count(), 2);
    assert!(!ids(&node).contains(&revoked_session.id.to_string()));
    let kept = node.revocations().list().tokens;
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].jti.as_str(), kept[0].expires_at), ("a1", t0 + 600));

    // The token cannot come back, and revoking it again ends nothing more.
    let err = node.authenticate(&credential(&a1)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenRevoked);
    assert_eq!(node.revoke_token("a1", 0).await.unwrap().ended, 0);
    assert_eq!(revoked_conn.ends().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn revoking_a_user_ends_only_the_tokens_issued_before_the_cut_off() {
    let node = node();
    let t0 = node.clock().now();
    let (_, older) = connect(&node, &token("alice", "a-old", t0 - 100, t0 + 600)).await;
    let (_, newer) = connect(&node, &token("alice", "a-new", t0, t0 + 600)).await;
    let (_, bob) = connect(&node, &token("bob", "b-old", t0 - 100, t0 + 600)).await;

    let revoked = node.revoke_user("alice", t0 - 50).await.unwrap();
    assert_eq!(
        revoked,
        Revoked {
            ended: 1,
            shared: None,
            expires_at: t0 - 50,
        }
    );
    assert_eq!(older.ends(), [ErrorCode::TokenRevoked]);
    assert!(newer.ends().is_empty());
    assert!(
        bob.ends().is_empty(),
        "another user's old token is not concerned"
    );
    assert_eq!(node.session_count(), 2);

    let before = token("alice", "a-other", t0 - 51, t0 + 600);
    let err = node.authenticate(&credential(&before)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenRevoked);
    let at_cut_off = token("alice", "a-cut", t0 - 50, t0 + 600);
    assert!(node.authenticate(&credential(&at_cut_off)).await.is_ok());
}

// --- kicks ------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn kick_ends_one_session_with_kicked() {
    let node = node();
    let t0 = node.clock().now();
    let (kicked, kicked_conn) = connect(&node, &token("alice", "a1", t0, t0 + 600)).await;
    let (kept, kept_conn) = connect(&node, &token("alice", "a2", t0, t0 + 600)).await;

    assert!(node.kick(kicked.id.as_str()).await);
    assert_eq!(kicked_conn.ends(), [ErrorCode::Kicked]);
    assert!(kept_conn.ends().is_empty());
    assert_eq!(ids(&node), [kept.id.to_string()]);

    // Gone, unknown, or not an id at all: nothing to kick.
    assert!(!node.kick(kicked.id.as_str()).await);
    assert!(!node.kick(SessionId::random().as_str()).await);
    assert!(!node.kick("not-a-session-id").await);
    assert_eq!(kicked_conn.ends().len(), 1);
    assert_eq!(node.session_count(), 1);

    advance_to(&node, node.clock().now_ms() + 1_000).await;
    assert_eq!(node.deadline_count(), 2, "only the kept session's clock");
}

#[tokio::test(start_paused = true)]
async fn kick_user_ends_every_session_of_the_user_and_counts_them() {
    let node = node();
    let t0 = node.clock().now();
    let mut alices = Vec::new();
    for jti in ["a1", "a2", "a3"] {
        alices.push(connect(&node, &token("alice", jti, t0, t0 + 600)).await.1);
    }
    let (_, bob) = connect(&node, &token("bob", "b1", t0, t0 + 600)).await;

    assert_eq!(node.kick_user("alice").await, 3);
    for conn in &alices {
        assert_eq!(conn.ends(), [ErrorCode::Kicked]);
    }
    assert!(bob.ends().is_empty());
    assert_eq!(node.session_count(), 1);
    assert_eq!(node.room_member_count("user:alice").await, 0);
    assert_eq!(node.kick_user("alice").await, 0);
    assert_eq!(node.kick_user("nobody").await, 0);
    let figures = node.stats().node("local", 0, "off");
    assert_eq!(figures.ends["KICKED"], 3);
}

// --- shutdown ---------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn shutting_down_ends_every_session_and_the_node_is_no_longer_ready() {
    let node = node();
    let t0 = node.clock().now();
    let mut conns = Vec::new();
    for (user, jti) in [("alice", "a1"), ("alice", "a2"), ("bob", "b1")] {
        conns.push(connect(&node, &token(user, jti, t0, t0 + 600)).await.1);
    }
    assert!(node.is_ready());
    assert!(node.admit_opening(None).is_ok());

    let start = tokio::time::Instant::now();
    node.shut_down(Duration::from_secs(10)).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "three sessions need not take the whole window: {:?}",
        start.elapsed()
    );
    for conn in &conns {
        assert_eq!(conn.ends(), [ErrorCode::ServerShutdown]);
    }
    assert_eq!(node.session_count(), 0);
    assert!(!node.is_ready());
    assert!(node.is_draining());
    let retry = node.admit_opening(None).unwrap_err();
    assert_eq!(retry.error.code, ErrorCode::ServerShutdown);
    assert_eq!(
        node.check_open().unwrap_err().code,
        ErrorCode::ServerShutdown
    );

    advance_to(&node, node.clock().now_ms() + 1_000).await;
    assert_eq!(node.deadline_count(), 0);
}

// --- the ghost check --------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_came_up_is_removed_a_second_after_admission() {
    let node = node();
    let t0 = node.clock().now();
    let admitted_at = node.clock().now_ms();
    let (session, ghost, admitted) =
        try_connect(&node, &token("alice", "a1", t0, t0 + 600), false).await;
    admitted.unwrap();
    let (_, live) = connect(&node, &token("alice", "a2", t0, t0 + 600)).await;
    assert_eq!(node.session_count(), 2);

    advance_to(&node, admitted_at + 999).await;
    assert_eq!(node.session_count(), 2);

    advance_to(&node, admitted_at + 1_000).await;
    assert_eq!(node.session_count(), 1);
    assert!(!ids(&node).contains(&session.id.to_string()));
    assert!(ghost.ends().is_empty(), "a ghost is not told anything");
    assert_eq!(ghost.calls(), [Call::Join("user:alice".to_owned())]);
    assert!(live.ends().is_empty(), "a live connection stays");
    assert_eq!(node.room_member_count("user:alice").await, 1);
    assert_eq!(node.deadline_count(), 2, "only the live session's clock");
}

// --- recovery ---------------------------------------------------------------

/// A node with recovery on, with the memory history it keeps its messages
/// in, and its deadline task (and the history's trim) running.
fn recovering() -> (Arc<Node>, Arc<MemoryHistory>) {
    let settings = recovery::Settings::default();
    let history = Arc::new(MemoryHistory::new(settings.clone()));
    let node = Node::new(
        verifier(),
        SourcePolicy::default(),
        Revocations::in_memory(),
        Lifecycle::default(),
    )
    .with_clock(Arc::new(TokioClock::new()))
    .with_recovery(settings, PidKey::random())
    .with_history(history.clone());
    let node = Arc::new(node);
    let runner = node.clone();
    tokio::spawn(async move { runner.run_deadlines().await });
    (node, history)
}

/// Appends `n` for alice's user room, as the gateway's emitter does.
fn note(node: &Node, history: &MemoryHistory, n: u32) {
    let message = Message {
        rooms: vec!["user:alice".to_owned()],
        except: None,
        event: "note".to_owned(),
        data: RawValue::from_string(n.to_string()).unwrap(),
        gap: false,
        keep: Default::default(),
    };
    history.append(message, node.clock().now_ms(), |_| ());
}

/// Drops `session`'s transport, then recovers it for a client that presents
/// `offset` as the last it saw: the recovered session and the data of what
/// it is given back.
async fn drop_and_recover(
    node: &Node,
    session: &Session,
    token: &str,
    offset: &str,
) -> (Arc<Session>, Vec<String>) {
    node.lost(session.id, sockgate_core::Gone::TransportLost)
        .expect("recovery is on")
        .await;
    let pid = node.pid(session.id).unwrap();
    let claim = node.claim(&pid, Some(offset)).unwrap();
    let identity = node.authenticate(&credential(token)).await.unwrap();
    let resumed = node.resume(&identity, &claim).await.expect("recovers");
    let back = Arc::new(node.session(identity, origin()).with_id(resumed.session));
    let conn = Recorder::new(true);
    node.admit(back.clone(), conn.clone() as Conn)
        .await
        .unwrap();
    let restored = node.restore(conn.as_ref(), &back, resumed).await.unwrap();
    let data = restored
        .missed
        .iter()
        .map(|e| e.message.data.get().to_owned());
    (back, data.collect())
}

#[tokio::test(start_paused = true)]
async fn an_offset_from_before_the_session_replays_nothing_from_before_it() {
    let (node, history) = recovering();
    let t0 = node.clock().now();
    let token = token("alice", "r1", t0, t0 + 600);
    note(&node, &history, 1);
    // Seconds apart: the session's start is read off a wall-clock instant,
    // which stands still only nearly while the node's clock is advanced.
    advance_to(&node, node.clock().now_ms() + 10_000).await;
    let (session, _) = connect(&node, &token).await;
    advance_to(&node, node.clock().now_ms() + 10_000).await;
    note(&node, &history, 2);

    // "0-0" is older than the session: it gets what came after it connected.
    let (back, missed) = drop_and_recover(&node, &session, &token, "0-0").await;
    assert_eq!(missed, ["2"]);

    // Recovered, it keeps its first start: a client that lost the replay
    // in a second drop is given it again.
    advance_to(&node, node.clock().now_ms() + 10_000).await;
    note(&node, &history, 3);
    let (_, missed) = drop_and_recover(&node, &back, &token, "0-0").await;
    assert_eq!(missed, ["2", "3"]);
}

#[tokio::test(start_paused = true)]
async fn the_history_drops_what_the_window_passed_with_nothing_published() {
    let (node, history) = recovering();
    note(&node, &history, 1);
    let window = recovery::Settings::default().window.as_millis() as u64;
    advance_to(&node, node.clock().now_ms() + window - 1_000).await;
    assert_eq!(history.size().0, 1, "still in the window");
    advance_to(&node, node.clock().now_ms() + 2_500).await;
    assert_eq!(history.size(), (0, 0), "trimmed by the timer alone");
}

/// A handshake as an adapter hands it over: `auth` and no header.
async fn handshake(node: &Node, auth: Value) -> Result<sockgate_core::Accepted, String> {
    let no_header = |_: &str| None;
    let hs = sockgate_core::Handshake {
        namespace: "/",
        auth: &auth,
        header: &no_header,
        query: None,
        origin: origin(),
    };
    node.handshake(hs, Recorder::new(true) as Conn)
        .await
        .map_err(|denied| denied.code().to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_handshake_runs_in_the_core_from_the_payload_to_a_registered_session() {
    let node = node();
    let now = node.clock().now();
    let accepted = handshake(
        &node,
        json!({ "token": token("ann", "h1", now, now + 600) }),
    )
    .await
    .unwrap();
    assert_eq!(accepted.session.user_id, "ann");
    assert_eq!(accepted.source.as_str(), "auth");
    assert_eq!(accepted.pid, None, "recovery is off");
    assert_eq!(ids(&node), vec![accepted.session.id.to_string()]);

    let missing = handshake(&node, Value::Null).await.unwrap_err();
    assert_eq!(missing, "AUTH_REQUIRED");
    node.revoke_token("h2", now + 600).await.unwrap();
    let revoked = handshake(
        &node,
        json!({ "token": token("bob", "h2", now, now + 600) }),
    )
    .await
    .unwrap_err();
    assert_eq!(revoked, "TOKEN_REVOKED");
    assert_eq!(node.session_count(), 1, "a refusal leaves no session");
}

/// A broker whose `listening` waits for the test to open its gate, and
/// records what it was asked.
#[derive(Default)]
struct Gate {
    asked: Mutex<Vec<Vec<String>>>,
    open: tokio::sync::Notify,
}

impl sockgate_core::backend::Broker for Gate {
    fn publish<'a>(
        &'a self,
        _: sockgate_core::backend::Outgoing<'a>,
    ) -> sockgate_core::BoxFuture<
        'a,
        Result<sockgate_core::backend::Delivery, sockgate_core::backend::Unavailable>,
    > {
        Box::pin(async { Ok(sockgate_core::backend::Delivery::Reached(0)) })
    }

    fn listening<'a>(&'a self, rooms: &'a [String]) -> sockgate_core::BoxFuture<'a, ()> {
        self.asked.lock().unwrap().push(rooms.to_vec());
        Box::pin(self.open.notified())
    }
}

#[tokio::test(start_paused = true)]
async fn the_connect_and_a_joins_ack_wait_until_the_broker_listens_on_the_rooms() {
    let gate = Arc::new(Gate::default());
    let node = Node::new(
        verifier(),
        SourcePolicy::default(),
        Revocations::in_memory(),
        Lifecycle::default(),
    )
    .with_clock(Arc::new(TokioClock::new()))
    .with_broker(gate.clone());
    let node = Arc::new(node);
    let now = node.clock().now();
    let claims = json!({ "sub": "ann", "iat": now, "exp": now + 600, "rooms": ["chat:*"] });
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let token = sockgate_auth::jsonwebtoken::encode(&Header::default(), &claims, &key).unwrap();

    let shaking = tokio::spawn({
        let node = node.clone();
        async move { handshake(&node, json!({ "token": token })).await }
    });
    settle().await;
    assert!(!shaking.is_finished(), "the CONNECT waits for the broker");
    assert_eq!(*gate.asked.lock().unwrap(), [vec!["user:ann".to_owned()]]);
    gate.open.notify_one();
    let accepted = shaking.await.unwrap().unwrap();

    let conn = Recorder::new(true);
    let joining = tokio::spawn({
        let (node, session, conn) = (node.clone(), accepted.session.clone(), conn.clone());
        async move { node.join(conn.as_ref(), &session, "chat:1").await }
    });
    settle().await;
    assert!(
        !joining.is_finished(),
        "the join's ack waits for the broker"
    );
    assert_eq!(gate.asked.lock().unwrap()[1], ["chat:1"]);
    gate.open.notify_one();
    assert_eq!(joining.await.unwrap().unwrap(), 1);
}
