//! One Socket.IO client connection over a raw WebSocket.
//!
//! Kept small on purpose, so one process can hold 100k of them: a
//! connection is a TCP stream plus a tungstenite state machine with a 4 KiB
//! read buffer and no write buffering, driven by the one task that owns it.
//! No channels, no background tasks.
//!
//! With `--compress` the connection offers permessage-deflate, as browsers
//! do, and runs on yawc (tungstenite has no compression). Every byte
//! either way crosses a [`Counted`] stream: the scenarios report what went
//! over the wire.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::protocol::{self, Inbound};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Client {
    /// The server's address.
    pub addr: SocketAddr,
    /// Source addresses used in turn (127.0.0.1, 127.0.0.2, ... for a
    /// loopback target); empty = let the kernel choose.
    pub sources: Vec<IpAddr>,
    /// Limit for TCP connect + WebSocket upgrade + CONNECT reply.
    pub handshake_timeout: Duration,
    /// Frame buffer sizes and limits.
    pub ws_config: WebSocketConfig,
    /// Offer permessage-deflate (yawc instead of tungstenite).
    pub compress: bool,
    /// The bytes its connections moved (shared with the peers of a run).
    pub wire: Arc<Wire>,
    url: String,
}

/// Bytes read from and written to the sockets of a client's connections.
#[derive(Debug, Default)]
pub struct Wire {
    received: AtomicU64,
    sent: AtomicU64,
}

impl Wire {
    /// `(received, sent)` so far, WebSocket framing and handshakes included.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        )
    }
}

/// A TCP stream that counts its bytes into its [`Wire`].
pub struct Counted(TcpStream, Arc<Wire>);

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.1.received.fetch_add(read as u64, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.0).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.1.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The WebSocket of a connection. Unboxed both: a run holds one kind, and
/// a box would add an allocation per connection to either.
#[allow(clippy::large_enum_variant)]
enum Ws {
    Plain(WebSocketStream<Counted>),
    Deflate(yawc::WebSocket<Counted>),
}

/// A frame read, as the scenarios see it.
enum Incoming {
    Text(String),
    Binary,
    Close,
    Other,
}

impl Ws {
    async fn open(client: &Client, stream: TcpStream) -> Result<Self, ConnError> {
        let stream = Counted(stream, client.wire.clone());
        if client.compress {
            let url = client
                .url
                .parse()
                .map_err(|e| ConnError::Upgrade(format!("{e}")))?;
            let options = yawc::Options::default()
                .with_low_latency_compression()
                .with_read_buffer_capacity(4 * 1024)
                .with_write_buffer_capacity(1024)
                .with_max_payload_read(1 << 20);
            let ws = yawc::WebSocket::handshake(url, stream, options)
                .await
                .map_err(|e| match e {
                    yawc::WebSocketError::InvalidStatusCode(code) => {
                        ConnError::Upgrade(format!("HTTP {code}"))
                    }
                    other => ConnError::Upgrade(other.to_string()),
                })?;
            return Ok(Ws::Deflate(ws));
        }
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            client.url.as_str(),
            stream,
            Some(client.ws_config),
        )
        .await
        .map_err(|e| match e {
            tungstenite::Error::Http(resp) => ConnError::Upgrade(format!("HTTP {}", resp.status())),
            other => ConnError::Upgrade(other.to_string()),
        })?;
        Ok(Ws::Plain(ws))
    }

    async fn feed(&mut self, text: String) -> Result<(), ConnError> {
        match self {
            Ws::Plain(ws) => ws
                .feed(Message::text(text))
                .await
                .map_err(|e| ws_error(e, "send")),
            Ws::Deflate(ws) => ws
                .feed(yawc::Frame::text(text))
                .await
                .map_err(|e| ConnError::Io(e.to_string())),
        }
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        match self {
            Ws::Plain(ws) => ws.flush().await.map_err(|e| ws_error(e, "send")),
            Ws::Deflate(ws) => ws.flush().await.map_err(|e| ConnError::Io(e.to_string())),
        }
    }

    /// The next frame; `None` when the stream ended (yawc ends it on a
    /// read error too).
    async fn next(&mut self, phase: &'static str) -> Option<Result<Incoming, ConnError>> {
        match self {
            Ws::Plain(ws) => Some(match ws.next().await? {
                Ok(Message::Text(text)) => Ok(Incoming::Text(text.to_string())),
                Ok(Message::Binary(_)) => Ok(Incoming::Binary),
                Ok(Message::Close(_)) => Ok(Incoming::Close),
                Ok(_) => Ok(Incoming::Other),
                Err(e) => Err(ws_error(e, phase)),
            }),
            Ws::Deflate(ws) => {
                let frame = ws.next().await?;
                Some(Ok(match frame.opcode() {
                    yawc::OpCode::Text => Incoming::Text(frame.as_str().to_owned()),
                    yawc::OpCode::Binary => Incoming::Binary,
                    yawc::OpCode::Close => Incoming::Close,
                    _ => Incoming::Other,
                }))
            }
        }
    }

    async fn close(&mut self) {
        match self {
            Ws::Plain(ws) => {
                let _ = ws.close(None).await;
            }
            Ws::Deflate(ws) => {
                let _ = ws.close().await;
            }
        }
    }
}

/// The tungstenite settings of a lean connection.
pub fn lean_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

impl Client {
    /// `url` is `http://host:port` (also `ws://`, or a bare `host:port`).
    /// With a loopback IPv4 target, connections are spread over `sources`
    /// source addresses 127.0.0.1 ... 127.0.0.N, each of which has its own
    /// ~28k ephemeral ports.
    pub fn new(url: &str, sources: u8) -> Result<Self, String> {
        let host = url
            .trim_start_matches("http://")
            .trim_start_matches("ws://")
            .trim_end_matches('/');
        if host.contains('/') || url.starts_with("https://") || url.starts_with("wss://") {
            return Err(format!(
                "{url}: give http://host:port (plain, no path; the Socket.IO path is /socket.io/)"
            ));
        }
        let mut addrs: Vec<SocketAddr> = host
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .collect();
        addrs.sort_by_key(|a| !a.is_ipv4());
        let addr = *addrs.first().ok_or_else(|| format!("{url}: no address"))?;
        let sources = match addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => (1..=sources.max(1))
                .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            addr,
            sources,
            handshake_timeout: Duration::from_secs(10),
            ws_config: lean_ws_config(),
            compress: false,
            wire: Arc::default(),
            url: format!("ws://{addr}{}", protocol::WS_PATH),
        })
    }

    /// `http://addr`, for the admin API.
    pub fn http_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn tcp(&self, n: usize) -> Result<TcpStream, ConnError> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| ConnError::Io(format!("socket: {}", e.kind())))?;
        if !self.sources.is_empty() {
            let src = self.sources[n % self.sources.len()];
            socket
                .set_reuseaddr(true)
                .map_err(|e| ConnError::Io(format!("SO_REUSEADDR: {}", e.kind())))?;
            socket
                .bind(SocketAddr::new(src, 0))
                .map_err(|e| ConnError::Bind(e.kind().to_string()))?;
        }
        let stream = socket
            .connect(self.addr)
            .await
            .map_err(|e| ConnError::Tcp(e.kind().to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// Why a connection failed or ended. [`ConnError::label`] is what the
/// tables count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnError {
    /// The server refused the CONNECT (`44{"message":"CODE: sentence"}`).
    Refused {
        /// The refusal code: the text before the first `:` (e.g.
        /// `TOKEN_INVALID`).
        code: String,
        /// The whole refusal message.
        message: String,
    },
    /// Binding the source address failed (ports of that address exhausted).
    Bind(String),
    /// The TCP connect failed.
    Tcp(String),
    /// The WebSocket upgrade failed.
    Upgrade(String),
    /// No answer in time, in this phase.
    Timeout(&'static str),
    /// The server closed the connection, in this phase.
    Closed(&'static str),
    /// A frame that is not valid Engine.IO / Socket.IO, or not expected here.
    Protocol(String),
    /// A socket read or write error.
    Io(String),
}

impl ConnError {
    /// The key this error is counted under: the refusal code, or a short
    /// transport error class.
    pub fn label(&self) -> String {
        match self {
            Self::Refused { code, .. } => code.clone(),
            Self::Bind(e) => format!("ERR_BIND: {e}"),
            Self::Tcp(e) => format!("ERR_TCP_CONNECT: {e}"),
            Self::Upgrade(e) => format!("ERR_WS_UPGRADE: {e}"),
            Self::Timeout(phase) => format!("ERR_TIMEOUT: {phase}"),
            Self::Closed(phase) => format!("ERR_CLOSED: {phase}"),
            Self::Protocol(e) => format!("ERR_PROTOCOL: {e}"),
            Self::Io(e) => format!("ERR_IO: {e}"),
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { message, .. } => write!(f, "refused: {message}"),
            other => f.write_str(&other.label()),
        }
    }
}

fn ws_error(e: tungstenite::Error, phase: &'static str) -> ConnError {
    use tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => ConnError::Closed(phase),
        E::Io(e) => ConnError::Io(e.kind().to_string()),
        E::Protocol(p) => ConnError::Protocol(p.to_string()),
        other => ConnError::Io(other.to_string()),
    }
}

/// An open, authenticated Socket.IO connection.
pub struct Conn {
    ws: Ws,
    /// The Socket.IO session id the server gave.
    pub sid: String,
    /// Engine.IO pings answered so far.
    pub pongs: u64,
}

impl Conn {
    /// Connects as connection number `n` (which picks the source address)
    /// with the CONNECT auth payload `auth`. Returns the outcome and the
    /// time from the start of the TCP connect to the CONNECT reply (`40` or
    /// `44`), or to the failure.
    pub async fn open(
        client: &Client,
        n: usize,
        auth: &Value,
    ) -> (Result<Conn, ConnError>, Duration) {
        let (result, elapsed, _) = Self::open_traced(client, n, auth).await;
        (result, elapsed)
    }

    /// [`Conn::open`], also telling whether the Engine.IO open packet had
    /// arrived (the transport was up) when the handshake ended. That is the
    /// moment socket.io-client's manager counts a reconnection as done and
    /// resets its backoff, even if the CONNECT is then refused or lost.
    pub async fn open_traced(
        client: &Client,
        n: usize,
        auth: &Value,
    ) -> (Result<Conn, ConnError>, Duration, bool) {
        let started = Instant::now();
        let mut opened = false;
        let result = match tokio::time::timeout(
            client.handshake_timeout,
            Self::handshake(client, n, auth, &mut opened),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ConnError::Timeout("handshake")),
        };
        (result, started.elapsed(), opened)
    }

    async fn handshake(
        client: &Client,
        n: usize,
        auth: &Value,
        opened: &mut bool,
    ) -> Result<Conn, ConnError> {
        let stream = client.tcp(n).await?;
        let ws = Ws::open(client, stream).await?;
        let mut conn = Conn {
            ws,
            sid: String::new(),
            pongs: 0,
        };
        match conn.recv_in("open").await? {
            Inbound::Open { .. } => *opened = true,
            other => return Err(ConnError::Protocol(format!("expected open, got {other:?}"))),
        }
        conn.send(protocol::connect(auth)).await?;
        match conn.recv_in("connect").await? {
            Inbound::Connect { sid } => {
                conn.sid = sid;
                Ok(conn)
            }
            Inbound::ConnectError { message } => Err(ConnError::Refused {
                code: protocol::error_code(&message).to_owned(),
                message,
            }),
            other => Err(ConnError::Protocol(format!(
                "expected a CONNECT reply, got {other:?}"
            ))),
        }
    }

    /// Sends one text frame and flushes it.
    pub async fn send(&mut self, frame: String) -> Result<(), ConnError> {
        self.feed(frame).await?;
        self.flush().await
    }

    /// Queues a frame without flushing (pipelining); call [`Conn::flush`].
    pub async fn feed(&mut self, frame: String) -> Result<(), ConnError> {
        self.ws.feed(frame).await
    }

    /// Flushes the frames queued by [`Conn::feed`].
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        self.ws.flush().await
    }

    /// The next Socket.IO packet. Engine.IO pings are answered on the way.
    /// Cancel-safe between frames, so it can sit in a `select!`.
    pub async fn recv(&mut self) -> Result<Inbound, ConnError> {
        self.recv_in("session").await
    }

    async fn recv_in(&mut self, phase: &'static str) -> Result<Inbound, ConnError> {
        loop {
            let msg = match self.ws.next(phase).await {
                None => return Err(ConnError::Closed(phase)),
                Some(Err(e)) => return Err(e),
                Some(Ok(m)) => m,
            };
            match msg {
                Incoming::Text(text) => {
                    match protocol::parse(&text).map_err(|e| ConnError::Protocol(e.0))? {
                        Inbound::Ping => {
                            self.send(protocol::PONG.to_owned()).await?;
                            self.pongs += 1;
                        }
                        Inbound::Noop => {}
                        Inbound::Close => return Err(ConnError::Closed(phase)),
                        other => return Ok(other),
                    }
                }
                Incoming::Close => return Err(ConnError::Closed(phase)),
                Incoming::Binary => {
                    return Err(ConnError::Protocol("unexpected binary frame".into()));
                }
                // WebSocket-level ping/pong: tungstenite answers pings itself.
                _ => {}
            }
        }
    }

    /// Stays connected (answering pings, ignoring events) until `until`
    /// completes. `Err` when the connection ends first.
    pub async fn idle_until(&mut self, until: impl Future<Output = ()>) -> Result<(), ConnError> {
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return Ok(()),
                packet = self.recv() => match packet? {
                    Inbound::Disconnect => return Err(ConnError::Closed("idle (socket.io disconnect)")),
                    _ => continue,
                },
            }
        }
    }

    /// Closes politely (WebSocket close frame), without waiting long.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close()).await;
    }
}
