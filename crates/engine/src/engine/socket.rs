//! One Engine.IO session: its id, its outbox, and its state.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Config;
use crate::eio::{self, Packet};

/// An Engine.IO session id: 20 random URL-safe characters, held inline.
///
/// It is a bearer credential of the transport (who knows it can poll and
/// post as the client): the layers above give their sessions ids of their
/// own and never show this one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sid([u8; Sid::LEN]);

impl Sid {
    const LEN: usize = 20;

    /// A new random id.
    pub fn random() -> Self {
        use rand::Rng;
        let mut id = [0u8; Self::LEN];
        let chars = rand::distr::Alphanumeric;
        for (b, c) in id.iter_mut().zip(rand::rng().sample_iter(chars)) {
            *b = c;
        }
        Self(id)
    }

    /// The id a request names, if it can be one.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; Self::LEN] = s.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(Self(bytes))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ids are ASCII")
    }
}

impl std::fmt::Display for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sid(..)")
    }
}

impl CloseReason {
    /// Whether the client broke a rule (the protocol, a bound): what a
    /// long-polling request that carried it is answered 400 for.
    pub fn is_violation(self) -> bool {
        matches!(
            self,
            CloseReason::ProtocolError
                | CloseReason::TooLarge
                | CloseReason::Unsupported
                | CloseReason::InvalidUtf8
        )
    }
}

/// The transport currently carrying a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// A WebSocket.
    WebSocket,
}

/// A message, the payload of Engine.IO's message packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Text.
    Text(String),
    /// Bytes.
    Binary(Bytes),
}

/// A packet as it waits in an outbox: in its wire form already, so that
/// a broadcast is encoded once and every member's outbox shares its bytes
/// (a copy per member let 40 KiB of publishes hold 1.5 GiB with 100
/// members that stopped reading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// The text of an Engine.IO packet, its type digit included (`4...`
    /// for a message).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Outgoing {
    /// A text message: `4` and `text`.
    pub fn message(text: &str) -> Self {
        let mut framed = Vec::with_capacity(text.len() + 1);
        framed.push(b'4');
        framed.extend_from_slice(text.as_bytes());
        Outgoing::Text(framed.into())
    }

    /// Any packet in its wire form.
    pub(crate) fn packet(packet: Packet) -> Self {
        match eio::encode_frame(packet) {
            eio::Frame::Text(text) => Outgoing::Text(text.into()),
            eio::Frame::Binary(data) => Outgoing::Binary(data),
        }
    }

    /// Its size in bytes, as the outbox's bound counts it.
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Text(b) | Outgoing::Binary(b) => b.len(),
        }
    }

    /// Whether it is empty (never, for a packet: the type digit is there).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a session closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a close packet.
    ClientClose,
    /// The server closed it.
    ServerClose,
    /// No pong came in time.
    PingTimeout,
    /// The transport failed or went away.
    TransportError,
    /// The client broke the protocol (a bad packet, a duplicate poll).
    ProtocolError,
    /// The outbox overflowed: the client does not read.
    Backpressure,
    /// A message over the size limit (WebSocket close code 1009).
    TooLarge,
    /// Data the server does not accept, such as binary where none is
    /// used (1003).
    Unsupported,
    /// A text frame that is not UTF-8 (1007).
    InvalidUtf8,
}

#[derive(Debug)]
struct State {
    transport: Transport,
    outbox: VecDeque<Outgoing>,
    /// The bytes the outbox holds.
    queued: usize,
    /// A WebSocket is being probed for an upgrade.
    upgrading: bool,
    /// The probe succeeded: polls end with a noop until the upgrade.
    probed: bool,
    /// A long-polling `GET` is waiting.
    polling: bool,
    /// A ping went out and its pong has not come.
    awaiting_pong: bool,
    /// A packet was refused: the outbox was full.
    overflowed: bool,
    /// The layer above asked for the session to close, for this reason.
    closing: Option<CloseReason>,
    /// A long-polling `POST` is being read.
    posting: bool,
    /// The client closed while no poll was waiting: the next poll takes
    /// the noop and the session closes then.
    close_after_poll: bool,
    /// When the session closes unless the layer above clears it first.
    deadline: Option<Instant>,
}

/// One Engine.IO session, with the data `D` of the layer above.
#[derive(Debug)]
pub struct Socket<D> {
    sid: Sid,
    state: Mutex<State>,
    /// Wakes whatever drains the outbox.
    pub(crate) wake: Notify,
    /// Wakes the heartbeat when a pong arrives.
    pub(crate) pong: Notify,
    closed: AtomicBool,
    /// Most packets the outbox holds.
    max_buffered: usize,
    /// Most bytes the outbox holds.
    max_buffered_bytes: usize,
    /// The layer above's state for this session.
    pub data: D,
}

impl<D: Default> Socket<D> {
    pub(crate) fn new(transport: Transport, config: &Config) -> Self {
        Self {
            sid: Sid::random(),
            state: Mutex::new(State {
                transport,
                outbox: VecDeque::new(),
                queued: 0,
                upgrading: false,
                probed: false,
                polling: false,
                awaiting_pong: false,
                overflowed: false,
                closing: None,
                posting: false,
                close_after_poll: false,
                deadline: None,
            }),
            wake: Notify::new(),
            pong: Notify::new(),
            closed: AtomicBool::new(false),
            max_buffered: config.max_buffered,
            max_buffered_bytes: config.max_buffered_bytes,
            data: D::default(),
        }
    }
}

impl<D> Socket<D> {
    /// The session id.
    pub fn sid(&self) -> Sid {
        self.sid
    }

    /// The session id as text.
    pub fn sid_str(&self) -> &str {
        self.sid.as_str()
    }

    /// The transport now carrying it.
    pub fn transport(&self) -> Transport {
        self.lock().transport
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues a text message.
    pub fn send_text(&self, text: String) {
        self.send(Outgoing::message(&text));
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: Bytes) {
        self.send(Outgoing::Binary(data));
    }

    /// Queues a packet in its wire form (shared with other outboxes, for a
    /// broadcast) and wakes the transport. Nothing once closed; one that
    /// would take the outbox over its bounds (in packets or in bytes) is
    /// refused and marks the session overflowed: its transport then closes
    /// it.
    pub fn send(&self, packet: Outgoing) {
        if self.is_closed() {
            return;
        }
        let mut state = self.lock();
        let full = state.outbox.len() >= self.max_buffered
            || state.queued + packet.len() > self.max_buffered_bytes;
        if full {
            state.overflowed = true;
        } else {
            state.queued += packet.len();
            state.outbox.push_back(packet);
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Queues a packet of the engine's own (a ping, say).
    pub(crate) fn push(&self, packet: Packet) {
        self.send(Outgoing::packet(packet));
    }

    /// Whether the transport must end the session now: a packet was
    /// refused for a full outbox, or the layer above asked.
    pub(crate) fn must_close(&self) -> Option<CloseReason> {
        let state = self.lock();
        if state.overflowed {
            Some(CloseReason::Backpressure)
        } else {
            state.closing
        }
    }

    /// Closes the session: its transport ends it at once (a WebSocket is
    /// closed, a pending poll answered with a close packet).
    pub fn close(&self) {
        self.close_for(CloseReason::ServerClose);
    }

    /// Closes the session as [`Socket::close`] does, for `reason` (which
    /// a WebSocket's close frame tells the client). The first reason
    /// given is kept.
    pub fn close_for(&self, reason: CloseReason) {
        self.lock().closing.get_or_insert(reason);
        self.wake.notify_waiters();
        self.wake.notify_one();
        self.pong.notify_one();
    }

    /// Closes the session at `deadline` unless it is cleared (`None`)
    /// before. The transport's own timer keeps it: a session costs no task
    /// or timer of its own for it (the layer above sets one at open for
    /// its handshake, and clears it once that is done).
    pub fn close_at(&self, deadline: Option<Instant>) {
        self.lock().deadline = deadline;
        self.wake.notify_one();
        self.pong.notify_one();
    }

    /// The instant set by [`Socket::close_at`], if any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.lock().deadline
    }

    /// Whether any packet is waiting.
    pub(crate) fn has_queued(&self) -> bool {
        !self.lock().outbox.is_empty()
    }

    /// Takes every waiting packet, and the outbox's buffer with them: an
    /// idle session holds none.
    pub(crate) fn drain(&self) -> VecDeque<Outgoing> {
        let mut state = self.lock();
        state.queued = 0;
        std::mem::take(&mut state.outbox)
    }

    /// The open packet of this session.
    pub(crate) fn open_packet(&self, config: &Config, upgrades: bool) -> Packet {
        let upgrades = if upgrades { r#"["websocket"]"# } else { "[]" };
        Packet::Open(format!(
            r#"{{"sid":"{}","upgrades":{upgrades},"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            self.sid.as_str(),
            config.ping_interval.as_millis(),
            config.ping_timeout.as_millis(),
            config.max_payload,
        ))
    }

    /// Marks the session closed; true for the first caller only.
    pub(crate) fn mark_closed(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        if first {
            self.wake.notify_waiters();
            self.wake.notify_one();
            self.pong.notify_one();
        }
        first
    }

    /// A pong arrived.
    pub(crate) fn ponged(&self) {
        self.lock().awaiting_pong = false;
        self.pong.notify_one();
    }

    /// A ping goes out now.
    pub(crate) fn pinged(&self) {
        self.lock().awaiting_pong = true;
    }

    /// Whether the last ping is still unanswered.
    pub(crate) fn awaiting_pong(&self) -> bool {
        self.lock().awaiting_pong
    }

    /// Claims the long-polling `GET` slot; false when one is pending.
    pub(crate) fn begin_poll(&self) -> bool {
        let mut state = self.lock();
        !std::mem::replace(&mut state.polling, true)
    }

    /// The client sent a close: a noop for the waiting poll, now or when
    /// it comes, and the session is forgotten with it.
    pub(crate) fn client_closed(&self) {
        let mut state = self.lock();
        state.outbox.clear();
        state.outbox.push_back(Outgoing::packet(Packet::Noop));
        state.queued = 1;
        state.close_after_poll = true;
        drop(state);
        self.wake.notify_one();
    }

    /// Whether the poll that just drained the outbox ends the session.
    pub(crate) fn closes_after_poll(&self) -> bool {
        self.lock().close_after_poll
    }

    /// Claims the long-polling `POST` slot; false when one is being read.
    pub(crate) fn begin_post(&self) -> bool {
        let mut state = self.lock();
        !std::mem::replace(&mut state.posting, true)
    }

    /// Frees the long-polling `POST` slot.
    pub(crate) fn end_post(&self) {
        self.lock().posting = false;
    }

    /// Frees the long-polling `GET` slot.
    pub(crate) fn end_poll(&self) {
        self.lock().polling = false;
    }

    /// Starts probing a WebSocket; false unless on long-polling and not
    /// already upgrading.
    pub(crate) fn begin_upgrade(&self) -> bool {
        let mut state = self.lock();
        if state.transport != Transport::Polling || state.upgrading {
            return false;
        }
        state.upgrading = true;
        true
    }

    /// The probe succeeded: a poll waiting now, or coming before the
    /// upgrade, ends with a noop.
    pub(crate) fn probe_done(&self) {
        self.lock().probed = true;
        self.wake.notify_waiters();
    }

    /// Whether the probe succeeded and the upgrade is still to come.
    pub(crate) fn is_probed(&self) -> bool {
        self.lock().probed
    }

    /// The upgrade failed: back to long-polling only.
    pub(crate) fn abort_upgrade(&self) {
        let mut state = self.lock();
        state.upgrading = false;
        state.probed = false;
    }

    /// The upgrade is done: the WebSocket carries the session from now on.
    pub(crate) fn finish_upgrade(&self) {
        let mut state = self.lock();
        state.upgrading = false;
        state.probed = false;
        state.transport = Transport::WebSocket;
        drop(state);
        // A poll still waiting ends (with a noop) and the heartbeat hands over.
        self.wake.notify_waiters();
        self.pong.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
