//! # sockgate-engine
//!
//! sockgate's own implementation of the Engine.IO v4 and Socket.IO v5
//! protocols, which the gateway serves Socket.IO on:
//!
//! - [`eio`]: Engine.IO v4 packets (open, close, ping, pong, message,
//!   upgrade, noop), one WebSocket frame per packet, and the long-polling
//!   payload that joins several packets with the record separator `\x1e`.
//! - [`sio`]: Socket.IO v5 packets carried inside Engine.IO messages, with
//!   namespaces, acknowledgement ids, and binary attachments reassembled by
//!   [`sio::Partial`].
//! - [`engine`]: the Engine.IO server: sessions over long-polling and
//!   WebSocket, the upgrade, the heartbeat, bounded outboxes.
//! - [`io`]: the Socket.IO server on top of it: namespaces, sockets,
//!   events and acks, binary attachments;
//! - [`rooms`]: the rooms of a namespace, and broadcasts to them.
//!
//! ## Design: tasks, buffers, backpressure
//!
//! - **Tasks.** A WebSocket connection is one task: it reads frames, writes
//!   the outbox and runs the heartbeat in one `select!`, over the stream
//!   whole (not split) and one timer that is reset, not rebuilt. The
//!   upgrade (the probe, the open packet) runs in a short task of its own
//!   that hands over to it, so that the long-lived task's state is the
//!   steady loop alone (632 bytes); its rare awaits (a write, the
//!   closing handshake) are boxed while they run. A long-polling session
//!   has one task, its heartbeat; its reads and writes run in the
//!   requests' own tasks. At an upgrade the heartbeat moves to the
//!   WebSocket's task. Socket.IO adds one short task per CONNECT (the
//!   namespace's `connect` may await, e.g. a key fetch). Its connect
//!   timeout is a deadline on the session (`Socket::close_at`), which the
//!   transport's own timer keeps: no task or timer per connection.
//! - **Buffers.** The outbox is a `VecDeque` behind the session's lock:
//!   nothing is allocated until a packet waits, and a drain takes the
//!   buffer with the packets, so an idle session holds none. Packets wait
//!   in their wire form ([`engine::Outgoing`]): a broadcast is encoded
//!   once and its bytes are shared by every member's outbox. The
//!   WebSocket read buffer is `ws_read_buffer` bytes (256 by default);
//!   yawc grows it for a larger frame and gives it back to that size
//!   afterwards. The write buffer is kept at 64 bytes between writes.
//! - **Compression.** permessage-deflate, when on, takes its contexts from
//!   one pool per engine while a message is compressed or inflated (no
//!   context takeover, imposed on both sides): an idle connection holds
//!   none, and one that is sent small messages (under the threshold) never
//!   takes one.
//!   The HTTP request is dropped at the upgrade; its head goes to the
//!   handler and is kept by the Socket.IO layer only until every namespace
//!   is joined. Room names are shared `Arc<str>`s.
//! - **Backpressure.** A message to a session lands in its outbox; nothing
//!   waits on a slow client. The outbox holds at most `max_buffered`
//!   packets and `max_buffered_bytes` bytes: the next one is refused and
//!   the session is closed (`CloseReason::Backpressure`, close code 1013).
//!   A WebSocket write that the client does not take within `pingTimeout`
//!   closes the session the same way, so a client that stops reading holds
//!   at most the outbox's bound and its socket buffers, for at most
//!   `pingTimeout`. A long-polling client that stops polling is closed by
//!   the heartbeat (no pong) or by the bound.
//! - **Bounds on input.** A request body or a message over `max_payload`
//!   closes the session (1009), and so does a long-polling body of more
//!   than `max_payload_packets` packets or slower than `body_timeout`.
//!   The engine puts fragmented WebSocket messages together itself, under
//!   the same bound and `fragment_timeout`, which its own timer keeps: a
//!   message whose last fragment never comes ends the connection (1002)
//!   even if nothing else arrives. A connection that has joined no
//!   namespace may send a Socket.IO CONNECT (at most `max_connect` bytes)
//!   and nothing else, one CONNECT per namespace at a time; one whose last
//!   namespace is left is closed. A server that takes no binary
//!   (`io::Config::binary`) closes on the first binary packet (1003);
//!   one that does counts a packet's attachments with its text against
//!   `max_packet`, under `attachment_timeout`. An event's name is read, and
//!   the namespace asked ([`io::Namespace::admit`]), before its arguments.
//!
//! Every decoder is bounded (a maximum size, a maximum number of
//! attachments) and returns an error rather than panicking on any input, so
//! the layers above may feed it whatever a client sends. The official
//! compliance suites (socketio/engine.io-protocol and
//! socketio/socket.io-protocol, `test-suite/`) pass against
//! `examples/protocol-suite.rs`.
//!
//! ```
//! use sockgate_engine::{eio, sio};
//!
//! // A long-polling body with two Engine.IO messages...
//! let body = b"42/admin,7[\"hello\",1]\x1e2";
//! let packets = eio::decode_payload(body, 1_000_000).unwrap();
//! let eio::Packet::Message(text) = &packets[0] else { unreachable!() };
//! assert_eq!(packets[1], eio::Packet::Ping);
//!
//! // ...the first of which is a Socket.IO event asking for an ack.
//! let sio::Decoded::Complete(event) = sio::decode(text, 10).unwrap() else {
//!     unreachable!("no attachments announced")
//! };
//! assert_eq!(event.kind, sio::Kind::Event);
//! assert_eq!((event.namespace.as_str(), event.id), ("/admin", Some(7)));
//! assert_eq!(sio::encode(&event).unwrap().text, r#"2/admin,7["hello",1]"#);
//! ```

#![warn(missing_docs)]

pub mod eio;
pub mod engine;
pub mod frames;
pub mod io;
pub mod rooms;
pub mod sio;
