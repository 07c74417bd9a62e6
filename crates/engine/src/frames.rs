//! A packet in its wire form, encoded once and shared: a broadcast's
//! frames go to every member's outbox as the same bytes. What `io` (one
//! socket) and `rooms` (many) both send.

use bytes::Bytes;

use crate::engine::Outgoing;
use crate::sio::{self, Encoded, Kind, Packet, Value};

/// A connection-state-recovery offset: the place of a broadcast in the
/// server's history. It goes out as the event's last argument; a client
/// that reconnects sends the last one it saw back (in its CONNECT
/// payload, as `offset`), and the server sends it what came after.
///
/// Ordered, and written `{0}-{1}`, as Redis stream ids are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offset(pub u64, pub u64);

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A packet's frames, shared: a broadcast is encoded once and every
/// member's outbox holds the same bytes.
#[derive(Debug, Clone)]
pub struct Frames {
    text: Outgoing,
    attachments: Vec<Bytes>,
}

impl From<Encoded> for Frames {
    fn from(encoded: Encoded) -> Self {
        Self {
            text: Outgoing::message(&encoded.text),
            attachments: encoded.attachments,
        }
    }
}

impl Frames {
    /// The text frame.
    pub(crate) fn text(&self) -> &Outgoing {
        &self.text
    }

    /// The binary attachments, in order.
    pub(crate) fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }
}

/// The data of an event packet: its name, its arguments, and its offset
/// last when it has one.
pub(crate) fn event_data(event: &str, args: Vec<Value>, offset: Option<Offset>) -> Value {
    let mut data = Vec::with_capacity(args.len() + 1 + usize::from(offset.is_some()));
    data.push(Value::String(event.to_owned()));
    data.extend(args);
    if let Some(offset) = offset {
        data.push(Value::String(offset.to_string()));
    }
    Value::Array(data)
}

/// A packet in its wire form; `None` (logged) when it cannot be encoded.
pub(crate) fn encode(
    kind: Kind,
    namespace: &str,
    id: Option<u64>,
    data: Option<Value>,
) -> Option<Encoded> {
    let packet = Packet {
        kind,
        namespace: namespace.to_owned(),
        id,
        data,
    };
    sio::encode(&packet)
        .map_err(|e| tracing::warn!(error = %e, "a packet could not be encoded; not sent"))
        .ok()
}
