//! Connection-state recovery: a session whose transport dropped is parked
//! for a window; a handshake that names it again within the window, with a
//! token verified like any other and of the same user, gets it back (its
//! ids and rooms) with the room messages it missed meanwhile, in order,
//! once each.
//!
//! Missed messages come from one history of room messages for the whole
//! node (the cluster's, in Redis), not from a buffer kept per session: a
//! connected session costs nothing, and what a parked one missed is the
//! part of the history after the last offset its client saw, in its rooms.
//! The per-session bounds ([`Settings::max_packets`],
//! [`Settings::max_bytes`]) apply to that part: a session that missed more,
//! or whose part the history no longer holds whole, starts fresh. Never
//! with a gap.
//!
//! The history itself is bounded three ways: by the window (older messages
//! go, on a timer too, not only when the next one comes), by a count
//! ([`Settings::history`]) and by the bytes it holds
//! ([`Settings::history_bytes`], each message weighed as it is stored, so
//! that data that compressed well on the wire cannot pin more memory than
//! the bound). Past a bound, the history is shared fairly between rooms:
//! the oldest message of the room (or set of rooms) holding the most goes
//! first, so that a flood in one room pushes out that room's messages
//! before anyone else's. What went that way is remembered per room
//! ([`missed_dropped`]): a session in another room still recovers whole.
//!
//! The client names its session with a `pid`: the session id and a MAC of
//! it under a key of the node (the cluster's), so that nothing is stored
//! per connected session and a forged one names nothing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::session::SessionId;

/// What recovery keeps, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a dropped session can be recovered.
    pub window: Duration,
    /// Most messages one session may have missed and still recover.
    pub max_packets: usize,
    /// Most bytes of data one session may have missed and still recover.
    pub max_bytes: usize,
    /// How many room messages the history keeps, across every room (past
    /// it, the oldest of the room holding the most go first; each also goes
    /// after the window).
    pub history: usize,
    /// How many bytes of room messages the history keeps, as
    /// [`Message::weight`] counts them, across every room (past it, as for
    /// [`Settings::history`]).
    pub history_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(120),
            max_packets: 1_000,
            max_bytes: 1 << 20,
            history: 10_000,
            history_bytes: 32 << 20,
        }
    }
}

/// A message's place in the history: the Unix millisecond it was appended
/// at and a sequence within it. Written `{ms}-{seq}`, as Redis stream ids
/// are, and ordered as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset {
    /// Unix milliseconds.
    pub ms: u64,
    /// The order within that millisecond.
    pub seq: u64,
}

impl Offset {
    /// The first offset of millisecond `ms`.
    pub const fn at(ms: u64) -> Self {
        Self { ms, seq: 0 }
    }

    /// The last offset before millisecond `ms`: what comes after it is
    /// everything appended from `ms` on.
    pub const fn before(ms: u64) -> Self {
        match ms.checked_sub(1) {
            Some(ms) => Self { ms, seq: u64::MAX },
            None => Self { ms: 0, seq: 0 },
        }
    }

    /// The offset after `self` for a message appended at `now_ms`.
    pub fn next(self, now_ms: u64) -> Self {
        if now_ms > self.ms {
            Self::at(now_ms)
        } else {
            Self {
                ms: self.ms,
                seq: self.seq + 1,
            }
        }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Not an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an offset")]
pub struct BadOffset;

impl FromStr for Offset {
    type Err = BadOffset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').ok_or(BadOffset)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(BadOffset);
        }
        Ok(Self {
            ms: ms.parse().map_err(|_| BadOffset)?,
            seq: seq.parse().map_err(|_| BadOffset)?,
        })
    }
}

impl Serialize for Offset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A room message as the history keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// The rooms it went to.
    pub rooms: Vec<String>,
    /// The transport id of the connection it was not sent to (its
    /// publisher's; see [`crate::Connection::transport_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<String>,
    /// The event.
    pub event: String,
    /// Its data, as JSON.
    pub data: Box<RawValue>,
    /// Not a message but the mark of messages that went out without being
    /// kept (a cluster's Redis was away): a session that missed it would
    /// recover with a gap, so it starts fresh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gap: bool,
    /// Its rooms' own bounds (`history_size`, `history_ttl`).
    #[serde(default, skip_serializing_if = "Keep::is_unbounded")]
    pub keep: Keep,
}

/// A room's own bounds in the history (`[[room_options]]`), beside the
/// history's: past them, its oldest messages go, and a session that
/// missed one starts fresh. A message to several rooms is bound by the
/// most generous of theirs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keep {
    /// Most messages of the room kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// Longest a message of the room is kept, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

impl Keep {
    /// Whether it bounds nothing.
    pub fn is_unbounded(&self) -> bool {
        self.size.is_none() && self.ttl_ms.is_none()
    }

    /// The most generous of `self` and `other`: unbounded wins.
    pub fn widest(self, other: Keep) -> Keep {
        Keep {
            size: self.size.zip(other.size).map(|(a, b)| a.max(b)),
            ttl_ms: self.ttl_ms.zip(other.ttl_ms).map(|(a, b)| a.max(b)),
        }
    }
}

impl Message {
    /// Whether a connection in `rooms`, of transport id `socket`, was sent it.
    pub fn reaches(&self, rooms: &[String], socket: &str) -> bool {
        self.except.as_deref() != Some(socket) && self.rooms.iter().any(|r| rooms.contains(r))
    }

    /// What it weighs against [`Settings::max_bytes`].
    pub fn size(&self) -> usize {
        self.data.get().len() + self.event.len()
    }

    /// What it weighs against [`Settings::history_bytes`]: what it holds
    /// in memory as the history keeps it (its data as JSON text, whatever
    /// it cost on the wire), with a fixed allowance for the bookkeeping.
    pub fn weight(&self) -> usize {
        let rooms: usize = self.rooms.iter().map(|r| r.len() + ROOM_OVERHEAD).sum();
        let except = self.except.as_ref().map_or(0, String::len);
        ENTRY_OVERHEAD + rooms + except + self.size()
    }
}

/// The bookkeeping of one kept message beside its strings: the entry, its
/// place in the indexes, the strings' and allocations' headers.
pub const ENTRY_OVERHEAD: usize = 160;

/// The bookkeeping of one room name of a kept message.
const ROOM_OVERHEAD: usize = 24;

/// Whether a session whose client saw everything up to `after` may have
/// missed a message the history dropped: anything at or before
/// `everywhere` may be gone in every room (the window passed), and
/// anything at or before one of `in_its_rooms` in that room (a bound
/// pushed it out of its room's share).
pub fn missed_dropped(
    after: Offset,
    everywhere: Offset,
    in_its_rooms: impl IntoIterator<Item = Offset>,
) -> bool {
    after < everywhere || in_its_rooms.into_iter().any(|at| after < at)
}

/// A room's kept messages, as the history API answers.
#[derive(Debug, Clone)]
pub struct RoomHistory {
    /// The newest asked for, oldest first.
    pub messages: Vec<Entry>,
    /// The history's newest offset (`None` while it is empty).
    pub last: Option<Offset>,
    /// The history's identity (a single node's is drawn at its start).
    pub epoch: String,
    /// Whether every message of the room after the asked offset is kept.
    pub complete: bool,
}

/// A message and its offset.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its place in the history.
    pub offset: Offset,
    /// The message.
    pub message: Message,
}

/// What a session left when its transport dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    /// The session's id.
    pub session: String,
    /// Its user.
    pub user_id: String,
    /// The id the transport layer gave its socket, given back on recovery.
    pub socket: String,
    /// Its rooms, its own user room included.
    pub rooms: Vec<String>,
    /// The `jti` of the token it ran on, for the revocation check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The `iat` of that token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<u64>,
    /// The last offset before it connected: a client that saw no offset
    /// missed everything after this, and none missed anything before.
    pub since: Offset,
    /// Unix milliseconds.
    pub parked_at: u64,
}

/// Which messages of the history a recovering session wants.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// Its rooms.
    pub rooms: &'a [String],
    /// Its transport id (what it published itself was not sent to it).
    pub socket: &'a str,
    /// [`Settings::max_packets`].
    pub max_packets: usize,
    /// [`Settings::max_bytes`].
    pub max_bytes: usize,
}

/// What a session missed.
#[derive(Debug, Clone)]
pub enum Missed {
    /// These messages, oldest first (maybe none).
    Messages(Vec<Entry>),
    /// Some of what it missed is no longer in the history.
    Gap,
    /// It missed more than the per-session bounds.
    Overflow,
}

/// The messages of `entries` (the history after an offset, oldest first)
/// that `wanted` was sent, within its bounds.
pub fn select<'a>(entries: impl Iterator<Item = &'a Entry>, wanted: &Wanted<'_>) -> Missed {
    let mut picked = Vec::new();
    let mut bytes = 0;
    for entry in entries.filter(|e| e.message.reaches(wanted.rooms, wanted.socket)) {
        if entry.message.gap {
            return Missed::Gap;
        }
        bytes += entry.message.size();
        if picked.len() == wanted.max_packets || bytes > wanted.max_bytes {
            return Missed::Overflow;
        }
        picked.push(entry.clone());
    }
    Missed::Messages(picked)
}

/// What a client sent to recover: its `pid`, and the last offset it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The session the `pid` names (its MAC verified).
    pub session: SessionId,
    /// The last offset the client saw; `None` if it saw none.
    pub offset: Option<Offset>,
}

/// Mints and checks the `pid`s of sessions.
pub struct PidKey {
    key: hmac::Key,
}

impl fmt::Debug for PidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PidKey(..)")
    }
}

/// Hex digits of MAC in a `pid` (128 bits).
const MAC_HEX: usize = 32;

impl PidKey {
    /// A key derived from `secret` (every node of a cluster must share it).
    pub fn new(secret: &[u8]) -> Self {
        // A fixed label, so that a secret shared with another use (the
        // cluster seal) yields an unrelated key.
        let derive = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let key = hmac::sign(&derive, b"sockgate recovery pid v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
        }
    }

    /// A key of this process alone.
    pub fn random() -> Self {
        Self::new(&rand::random::<[u8; 32]>())
    }

    /// The `pid` of `session`.
    pub fn pid(&self, session: SessionId) -> String {
        let mac = hmac::sign(&self.key, session.as_str().as_bytes());
        let hex: String = mac.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("{session}{}", &hex[..MAC_HEX])
    }

    /// The session `pid` names, if its MAC verifies.
    pub(crate) fn session_of(&self, pid: &str) -> Option<SessionId> {
        let (id, _) = pid.split_at_checked(SessionId::LEN)?;
        let session = SessionId::parse(id)?;
        let expected = self.pid(session);
        let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), pid.as_bytes()).into();
        same.then_some(session)
    }

    /// The claim of a handshake's `pid` and `offset`; `None` when the pid
    /// names no session of ours. An offset that is not one counts as none
    /// (the client then missed everything since its session connected).
    pub fn claim(&self, pid: &str, offset: Option<&str>) -> Option<Claim> {
        Some(Claim {
            session: self.session_of(pid)?,
            offset: offset.and_then(|o| o.parse().ok()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ms: u64, rooms: &[&str], except: Option<&str>, data: &str) -> Entry {
        Entry {
            offset: Offset::at(ms),
            message: Message {
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
                except: except.map(str::to_owned),
                event: "news".into(),
                data: RawValue::from_string(data.into()).unwrap(),
                gap: false,
                keep: Default::default(),
            },
        }
    }

    #[test]
    fn offsets_read_back_and_order_as_redis_stream_ids() {
        let o: Offset = "1700000000000-12".parse().unwrap();
        assert_eq!(
            o,
            Offset {
                ms: 1_700_000_000_000,
                seq: 12
            }
        );
        assert_eq!(o.to_string(), "1700000000000-12");
        assert!(Offset { ms: 5, seq: 9 } < Offset { ms: 6, seq: 0 });
        assert_eq!(Offset::at(5).next(5), Offset { ms: 5, seq: 1 });
        assert_eq!(Offset { ms: 5, seq: 3 }.next(4), Offset { ms: 5, seq: 4 });
        assert_eq!(Offset::at(5).next(7), Offset::at(7));
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "+1-2",
            "99999999999999999999-0",
        ] {
            assert_eq!(bad.parse::<Offset>(), Err(BadOffset), "{bad}");
        }
    }

    #[test]
    fn a_session_gets_its_rooms_messages_but_its_own() {
        let log = [
            entry(1, &["a"], None, "1"),
            entry(2, &["b"], None, "2"),
            entry(3, &["a", "user:u"], Some("me"), "3"),
            entry(4, &["user:u"], None, "4"),
        ];
        let rooms = ["a".to_string(), "user:u".to_string()];
        let wanted = Wanted {
            rooms: &rooms,
            socket: "me",
            max_packets: 10,
            max_bytes: 100,
        };
        let Missed::Messages(got) = select(log.iter(), &wanted) else {
            panic!("within bounds");
        };
        let got: Vec<u64> = got.iter().map(|e| e.offset.ms).collect();
        assert_eq!(got, [1, 4]);
        let tight = Wanted {
            max_packets: 1,
            ..wanted
        };
        assert!(matches!(select(log.iter(), &tight), Missed::Overflow));
        let small = Wanted {
            max_bytes: 9,
            ..wanted
        };
        assert!(matches!(select(log.iter(), &small), Missed::Overflow));
        let mut holed = log.clone();
        holed[1].message.gap = true;
        assert!(
            matches!(select(holed.iter(), &wanted), Missed::Messages(_)),
            "not its room"
        );
        holed[3].message.gap = true;
        assert!(matches!(select(holed.iter(), &wanted), Missed::Gap));
    }

    #[test]
    fn a_pid_names_its_session_under_its_key_only() {
        let key = PidKey::new(b"a secret");
        let session = SessionId::random();
        let pid = key.pid(session);
        assert_eq!(key.session_of(&pid), Some(session));
        assert_eq!(PidKey::new(b"another").session_of(&pid), None);
        let mut forged = pid.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(key.session_of(std::str::from_utf8(&forged).unwrap()), None);
        for junk in ["", "short", &pid[..30], &format!("{pid}0"), "é"] {
            assert_eq!(key.session_of(junk), None, "{junk}");
        }
        let claim = key.claim(&pid, Some("not-an-offset")).unwrap();
        assert_eq!(claim.offset, None);
    }
}
