//! The Socket.IO v5 server, on top of the engine: namespaces, sockets,
//! events with acknowledgements, binary attachments.
//!
//! [`Io`] is the engine's [`Handler`]. Each namespace is a [`Namespace`]
//! implementation shared by every socket in it: no table of handlers per
//! socket. A socket is a small struct ([`SioSocket`]) in its connection's
//! list, which is the engine session's own data.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use bytes::Bytes;

use crate::engine::{self, CloseReason, Handler, Intake, Message};
pub use crate::frames::Offset;
use crate::frames::{Frames, encode, event_data};
use crate::rooms::{Member, Rooms};
use crate::sio::{self, Decoded, Kind, Packet, Partial, Value};

/// The head of the request that opened a connection.
pub type RequestHead = http::request::Parts;

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An engine session carrying Socket.IO.
pub type EioSocket = engine::Socket<Conn>;

/// A refused CONNECT: the client gets `connect_error` with `err.message`
/// and `err.data`, or, when `close_transport` is set, its transport is
/// closed instead (the official client then retries by itself, where it
/// would stop on a `connect_error`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectError {
    /// `err.message`.
    pub message: String,
    /// `err.data`, when set.
    pub data: Option<serde_json::Value>,
    /// Close the transport instead of answering.
    pub close_transport: bool,
}

/// The handshake payload of a CONNECT.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// None was sent.
    None,
    /// A JSON value: an object, by the protocol; any other is handed on
    /// for the namespace to refuse with its own words.
    Payload(&'a Value),
    /// Text that is not JSON (or nested past what the parser takes).
    Invalid,
}

/// An [`Auth`] the connect task owns.
#[derive(Debug, Clone)]
enum OwnedAuth {
    None,
    Payload(Value),
    Invalid,
}

impl OwnedAuth {
    fn borrow(&self) -> Auth<'_> {
        match self {
            OwnedAuth::None => Auth::None,
            OwnedAuth::Payload(value) => Auth::Payload(value),
            OwnedAuth::Invalid => Auth::Invalid,
        }
    }
}

/// Why a socket left its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client disconnected the namespace.
    ClientDisconnect,
    /// The server disconnected it.
    ServerDisconnect,
    /// The connection closed.
    Closed(CloseReason),
}

/// What a namespace does with its sockets.
pub trait Namespace: Send + Sync + 'static {
    /// A client asks to join with its handshake `auth` payload, on the
    /// connection `request` opened. The head is kept only until the first
    /// namespace is joined; a CONNECT after that gets an empty one. The
    /// CONNECT answer waits for this: an error refuses the socket.
    fn connect<'a>(
        &'a self,
        socket: &'a Arc<SioSocket>,
        auth: Auth<'a>,
        request: &'a RequestHead,
    ) -> BoxFuture<'a, Result<(), ConnectError>>;
    /// The client has been told it is connected (with the same `auth`).
    fn connected(&self, _socket: &Arc<SioSocket>, _auth: Auth<'_>) {}
    /// Decides about an event from its name alone, before its arguments
    /// are read (a name the namespace does not handle, or a client over
    /// its budget, then costs no parse of them). A refusal may answer the
    /// `ack` itself. Binary events, where the server takes them, are
    /// decided once their attachments are in.
    fn admit(&self, _socket: &Arc<SioSocket>, _event: &str, ack: Option<Ack>) -> Admission {
        Admission::Handle(ack)
    }
    /// An event, with an ack to answer when the client asked for one.
    fn event(&self, socket: &Arc<SioSocket>, event: String, args: Vec<Value>, ack: Option<Ack>);
    /// The socket left (once, for any reason).
    fn disconnect(&self, _socket: &Arc<SioSocket>, _reason: DisconnectReason) {}
}

/// What a namespace decides about an event before reading its arguments.
#[derive(Debug)]
pub enum Admission {
    /// Read the arguments and hand the event to [`Namespace::event`].
    Handle(Option<Ack>),
    /// Drop it unread.
    Drop,
}

/// The Socket.IO state of one engine session.
#[derive(Default, Debug)]
pub struct Conn {
    /// The opening request's head, shared by every CONNECT, until every
    /// namespace is joined (a connection to the only namespace then keeps
    /// none).
    request: Mutex<Option<Arc<RequestHead>>>,
    /// Its sockets: joined, or still connecting (one per namespace).
    sockets: Mutex<Vec<Arc<SioSocket>>>,
    /// A binary packet waiting for its attachments.
    partial: Mutex<Option<Box<Pending>>>,
}

/// A binary packet waiting for its attachments.
#[derive(Debug)]
struct Pending {
    partial: Partial,
    /// The bytes of its text and attachments so far.
    bytes: usize,
    /// The session's deadline before the packet started (the attachments
    /// have one of their own meanwhile).
    deadline: Option<tokio::time::Instant>,
}

/// A broadcast a recovering socket missed.
#[derive(Debug, Clone)]
pub struct Missed {
    /// Its offset.
    pub offset: Offset,
    /// The event.
    pub event: String,
    /// Its arguments (the offset is appended).
    pub args: Vec<Value>,
}

/// The rooms of one namespace or more, holding their sockets.
pub type SocketRooms = Rooms<SioSocket>;

/// One socket: a connection's membership of one namespace.
pub struct SioSocket {
    /// Its id (20 ASCII alphanumerics, held inline): drawn when first
    /// read, unless a recovery gave the old one back before.
    id: std::sync::OnceLock<[u8; 20]>,
    eio: Arc<EioSocket>,
    /// Its namespace.
    namespace: Arc<str>,
    /// The rooms of its namespace (which may be shared with others).
    rooms: Arc<SocketRooms>,
    /// The rooms it is in, by their shared names.
    joined: Mutex<Vec<Arc<str>>>,
    /// What the namespace attached to the socket (set once).
    data: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
    /// Until the client is told it is connected: what goes with the
    /// CONNECT answer (see [`Before`]). Boxed: a connected socket keeps
    /// only the pointer.
    early: Mutex<Option<Box<Before>>>,
}

/// What a socket does when it answers CONNECT.
#[derive(Default)]
struct Before {
    /// What it was asked to send or do meanwhile (by the namespace's own
    /// `connect`, or a timer it started), replayed after the answer, in
    /// order.
    queue: Vec<Early>,
    /// The `pid` of the answer: the client recovers with it.
    pid: Option<String>,
    /// What a recovered socket missed, sent right after the answer.
    missed: Vec<Frames>,
    /// Broadcasts at or before this offset are in `missed` or reached the
    /// client before: dropped from `queue`.
    through: Option<Offset>,
}

/// Something a socket was asked to do before its CONNECT answer.
enum Early {
    Send(Frames, Option<Offset>),
    CloseTransport,
    Disconnect,
}

impl std::fmt::Debug for SioSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SioSocket")
            .field("namespace", &self.namespace())
            .finish_non_exhaustive()
    }
}

impl Member for SioSocket {
    /// Sends a packet in its wire form (after the CONNECT answer), a
    /// broadcast with its offset; a broadcast's frames are shared.
    fn send_frames(&self, frames: Frames, offset: Option<Offset>) {
        if let Err(Early::Send(frames, _)) = self.defer(Early::Send(frames, offset)) {
            write(&self.eio, &frames);
        }
    }

    fn is(&self, id: &str) -> bool {
        SioSocket::is(self, id)
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }
}

impl SioSocket {
    /// The socket's id, as the client sees it.
    pub fn id(&self) -> &str {
        let id = self.id.get_or_init(random_id);
        std::str::from_utf8(id).expect("ids are ASCII")
    }

    /// Whether the socket's id is `id` (without drawing one: a socket being
    /// recovered has none yet).
    pub fn is(&self, id: &str) -> bool {
        self.id.get().is_some_and(|own| own == id.as_bytes())
    }

    /// Sets the `pid` of the CONNECT answer (from the namespace's
    /// `connect`): a client that reconnects with it asks to recover.
    pub fn set_pid(&self, pid: String) {
        if let Some(before) = lock(&self.early).as_mut() {
            before.pid = Some(pid);
        }
    }

    /// Recovers a socket (from the namespace's `connect`): it takes the
    /// old socket's `id`, and `missed` goes out right after the CONNECT
    /// answer, before what was sent to the socket meanwhile; of that,
    /// broadcasts at or before `through` are dropped (they are in
    /// `missed`, or the client had them). False, and nothing changes,
    /// when `id` is not a socket id or the socket has an id already.
    pub fn recover(&self, id: &str, missed: Vec<Missed>, through: Offset) -> bool {
        let Ok(bytes) = <[u8; 20]>::try_from(id.as_bytes()) else {
            return false;
        };
        if !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return false;
        }
        let mut early = lock(&self.early);
        let Some(before) = early.as_mut() else {
            return false;
        };
        if self.id.set(bytes).is_err() {
            return false;
        }
        before.missed = missed
            .into_iter()
            .filter_map(|m| {
                encode(
                    Kind::Event,
                    self.namespace(),
                    None,
                    Some(event_data(&m.event, m.args, Some(m.offset))),
                )
            })
            .map(Frames::from)
            .collect();
        before.through = Some(through);
        true
    }

    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The engine session carrying it.
    pub fn engine(&self) -> &Arc<EioSocket> {
        &self.eio
    }

    /// Whether another namespace's socket shares its transport (joined,
    /// or still connecting).
    pub fn shares_transport(&self) -> bool {
        lock(&self.eio.data.sockets).len() > 1
    }

    /// Attaches `data` to the socket (once; false if something was).
    pub fn set_data<T: Send + Sync + 'static>(&self, data: Arc<T>) -> bool {
        self.data.set(data).is_ok()
    }

    /// What was attached, if it is a `T`.
    pub fn data<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.data.get()?.clone().downcast::<T>().ok()
    }

    /// Whether the socket is still in its namespace on a live connection.
    pub fn connected(self: &Arc<Self>) -> bool {
        !self.eio.is_closed()
            && self.is_joined()
            && lock(&self.eio.data.sockets)
                .iter()
                .any(|s| Arc::ptr_eq(s, self))
    }

    /// Whether the client was told it is connected (its CONNECT answered).
    fn is_joined(&self) -> bool {
        lock(&self.early).is_none()
    }

    /// Closes the socket's whole connection (its transport): the official
    /// client reconnects by itself.
    pub fn close_transport(&self) {
        if self.defer(Early::CloseTransport).is_err() {
            self.eio.close();
        }
    }

    /// Keeps `early` for after the CONNECT answer; gives it back once that
    /// is sent.
    fn defer(&self, early: Early) -> Result<(), Early> {
        match lock(&self.early).as_mut() {
            Some(before) => {
                before.queue.push(early);
                Ok(())
            }
            None => Err(early),
        }
    }

    /// Emits `event` with `args`.
    pub fn emit(&self, event: &str, args: Vec<Value>) {
        self.send(Kind::Event, None, Some(event_data(event, args, None)));
    }

    /// Leaves the namespace: the client gets DISCONNECT (and does not
    /// reconnect by itself). The namespace's `disconnect` is not called:
    /// the caller is the one disconnecting.
    pub fn disconnect(self: &Arc<Self>) {
        if self.defer(Early::Disconnect).is_ok() {
            return;
        }
        self.send(Kind::Disconnect, None, None);
        self.leave_all();
        let mut sockets = lock(&self.eio.data.sockets);
        sockets.retain(|s| !Arc::ptr_eq(s, self));
        // A transport with no namespace left is closed (after the
        // DISCONNECT, which the close lets out first): it would be outside
        // every limit and deadline.
        if sockets.is_empty() {
            drop(sockets);
            self.eio.close();
        }
    }

    /// Puts the socket in `room` of its namespace.
    pub fn join(self: &Arc<Self>, room: &str) {
        let mut joined = lock(&self.joined);
        if joined.iter().any(|r| &**r == room) {
            return;
        }
        let name = self.rooms.join(self, room);
        crate::rooms::push_first_exact(&mut joined, name);
    }

    /// Takes the socket out of `room`.
    pub fn leave(&self, room: &str) {
        let mut joined = lock(&self.joined);
        let Some(at) = joined.iter().position(|r| &**r == room) else {
            return;
        };
        joined.swap_remove(at);
        drop(joined);
        self.rooms.leave(self, room);
    }

    /// Takes the socket out of every room.
    pub fn leave_all(&self) {
        let joined = std::mem::take(&mut *lock(&self.joined));
        for room in joined {
            self.rooms.leave(self, &room);
        }
    }

    /// The rooms of the socket's namespace (for broadcasts), which other
    /// namespaces may share.
    pub fn rooms(&self) -> &Arc<SocketRooms> {
        &self.rooms
    }

    fn send(&self, kind: Kind, id: Option<u64>, data: Option<Value>) {
        if let Some(encoded) = encode(kind, self.namespace(), id, data) {
            self.send_frames(Frames::from(encoded), None);
        }
    }

    /// Sends the CONNECT answer, what a recovered socket missed, then what
    /// was asked before the answer. All of it under the lock that sends
    /// made meanwhile wait on: none can slip in between.
    fn connected_now(self: &Arc<Self>) {
        let mut early = lock(&self.early);
        let before = early.take().unwrap_or_default();
        let answer = match &before.pid {
            Some(pid) => json!({ "sid": self.id(), "pid": pid }),
            None => json!({ "sid": self.id() }),
        };
        if let Some(encoded) = encode(Kind::Connect, self.namespace(), None, Some(answer.into())) {
            write(&self.eio, &Frames::from(encoded));
        }
        for frames in &before.missed {
            write(&self.eio, frames);
        }
        let seen = |offset: Option<Offset>| offset.is_some_and(|o| Some(o) <= before.through);
        let mut last = None;
        for step in before.queue {
            match step {
                Early::Send(frames, offset) if !seen(offset) => write(&self.eio, &frames),
                Early::Send(..) => {}
                close => {
                    last = Some(close);
                    break;
                }
            }
        }
        drop(early);
        match last {
            Some(Early::CloseTransport) => self.eio.close(),
            Some(Early::Disconnect) => self.disconnect(),
            _ => {}
        }
    }
}

/// The answer owed to an event that asked for one.
#[derive(Debug)]
pub struct Ack {
    socket: Arc<SioSocket>,
    id: u64,
}

impl Ack {
    /// Answers with `args`.
    pub fn send(self, args: Vec<Value>) {
        self.socket
            .send(Kind::Ack, Some(self.id), Some(Value::Array(args)));
    }
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a connection may wait before joining a namespace.
    pub connect_timeout: Duration,
    /// Most attachments one packet may announce.
    pub max_attachments: usize,
    /// Whether binary packets are taken at all. A server that uses none
    /// refuses them: the connection closes (`CloseReason::Unsupported`).
    pub binary: bool,
    /// Most bytes of one packet, its text and attachments together.
    pub max_packet: usize,
    /// Longest a binary packet's attachments may take to arrive.
    pub attachment_timeout: Duration,
    /// Most bytes of a CONNECT packet's text. A CONNECT carries a token
    /// (sockgate's are at most 8 KiB, refused with a code past that) and
    /// a few ids; a client that has joined no namespace may send nothing
    /// else, so this bounds what a stranger can make the server read
    /// before it is authenticated.
    pub max_connect: usize,
    /// Most namespaces one connection may be in (or be joining) at once.
    /// Each is a session to the server above: without a bound, one client
    /// on one transport could open a namespace of a pattern per CONNECT,
    /// past every per-address and per-transport budget.
    pub max_namespaces: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(45),
            max_attachments: 10,
            binary: true,
            max_packet: 1_000_000,
            attachment_timeout: Duration::from_secs(10),
            max_connect: 16 * 1024,
            max_namespaces: 16,
        }
    }
}

/// What the server above is told when a connection opens: its engine
/// session and the head of the request that opened it.
pub type OnOpen = Box<dyn Fn(&Arc<EioSocket>, &RequestHead) + Send + Sync>;

/// A Socket.IO server: the engine's handler.
pub struct Io {
    config: Config,
    namespaces: HashMap<Arc<str>, Served>,
    /// Namespaces served by name pattern (`io.of(/^\/tenant-\w+$/)`), in
    /// the order they were given; an exact name wins over them.
    patterns: Vec<(Matcher, Served)>,
    on_open: Option<OnOpen>,
}

/// A namespace's handler and its rooms.
type Served = (Arc<dyn Namespace>, Arc<SocketRooms>);

/// Whether a namespace name is one of a pattern's.
type Matcher = Box<dyn Fn(&str) -> bool + Send + Sync>;

impl Io {
    /// A server with no namespace yet.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            namespaces: HashMap::new(),
            patterns: Vec::new(),
            on_open: None,
        }
    }

    /// Tells `on_open` of every connection that opens (its sid, its
    /// transport, the request's head), before the client is answered.
    pub fn on_open(
        mut self,
        on_open: impl Fn(&Arc<EioSocket>, &RequestHead) + Send + Sync + 'static,
    ) -> Self {
        self.on_open = Some(Box::new(on_open));
        self
    }

    /// Serves `namespace` (`/` is the main one) with `handler`, in rooms
    /// of its own.
    pub fn namespace(self, namespace: &str, handler: impl Namespace) -> Self {
        self.namespace_in(namespace, handler, Arc::new(Rooms::new()))
    }

    /// Serves `namespace` with `handler`, in `rooms`, which other
    /// namespaces may share (their room names must then tell them apart).
    pub fn namespace_in(
        mut self,
        namespace: &str,
        handler: impl Namespace,
        rooms: Arc<SocketRooms>,
    ) -> Self {
        let handler: Arc<dyn Namespace> = Arc::new(handler);
        self.namespaces.insert(namespace.into(), (handler, rooms));
        self
    }

    /// Serves every namespace whose name `matches` (and that has no
    /// handler of its own) with `handler`, in `rooms`: each is a namespace
    /// of its own to its clients, with its own name in every packet.
    pub fn namespaces_matching(
        mut self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        handler: impl Namespace,
        rooms: Arc<SocketRooms>,
    ) -> Self {
        let handler: Arc<dyn Namespace> = Arc::new(handler);
        self.patterns.push((Box::new(matches), (handler, rooms)));
        self
    }

    /// The rooms of `namespace`, for server-side broadcasts.
    pub fn rooms(&self, namespace: &str) -> Option<&Arc<SocketRooms>> {
        self.served(namespace).map(|(_, rooms)| rooms)
    }

    /// The handler and rooms of `namespace`, with its name as stored
    /// (shared by its sockets) when it has a handler of its own.
    fn served(&self, namespace: &str) -> Option<&Served> {
        match self.namespaces.get(namespace) {
            Some(served) => Some(served),
            None => self
                .patterns
                .iter()
                .find(|(matches, _)| matches(namespace))
                .map(|(_, served)| served),
        }
    }

    fn handler(&self, namespace: &str) -> Option<&Arc<dyn Namespace>> {
        self.served(namespace).map(|(handler, _)| handler)
    }

    fn dispatch(&self, eio: &Arc<EioSocket>, packet: Packet) {
        match packet.kind {
            Kind::Connect => {
                let auth = packet.data.map_or(OwnedAuth::None, OwnedAuth::Payload);
                self.connect(eio, packet.namespace, auth)
            }
            Kind::Disconnect => {
                if let Some(socket) = take_socket(eio, &packet.namespace) {
                    self.left(&socket, DisconnectReason::ClientDisconnect);
                }
                // A transport with no namespace left is closed: it would be
                // outside every limit and deadline.
                if lock(&eio.data.sockets).is_empty() {
                    eio.close();
                }
            }
            Kind::Event | Kind::BinaryEvent => self.event(eio, packet, None),
            // Acks of the server's own events: none are asked for yet.
            Kind::Ack | Kind::BinaryAck => {}
            Kind::ConnectError => eio.close_for(CloseReason::ProtocolError),
        }
    }

    fn connect(&self, eio: &Arc<EioSocket>, namespace: String, auth: OwnedAuth) {
        let Some((handler, rooms)) = self.served(&namespace).cloned() else {
            let error = json!({ "message": "Invalid namespace" });
            send(
                eio,
                Kind::ConnectError,
                &namespace,
                None,
                Some(error.into()),
            );
            return;
        };
        let name = match self.namespaces.get_key_value(namespace.as_str()) {
            Some((name, _)) => name.clone(),
            None => Arc::from(namespace.as_str()),
        };
        let socket = Arc::new(SioSocket {
            id: std::sync::OnceLock::new(),
            eio: eio.clone(),
            namespace: name,
            rooms,
            joined: Mutex::default(),
            data: std::sync::OnceLock::new(),
            early: Mutex::new(Some(Box::default())),
        });
        // One CONNECT per namespace at a time: a second one while the first
        // is decided, or once it is joined, is a client that is not
        // following the protocol (one body once carried 500, each a
        // handshake).
        let mut sockets = lock(&eio.data.sockets);
        if sockets.len() >= self.config.max_namespaces
            || sockets.iter().any(|s| s.namespace() == namespace)
        {
            drop(sockets);
            eio.close_for(CloseReason::ProtocolError);
            return;
        }
        crate::rooms::push_first_exact(&mut sockets, socket.clone());
        drop(sockets);
        // Every CONNECT is decided on the opening request's head (its
        // address, its headers), kept until every namespace is joined.
        let request = lock(&eio.data.request)
            .clone()
            .unwrap_or_else(|| Arc::new(http::Request::new(()).into_parts().0));
        // With patterns, there is no knowing which namespace comes next:
        // the head is kept for the connection's life.
        let every = match self.patterns.is_empty() {
            true => self.namespaces.len(),
            false => usize::MAX,
        };
        tokio::spawn(async move {
            let verdict = handler.connect(&socket, auth.borrow(), &request).await;
            drop(request);
            let eio = &socket.eio;
            if verdict.is_err() || eio.is_closed() {
                // The client may try again on the same connection.
                lock(&eio.data.sockets).retain(|s| !Arc::ptr_eq(s, &socket));
                socket.leave_all();
            }
            match verdict {
                Ok(()) if eio.is_closed() => {}
                Ok(()) => {
                    // Joined: the connect timeout no longer applies.
                    eio.close_at(None);
                    if lock(&eio.data.sockets).len() == every {
                        lock(&eio.data.request).take();
                    }
                    socket.connected_now();
                    handler.connected(&socket, auth.borrow());
                }
                Err(e) if e.close_transport => eio.close(),
                Err(e) => eio.send_text(connect_error(socket.namespace(), &e)),
            }
        });
    }

    /// An event whose head `admitted` the namespace already, or not yet.
    fn event(&self, eio: &Arc<EioSocket>, packet: Packet, admitted: Option<Option<Ack>>) {
        let Some(socket) = find_joined(eio, &packet.namespace) else {
            return;
        };
        let Some(handler) = self.handler(&packet.namespace) else {
            return;
        };
        let Some(Value::Array(mut args)) = packet.data else {
            return;
        };
        if args.is_empty() {
            return;
        }
        let Value::String(name) = args.remove(0) else {
            return;
        };
        let ack = match admitted {
            Some(ack) => ack,
            None => {
                let ack = packet.id.map(|id| Ack {
                    socket: socket.clone(),
                    id,
                });
                match handler.admit(&socket, &name, ack) {
                    Admission::Handle(ack) => ack,
                    Admission::Drop => return,
                }
            }
        };
        handler.event(&socket, name, args, ack);
    }

    /// A text EVENT: its head first, its arguments only if the namespace
    /// admits it.
    fn text_event(&self, eio: &Arc<EioSocket>, text: &str) {
        let head = match sio::peek_event(text) {
            Ok(head) => head,
            Err(_) => return eio.close_for(CloseReason::ProtocolError),
        };
        let Some(socket) = find_joined(eio, head.namespace) else {
            return;
        };
        let Some(handler) = self.handler(head.namespace) else {
            return;
        };
        let ack = head.id.map(|id| Ack {
            socket: socket.clone(),
            id,
        });
        let ack = match handler.admit(&socket, &head.name, ack) {
            Admission::Handle(ack) => ack,
            Admission::Drop => return,
        };
        match sio::decode(text, 0) {
            Ok(Decoded::Complete(packet)) => self.event(eio, packet, Some(ack)),
            _ => eio.close_for(CloseReason::ProtocolError),
        }
    }

    fn left(&self, socket: &Arc<SioSocket>, reason: DisconnectReason) {
        socket.leave_all();
        if let Some(handler) = self.handler(socket.namespace()) {
            handler.disconnect(socket, reason);
        }
    }

    /// A text message: what a connection that has joined no namespace may
    /// send is a CONNECT and nothing else, and a CONNECT is small.
    fn text(&self, eio: &Arc<EioSocket>, text: String) {
        let kind = text.as_bytes().first().copied();
        if kind == Some(b'0') && text.len() > self.config.max_connect {
            return eio.close_for(CloseReason::TooLarge);
        }
        if matches!(kind, Some(b'5' | b'6')) && !self.config.binary {
            return eio.close_for(CloseReason::Unsupported);
        }
        if kind != Some(b'0') && !has_joined(eio) {
            return eio.close_for(CloseReason::ProtocolError);
        }
        if kind == Some(b'2') {
            return self.text_event(eio, &text);
        }
        match sio::decode(&text, self.config.max_attachments) {
            Ok(Decoded::Complete(packet)) => self.dispatch(eio, packet),
            Ok(Decoded::Partial(partial)) => self.wait_for_attachments(eio, partial, text.len()),
            Err(_) => match lenient_connect(&text) {
                // A CONNECT whose payload is not a JSON object: the
                // namespace refuses it in its own words (a Node.js server
                // hands it on the same way); any other broken packet
                // closes the connection.
                Some((namespace, auth)) => self.connect(eio, namespace, auth),
                None => eio.close_for(CloseReason::ProtocolError),
            },
        }
    }

    /// A binary packet's text arrived: its attachments follow, under one
    /// bound with it in bytes, and in time.
    fn wait_for_attachments(&self, eio: &Arc<EioSocket>, partial: Partial, bytes: usize) {
        let deadline = eio.deadline();
        let due = tokio::time::Instant::now() + self.config.attachment_timeout;
        eio.close_at(Some(deadline.map_or(due, |d| d.min(due))));
        let pending = Pending {
            partial,
            bytes,
            deadline,
        };
        *lock(&eio.data.partial) = Some(Box::new(pending));
    }

    /// A binary message: the next attachment of the packet waiting.
    fn binary(&self, eio: &Arc<EioSocket>, data: Bytes) {
        if !self.config.binary {
            return eio.close_for(CloseReason::Unsupported);
        }
        // An attachment nobody announced.
        let Some(mut pending) = lock(&eio.data.partial).take() else {
            return eio.close_for(CloseReason::ProtocolError);
        };
        pending.bytes += data.len();
        if pending.bytes > self.config.max_packet {
            return eio.close_for(CloseReason::TooLarge);
        }
        match pending.partial.push(data) {
            Ok(Decoded::Complete(packet)) => {
                eio.close_at(pending.deadline);
                self.dispatch(eio, packet);
            }
            Ok(Decoded::Partial(partial)) => {
                pending.partial = partial;
                *lock(&eio.data.partial) = Some(pending);
            }
            Err(_) => eio.close_for(CloseReason::ProtocolError),
        }
    }
}

impl Handler for Io {
    type Data = Conn;

    fn open(&self, eio: &Arc<EioSocket>, request: RequestHead) {
        if let Some(on_open) = &self.on_open {
            on_open(eio, &request);
        }
        *lock(&eio.data.request) = Some(Arc::new(request));
        // The transport's timer closes it if no namespace is joined in
        // time: no task or timer of its own per connection (one cost about
        // 380 bytes of every idle connection, by heap profile).
        eio.close_at(Some(
            tokio::time::Instant::now() + self.config.connect_timeout,
        ));
    }

    fn message(&self, eio: &Arc<EioSocket>, message: Message) {
        if eio.must_close().is_some() {
            // Closing already: what else the client sent is not read.
            return;
        }
        let waiting = lock(&eio.data.partial).is_some();
        match message {
            // Text while attachments are due.
            Message::Text(_) if waiting => eio.close_for(CloseReason::ProtocolError),
            Message::Text(text) => self.text(eio, text),
            Message::Binary(data) => self.binary(eio, data),
        }
    }

    /// A connection that has joined no namespace may send a CONNECT and
    /// nothing else: small, whole messages.
    fn intake(&self, eio: &Arc<EioSocket>) -> Intake {
        if has_joined(eio) {
            Intake::Open
        } else {
            Intake::Guarded(self.config.max_connect)
        }
    }

    fn close(&self, eio: &Arc<EioSocket>, reason: CloseReason) {
        let sockets = std::mem::take(&mut *lock(&eio.data.sockets));
        for socket in sockets {
            if socket.is_joined() {
                self.left(&socket, DisconnectReason::Closed(reason));
            } else {
                // Its CONNECT is still being decided: it never joined.
                socket.leave_all();
            }
        }
    }
}

fn send(eio: &EioSocket, kind: Kind, namespace: &str, id: Option<u64>, data: Option<Value>) {
    if let Some(encoded) = encode(kind, namespace, id, data) {
        write(eio, &Frames::from(encoded));
    }
}

/// Queues a packet's text and attachments on the connection.
fn write(eio: &EioSocket, frames: &Frames) {
    eio.send(frames.text().clone());
    for attachment in frames.attachments() {
        eio.send_binary(attachment.clone());
    }
}

/// A CONNECT the strict decoder refused for its payload: its namespace
/// and what the payload is.
fn lenient_connect(text: &str) -> Option<(String, OwnedAuth)> {
    let rest = text.strip_prefix('0')?;
    let (namespace, payload) = match rest.strip_prefix('/') {
        Some(_) => match rest.split_once(',') {
            Some((namespace, payload)) => (namespace, payload),
            None => (rest, ""),
        },
        None => (sio::MAIN_NAMESPACE, rest),
    };
    let auth = match payload {
        "" => OwnedAuth::None,
        payload => match serde_json::from_str::<serde_json::Value>(payload) {
            Ok(value) => OwnedAuth::Payload(value.into()),
            Err(_) => OwnedAuth::Invalid,
        },
    };
    Some((namespace.to_owned(), auth))
}

/// The text of a CONNECT_ERROR: `message` first, then `data`, in the
/// order a Node.js server writes them (clients that match the frame's
/// text, not only its JSON, see the same).
fn connect_error(namespace: &str, e: &ConnectError) -> String {
    let prefix = match namespace {
        sio::MAIN_NAMESPACE => String::new(),
        other => format!("{other},"),
    };
    let message = serde_json::to_string(&e.message).expect("strings serialize");
    match &e.data {
        Some(data) => format!("4{prefix}{{\"message\":{message},\"data\":{data}}}"),
        None => format!("4{prefix}{{\"message\":{message}}}"),
    }
}

/// The socket of `namespace` on the connection, once its client was told
/// it is connected.
fn find_joined(eio: &EioSocket, namespace: &str) -> Option<Arc<SioSocket>> {
    let sockets = lock(&eio.data.sockets);
    sockets
        .iter()
        .find(|s| s.namespace() == namespace && s.is_joined())
        .cloned()
}

/// Whether the connection has joined a namespace.
fn has_joined(eio: &EioSocket) -> bool {
    lock(&eio.data.sockets).iter().any(|s| s.is_joined())
}

fn take_socket(eio: &EioSocket, namespace: &str) -> Option<Arc<SioSocket>> {
    let mut sockets = lock(&eio.data.sockets);
    let at = sockets
        .iter()
        .position(|s| s.namespace() == namespace && s.is_joined())?;
    Some(sockets.swap_remove(at))
}

fn random_id() -> [u8; 20] {
    use rand::Rng;
    let mut id = [0u8; 20];
    for (b, c) in id
        .iter_mut()
        .zip(rand::rng().sample_iter(rand::distr::Alphanumeric))
    {
        *b = c;
    }
    id
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
