//! Closing one client's transport, so that the official client reconnects
//! by itself.
//!
//! A retryable end or refusal ([`ErrorCode::class`](sockgate_auth::ErrorCode::class))
//! must leave the client coming back with its own backoff. socket.io-client
//! does that after a closed transport, never after a Socket.IO disconnect or
//! a CONNECT error. socketioxide 0.18 closes a transport only with a
//! Socket.IO disconnect, or all of them at once, so until sockgate serves
//! Socket.IO itself this module closes one from below:
//!
//! - **WebSocket.** Every accepted TCP stream is a [`Closable`], and its
//!   [`Closer`] rides in the extensions of every request on it. Closing
//!   shuts the stream's write side (the client sees the WebSocket close:
//!   `transport close`) and ends its reads (the engine sees the transport
//!   gone and drops the socket). A session that opened with long-polling and
//!   upgraded is found through the upgrade request, which [`follow`] notes.
//! - **Long-polling.** The session's polls are answered with an Engine.IO
//!   close packet: for an end, from the poll after the one that carried
//!   `session:end` (socket.io-client hands an event to the app a tick after
//!   it reads it, so a close in the same answer would overtake it); for a
//!   refusal, at once, instead of the CONNECT error.

pub mod openings;

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use futures_util::task::AtomicWaker;
use socketioxide::TransportType;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tower_http::add_extension::AddExtension;

/// The Engine.IO close packet, and the separator of packets in a poll answer.
const CLOSE_PACKET: &[u8] = b"1";
const SEPARATOR: u8 = 0x1e;
/// Largest poll answer rewritten; socketioxide's own answers are bounded by
/// `max_payload`, so this only guards against surprises.
const MAX_POLL_ANSWER: usize = 16 << 20;
/// A marked polling session that never polled again is forgotten after this.
const MARK_TTL: Duration = Duration::from_secs(60);
/// How long a refusal waits for its WebSocket to be shut down before the
/// CONNECT error may be written.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(500);
/// How long a refusal waits for an upgrade in progress to finish.
const UPGRADE_WAIT: Duration = Duration::from_secs(1);

/// Asks one TCP connection to close; shared by the connection and whoever
/// may close it.
#[derive(Debug, Default)]
pub struct Closer {
    requested: AtomicBool,
    reader: AtomicWaker,
    done: Notify,
}

impl Closer {
    /// Requests the close; the connection acts on it at once, in its reader.
    pub fn close(&self) {
        self.requested.store(true, Ordering::Release);
        self.reader.wake();
    }

    /// Resolves once the connection's write side is shut.
    async fn closed(&self) {
        self.done.notified().await;
    }
}

/// A stream that a [`Closer`] can close from outside.
#[derive(Debug)]
pub struct Closable<S> {
    inner: S,
    closer: Arc<Closer>,
    shut: bool,
}

impl<S: AsyncWrite + Unpin> Closable<S> {
    /// Polls the close request; true once the stream is shut.
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.shut {
            return Poll::Ready(true);
        }
        self.closer.reader.register(cx.waker());
        if !self.closer.requested.load(Ordering::Acquire) {
            return Poll::Ready(false);
        }
        // A failed shutdown means the peer is gone already: closed either way.
        let _ = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        self.shut = true;
        self.closer.done.notify_one();
        Poll::Ready(true)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Closable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if ready!(self.poll_closed(cx)) {
            return Poll::Ready(Ok(())); // end of stream
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Closable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.shut {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shut {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shut {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accepts TCP connections as [`Closable`] streams, with `TCP_NODELAY`, and
/// puts each one's [`Closer`] into the extensions of its requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClosableAcceptor;

impl<S> Accept<TcpStream, S> for ClosableAcceptor {
    type Stream = Closable<TcpStream>;
    type Service = AddExtension<S, Arc<Closer>>;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        // TCP_NODELAY: a real-time server writes small frames back to back
        // (`session:end` then the close); with Nagle on, the second waits for
        // the client's delayed ACK, 40 ms on Linux.
        let accepted = stream.set_nodelay(true).map(|()| {
            let closer = Arc::new(Closer::default());
            let stream = Closable {
                inner: stream,
                closer: closer.clone(),
                shut: false,
            };
            (stream, AddExtension::new(service, closer))
        });
        std::future::ready(accepted)
    }
}

/// Where a marked long-polling session is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollClose {
    /// Ending: its polls pass until one carries `session:end`.
    Ending,
    /// Every poll, pending or new, is answered with the close packet alone.
    Closing,
}

/// How `session:end` starts in a poll answer: a Socket.IO EVENT (`42`) of
/// the main namespace.
const SESSION_END: &[u8] = b"42[\"session:end\"";

/// The transports sockgate may have to close.
#[derive(Debug, Default)]
pub struct Transports {
    /// The WebSocket each upgraded long-polling session moved to.
    upgraded: Mutex<HashMap<Sid, Weak<Closer>>>,
    /// Long-polling sessions on their way out, and since when.
    polling: Mutex<HashMap<Sid, (PollClose, Instant)>>,
}

impl Transports {
    /// Ends a session's transport once `session:end` is on its way: call
    /// [`Transports::prepare_end`] before emitting it and this after.
    pub fn close<A: Adapter>(&self, s: &SocketRef<A>) {
        if let Some(closer) = self.websocket_of(s) {
            closer.close();
        }
    }

    /// Readies a long-polling session for its end: the poll after the one
    /// that carries `session:end` is answered with the close packet.
    pub fn prepare_end<A: Adapter>(&self, s: &SocketRef<A>) {
        if s.transport_type() == TransportType::Polling {
            self.mark(s.id, PollClose::Ending);
        }
    }

    /// Closes the transport of a socket whose handshake is refused, so the
    /// client retries instead of reading the CONNECT error; returns once the
    /// error can no longer reach it.
    ///
    /// A long-polling session may be upgrading right now. Its probe
    /// WebSocket is not closed: a client that has already paused its polling
    /// for the upgrade would be left with no transport at all until its ping
    /// timeout. The refusal waits for the upgrade instead and closes the new
    /// WebSocket; meanwhile the polls answer the close packet, and an upgrade
    /// that has not begun is turned away (see [`follow`]).
    pub async fn refuse<A: Adapter>(&self, s: &SocketRef<A>) {
        if s.transport_type() == TransportType::Polling {
            self.mark(s.id, PollClose::Closing);
            if lock(&self.upgraded).contains_key(&s.id) {
                let deadline = Instant::now() + UPGRADE_WAIT;
                while s.transport_type() == TransportType::Polling && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        if let Some(closer) = self.websocket_of(s) {
            closer.close();
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, closer.closed()).await;
        }
    }

    /// Forgets what was noted about a session that is gone.
    pub fn forget(&self, sid: Sid) {
        lock(&self.upgraded).remove(&sid);
        lock(&self.polling).remove(&sid);
    }

    /// Drops notes about connections and sessions that went away unnoticed.
    pub fn shrink(&self) {
        lock(&self.upgraded).retain(|_, closer| closer.strong_count() > 0);
        lock(&self.polling).retain(|_, (_, at)| at.elapsed() < MARK_TTL);
    }

    fn websocket_of<A: Adapter>(&self, s: &SocketRef<A>) -> Option<Arc<Closer>> {
        if s.transport_type() != TransportType::Websocket {
            return None;
        }
        let upgraded = lock(&self.upgraded).get(&s.id).and_then(Weak::upgrade);
        upgraded.or_else(|| s.req_parts().extensions.get::<Arc<Closer>>().cloned())
    }

    fn mark(&self, sid: Sid, how: PollClose) {
        lock(&self.polling).insert(sid, (how, Instant::now()));
    }

    fn poll_close(&self, sid: Sid) -> Option<PollClose> {
        lock(&self.polling).get(&sid).map(|(how, _)| *how)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Middleware on the Socket.IO path: notes WebSocket upgrades, and answers
/// the polls of marked sessions.
pub async fn follow(State(t): State<Arc<Transports>>, req: Request, next: Next) -> Response {
    let Some((sid, transport)) = session_of(req.uri()) else {
        return next.run(req).await;
    };
    if transport == "websocket" {
        if t.poll_close(sid) == Some(PollClose::Closing) {
            // A refused or ended session does not move to a new transport.
            return StatusCode::BAD_REQUEST.into_response();
        }
        if let Some(closer) = req.extensions().get::<Arc<Closer>>() {
            lock(&t.upgraded).insert(sid, Arc::downgrade(closer));
        }
        return next.run(req).await;
    }
    if req.method() != axum::http::Method::GET {
        return next.run(req).await;
    }
    if t.poll_close(sid) == Some(PollClose::Closing) {
        lock(&t.polling).remove(&sid);
        return close_answer();
    }
    let answer = next.run(req).await;
    match t.poll_close(sid) {
        Some(PollClose::Closing) => {
            lock(&t.polling).remove(&sid);
            close_answer()
        }
        Some(PollClose::Ending) if answer.status() == StatusCode::OK => {
            let (parts, body) = answer.into_parts();
            let body = axum::body::to_bytes(body, MAX_POLL_ANSWER)
                .await
                .unwrap_or_default();
            if carries_session_end(&body) {
                t.mark(sid, PollClose::Closing);
            }
            Response::from_parts(parts, Body::from(body))
        }
        _ => answer,
    }
}

/// An Engine.IO poll answer holding just the close packet.
fn close_answer() -> Response {
    let mut answer = Response::new(Body::from(CLOSE_PACKET));
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    answer
}

fn carries_session_end(payload: &[u8]) -> bool {
    payload
        .split(|b| *b == SEPARATOR)
        .any(|packet| packet.starts_with(SESSION_END))
}

/// The session id and transport named by an Engine.IO request's query.
fn session_of(uri: &Uri) -> Option<(Sid, &str)> {
    let mut sid = None;
    let mut transport = None;
    for pair in uri.query()?.split('&') {
        match pair.split_once('=') {
            Some(("sid", v)) => sid = v.parse::<Sid>().ok(),
            Some(("transport", v)) => transport = Some(v),
            _ => {}
        }
    }
    Some((sid?, transport?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_closed_stream_shuts_its_write_side_and_ends_its_reads() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let (mut server, _) = ClosableAcceptor.accept(accepted, ()).await.unwrap();
        let closer = server.closer.clone();

        client.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        server.read_exact(&mut buf).await.unwrap();
        // A read in flight is woken by the close.
        let reader = tokio::spawn(async move {
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.map(|_| rest)
        });
        tokio::task::yield_now().await;
        closer.close();
        assert_eq!(reader.await.unwrap().unwrap(), b"");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the client reads the end of the stream");
    }

    #[test]
    fn the_session_and_transport_come_from_the_query() {
        let sid = Sid::new();
        let uri: Uri = format!("/socket.io/?EIO=4&transport=polling&sid={sid}&t=x")
            .parse()
            .unwrap();
        assert_eq!(session_of(&uri), Some((sid, "polling")));
        let open: Uri = "/socket.io/?EIO=4&transport=polling".parse().unwrap();
        assert_eq!(session_of(&open), None);
    }

    #[test]
    fn the_answer_that_carries_session_end_is_recognised() {
        assert!(carries_session_end(
            b"42[\"session:end\",{\"code\":\"KICKED\"}]"
        ));
        assert!(carries_session_end(b"2\x1e42[\"session:end\",{}]"));
        assert!(!carries_session_end(
            b"42[\"room:message\",[\"session:end\"]]"
        ));
        assert!(!carries_session_end(b"2"));
    }
}
