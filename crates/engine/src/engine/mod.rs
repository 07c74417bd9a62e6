//! The Engine.IO v4 server: sessions over HTTP long-polling and WebSocket,
//! the upgrade from one to the other, and the heartbeat.
//!
//! [`Engine::handle`] takes every request of the engine's path. A session
//! is an [`Socket`] with an outbox; whichever transport serves it drains
//! the outbox: a pending long-polling `GET`, or the WebSocket's task.
//!
//! Tasks: a WebSocket session is one task, which reads frames, writes the
//! outbox and runs the heartbeat. A long-polling session has one task for
//! its heartbeat; its reads and writes are the requests' own. An upgrade
//! hands the heartbeat from the first to the second.
//!
//! Bounds: a request body or a message over `max_payload` ends the
//! session, and so does a body of more than `max_payload_packets` packets,
//! a body slower than `body_timeout`, or a fragmented WebSocket message
//! slower than `fragment_timeout`; an outbox over `max_buffered` packets
//! or `max_buffered_bytes` bytes ends it too (a consumer that does not
//! read must not hold the server's memory), and so does a WebSocket write
//! that the client does not take within `ping_timeout`.

mod polling;
mod query;
mod socket;
mod websocket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;

pub use query::{Query, QueryError};
pub use socket::{CloseReason, Message, Outgoing, Sid, Socket, Transport};

/// The engine's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often the server pings.
    pub ping_interval: Duration,
    /// How long a ping may wait for its pong.
    pub ping_timeout: Duration,
    /// Largest request body or frame accepted, in bytes.
    pub max_payload: usize,
    /// Most packets waiting in a session's outbox before it is closed.
    pub max_buffered: usize,
    /// Most bytes waiting in a session's outbox before it is closed.
    pub max_buffered_bytes: usize,
    /// Most packets one long-polling request body may carry.
    pub max_payload_packets: usize,
    /// Longest a long-polling request body may take to arrive.
    pub body_timeout: Duration,
    /// Longest the fragments of one WebSocket message may take to arrive.
    pub fragment_timeout: Duration,
    /// Read buffer of a WebSocket, in bytes: grows for a larger frame and
    /// is kept small while idle.
    pub ws_read_buffer: usize,
    /// permessage-deflate (RFC 7692) for WebSockets whose client offers
    /// it; `None` never negotiates it.
    pub ws_compression: Option<Compression>,
}

/// How WebSocket messages are compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// Messages smaller than this many bytes go uncompressed.
    pub threshold: usize,
    /// Keep each side's compression context from one message to the next
    /// (better ratios on similar messages). Off, both sides start every
    /// message afresh and the contexts are borrowed from a pool shared by
    /// every connection only while a message is compressed; on, a
    /// connection keeps its contexts (about 149 KiB, measured) once it used
    /// them.
    pub context_takeover: bool,
}

impl Default for Compression {
    fn default() -> Self {
        Self {
            threshold: 1024,
            context_takeover: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            max_buffered: 1024,
            max_buffered_bytes: 4 << 20,
            max_payload_packets: 256,
            body_timeout: Duration::from_secs(10),
            fragment_timeout: Duration::from_secs(10),
            ws_read_buffer: 256,
            ws_compression: None,
        }
    }
}

/// What the layer above (Socket.IO, or an application) does with sessions.
pub trait Handler: Send + Sync + 'static {
    /// The state it keeps with each session.
    type Data: Default + Send + Sync + 'static;
    /// A session opened, on `request` (its head: the body, if any, is
    /// the engine's). The engine keeps nothing of it.
    fn open(&self, socket: &Arc<Socket<Self::Data>>, request: http::request::Parts);
    /// A message arrived on a session.
    fn message(&self, socket: &Arc<Socket<Self::Data>>, message: Message);
    /// What the layer above takes from a session now. A session it has not
    /// admitted yet (a Socket.IO connection that has joined no namespace)
    /// may be held to small, whole messages: the engine then refuses a
    /// larger one (`CloseReason::TooLarge`) and any fragmented one
    /// (`CloseReason::ProtocolError`) before putting it together.
    fn intake(&self, _socket: &Arc<Socket<Self::Data>>) -> Intake {
        Intake::Open
    }
    /// A session closed (once, for any reason).
    fn close(&self, socket: &Arc<Socket<Self::Data>>, reason: CloseReason);
}

/// What the layer above takes from a session (see [`Handler::intake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// Messages up to `max_payload`, fragmented or not.
    Open,
    /// Whole messages of at most this many bytes.
    Guarded(usize),
}

/// How long an ended long-polling session still answers its next poll.
const LINGER: Duration = Duration::from_secs(5);

/// The response body of every engine answer.
pub type Body = Full<Bytes>;

/// An Engine.IO server.
pub struct Engine<H: Handler> {
    config: Config,
    /// The WebSocket settings, from `config`.
    ws: yawc::Options,
    handler: H,
    sessions: Mutex<HashMap<Sid, Arc<Socket<H::Data>>>>,
}

/// The error codes of an Engine.IO HTTP refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    UnknownTransport = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    UnsupportedVersion = 5,
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Refusal::UnknownTransport => "Transport unknown",
            Refusal::UnknownSid => "Session ID unknown",
            Refusal::BadHandshakeMethod => "Bad handshake method",
            Refusal::BadRequest => "Bad request",
            Refusal::UnsupportedVersion => "Unsupported protocol version",
        }
    }

    fn response(self) -> Response<Body> {
        let body = format!(
            r#"{{"code":{},"message":"{}"}}"#,
            self as u8,
            self.message()
        );
        Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    }
}

impl<H: Handler> Engine<H> {
    /// An engine with `config`, handing sessions to `handler`.
    pub fn new(config: Config, handler: H) -> Arc<Self> {
        Arc::new(Self {
            ws: websocket::options(&config),
            config,
            handler,
            sessions: Mutex::default(),
        })
    }

    /// The engine's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The layer above.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Closes every session (at shutdown): each transport ends at once.
    pub fn close_all(&self) {
        let sessions: Vec<_> = self.lock().values().cloned().collect();
        for socket in sessions {
            socket.close();
        }
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers one request of the engine's path.
    pub async fn handle<B>(self: &Arc<Self>, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Ok(q) = Query::parse(req.uri()) else {
            return Refusal::BadRequest.response();
        };
        if q.eio != Some("4") {
            return Refusal::UnsupportedVersion.response();
        }
        let transport = match q.transport {
            Some("polling") => Transport::Polling,
            Some("websocket") => Transport::WebSocket,
            _ => return Refusal::UnknownTransport.response(),
        };
        // RFC 6455 opens a WebSocket with a GET, and only a GET.
        if transport == Transport::WebSocket && req.method() != Method::GET {
            return Refusal::BadHandshakeMethod.response();
        }
        let sid = q.session();
        match (transport, sid) {
            (Transport::Polling, None) if req.method() == Method::GET => {
                self.open_polling(req.into_parts().0)
            }
            (Transport::Polling, None) => Refusal::BadHandshakeMethod.response(),
            (Transport::WebSocket, None) => websocket::open(self.clone(), req, None),
            (_, Some(None)) => Refusal::UnknownSid.response(),
            (transport, Some(Some(sid))) => {
                let Some(socket) = self.get(&sid) else {
                    return Refusal::UnknownSid.response();
                };
                match transport {
                    Transport::Polling => polling::serve(self, &socket, req).await,
                    Transport::WebSocket => websocket::open(self.clone(), req, Some(socket)),
                }
            }
        }
    }

    fn open_polling(self: &Arc<Self>, request: http::request::Parts) -> Response<Body> {
        let socket = self.register(Transport::Polling);
        let open = socket.open_packet(&self.config, true);
        let opened = tokio::time::Instant::now();
        tokio::spawn(polling::heartbeat(self.clone(), socket.clone(), opened));
        self.handler.open(&socket, request);
        polling::answer_one(open)
    }

    /// A new session on `transport`, registered.
    fn register(&self, transport: Transport) -> Arc<Socket<H::Data>> {
        let socket = Arc::new(Socket::new(transport, &self.config));
        self.lock().insert(socket.sid(), socket.clone());
        socket
    }

    fn get(&self, sid: &Sid) -> Option<Arc<Socket<H::Data>>> {
        self.lock().get(sid).cloned()
    }

    /// Closes a session: it leaves the registry, its transport is told,
    /// and the handler hears it once.
    pub(crate) fn close(&self, socket: &Arc<Socket<H::Data>>, reason: CloseReason) {
        self.finish(socket, reason);
        self.forget(socket);
    }

    /// Marks the session closed and tells the handler; true the first time.
    fn finish(&self, socket: &Arc<Socket<H::Data>>, reason: CloseReason) -> bool {
        let first = socket.mark_closed();
        if first {
            self.handler.close(socket, reason);
        }
        first
    }

    /// Ends a session (the handler hears it once) but keeps it in the
    /// registry, so that a long-polling client's next poll still gets the
    /// last packets, or the close; it is forgotten then, or after a short
    /// while.
    pub(crate) fn end(self: &Arc<Self>, socket: &Arc<Socket<H::Data>>, reason: CloseReason) {
        if self.finish(socket, reason) {
            let (engine, socket) = (self.clone(), socket.clone());
            tokio::spawn(async move {
                tokio::time::sleep(LINGER).await;
                engine.forget(&socket);
            });
        }
    }

    /// Takes a session out of the registry.
    pub(crate) fn forget(&self, socket: &Socket<H::Data>) {
        self.lock().remove(&socket.sid());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, Arc<Socket<H::Data>>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A plain text response.
fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("a valid response")
}
