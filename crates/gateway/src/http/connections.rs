//! The TCP connections of the main listener, under every request.
//!
//! A connection costs a file descriptor before it has sent a byte, so what
//! bounds connections must act before any request is read:
//!
//! - **caps, at accept**: at most `SOCKGATE_MAX_TCP_CONNECTIONS` open at
//!   once (by default a little under the process's open-file limit, so that
//!   the listener, Redis, SQLite and outbound calls always find a
//!   descriptor), and at most `SOCKGATE_MAX_TCP_CONNECTIONS_PER_ADDRESS`
//!   from one client address (an IPv6 client per /64; a trusted proxy, which
//!   carries many users, is not held to it). A connection over a cap is
//!   closed at once, before anything is read from it;
//! - **timeouts, while no request is in flight**: a request head must
//!   arrive whole within `SOCKGATE_HEADER_TIMEOUT` (counted from the accept
//!   for the first request, from its first byte for the next ones), and a
//!   keep-alive connection may wait `SOCKGATE_KEEPALIVE_TIMEOUT` for its
//!   next request. A request in flight (a long-poll held open, a stream of
//!   events) is never cut by them, and a connection upgraded to a WebSocket
//!   leaves them for the engine's own ping and timeouts;
//! - **a deadline on every request body**: it must arrive whole within
//!   `SOCKGATE_BODY_TIMEOUT`, or its reader gets an error;
//! - **HTTP/1.1 only** unless `SOCKGATE_HTTP2` is on: a connection that
//!   opens with the HTTP/2 preface is closed without an answer.
//!
//! [`Connections`] is the acceptor (axum-server's [`Accept`]) that does the
//! first three; [`Http1Only`] wraps any acceptor (the TLS one too) for the
//! fourth.

use std::collections::HashMap;
use std::future::{Future, Ready};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Request, Response, StatusCode};
use axum_server::accept::Accept;
use http_body::{Frame, SizeHint};
use sockgate_core::limits::budget_key;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::config::{ConnectionSettings, TrustedProxies};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Descriptors kept out of the default connection cap, for the process's
/// own: the listeners, Redis, SQLite, JWKS and webhook calls, log files,
/// and the one an over-the-cap connection holds until it is closed.
const RESERVED_FDS: usize = 128;

/// How often a refusal at a cap is logged, at most.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The default cap on open connections: the open-file limit less 128
/// descriptors kept for the process's own (half of a limit too small for
/// that). No cap where no limit can be read.
pub fn default_max_total() -> usize {
    match open_file_limit() {
        Some(limit) => limit.saturating_sub(RESERVED_FDS).max(limit / 2).max(1),
        None => usize::MAX,
    }
}

/// The process's open-file limit (the soft one, which applies), if known.
pub fn open_file_limit() -> Option<usize> {
    let (soft, _hard) = rlimit::Resource::NOFILE.get().ok()?;
    Some(usize::try_from(soft).unwrap_or(usize::MAX))
}

/// Raises the open-file limit to the most the process may have (the hard
/// limit): every connection holds a descriptor, and a soft limit of 1,024
/// (a common default) would cap the gateway far below what it can hold.
/// Returns the limit now in force.
pub fn raise_open_file_limit() -> Option<usize> {
    let raised = rlimit::increase_nofile_limit(u64::MAX).ok()?;
    Some(usize::try_from(raised).unwrap_or(usize::MAX))
}

/// The acceptor of the main listener: caps and timeouts (see the module
/// documentation). Cloned into every connection's task.
#[derive(Clone)]
pub struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    max_total: usize,
    max_per_address: Option<usize>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    body_timeout: Duration,
    proxies: TrustedProxies,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    warned: Mutex<HashMap<Cap, Instant>>,
}

/// The cap a connection was refused at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Cap {
    Total,
    Address,
}

impl Connections {
    /// An acceptor with `settings`, at most `max_total` connections open
    /// at once; peers in `proxies` are not held to the per-address cap.
    pub fn new(settings: &ConnectionSettings, max_total: usize, proxies: TrustedProxies) -> Self {
        Self {
            shared: Arc::new(Shared {
                max_total,
                max_per_address: settings.max_per_address,
                header_timeout: settings.header_timeout,
                keepalive_timeout: settings.keepalive_timeout,
                body_timeout: settings.body_timeout,
                proxies,
                open: AtomicUsize::new(0),
                per_address: Mutex::default(),
                warned: Mutex::default(),
            }),
        }
    }

    /// The cap on connections open at once.
    pub fn max_total(&self) -> usize {
        self.shared.max_total
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }

    /// A place for a connection from `peer`, or the cap it is over.
    fn admit(&self, peer: IpAddr) -> Result<Slot, Cap> {
        let shared = &self.shared;
        let taken = shared
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < shared.max_total).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(Cap::Total);
        }
        // From here the slot gives its places back when dropped.
        let mut slot = Slot {
            shared: shared.clone(),
            address: None,
        };
        if let Some(max) = shared.max_per_address
            && !shared.proxies.trusts(peer)
        {
            let key = budget_key(peer);
            let mut counts = lock(&shared.per_address);
            let count = counts.entry(key).or_insert(0);
            if *count >= max {
                return Err(Cap::Address);
            }
            *count += 1;
            slot.address = Some(key);
        }
        Ok(slot)
    }

    fn refused(&self, peer: IpAddr, cap: Cap) {
        let shared = &self.shared;
        {
            let mut warned = lock(&shared.warned);
            if warned.get(&cap).is_some_and(|at| at.elapsed() < WARN_EVERY) {
                return;
            }
            warned.insert(cap, Instant::now());
        }
        match cap {
            Cap::Total => tracing::warn!(
                target: "sockgate::connections",
                cap = shared.max_total,
                "TCP connection closed at accept: the gateway holds SOCKGATE_MAX_TCP_CONNECTIONS \
                 connections (logged once a minute at most)"
            ),
            Cap::Address => tracing::warn!(
                target: "sockgate::connections",
                remote = %peer,
                cap = shared.max_per_address.unwrap_or_default(),
                "TCP connection closed at accept: this address holds \
                 SOCKGATE_MAX_TCP_CONNECTIONS_PER_ADDRESS connections (logged once a minute at most)"
            ),
        }
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            header: self.shared.header_timeout,
            keepalive: self.shared.keepalive_timeout,
        }
    }
}

impl<S> Accept<TcpStream, S> for Connections {
    type Stream = Watched<TcpStream>;
    type Service = Tracked<S>;
    type Future = Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(self.take(stream, service))
    }
}

impl Connections {
    /// Admits a connection (or refuses it: dropping the stream closes it)
    /// and ties its stream and its service to one [`Activity`].
    fn take<S>(
        &self,
        stream: TcpStream,
        service: S,
    ) -> io::Result<(Watched<TcpStream>, Tracked<S>)> {
        let peer = stream.peer_addr()?.ip();
        let slot = self.admit(peer).map_err(|cap| {
            self.refused(peer, cap);
            io::Error::other("over a connection cap")
        })?;
        // Server pushes are small writes one after another: with Nagle's
        // algorithm on, each waits for the client's (delayed) ACK of the
        // one before. Measured with `sockgate-bench queue --send-rate 500`
        // (10 members): send-to-member p50 17.9 ms, p99 35 ms with it on;
        // see BENCHMARKS.md for the figures with it off.
        stream.set_nodelay(true)?;
        let activity = Arc::new(Activity::new());
        let watched = Watched {
            inner: stream,
            activity: activity.clone(),
            timeouts: self.timeouts(),
            timer: None,
            _slot: slot,
        };
        let tracked = Tracked {
            inner: service,
            activity,
            body_timeout: self.shared.body_timeout,
        };
        Ok((watched, tracked))
    }
}

/// A connection's places under the caps, given back when it closes.
struct Slot {
    shared: Arc<Shared>,
    address: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(key) = self.address {
            let mut counts = lock(&self.shared.per_address);
            if let Some(count) = counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a connection is doing: shared by its stream (which enforces the
/// timeouts) and its service (which sees requests begin and end).
struct Activity {
    /// Requests whose responses are not yet written whole.
    busy: AtomicUsize,
    /// Switched to another protocol (a WebSocket): HTTP timeouts are over.
    upgraded: AtomicBool,
    wait: Mutex<Wait>,
}

/// What an idle connection waits for, and since when.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Its first request, since the accept.
    First(Instant),
    /// Its next request, since the last one ended.
    Idle(Instant),
    /// The rest of a request head, since its first byte.
    Head(Instant),
}

#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    keepalive: Duration,
}

impl Activity {
    fn new() -> Self {
        Self {
            busy: AtomicUsize::new(0),
            upgraded: AtomicBool::new(false),
            wait: Mutex::new(Wait::First(Instant::now())),
        }
    }

    /// When the connection must have made progress, or `None` while a
    /// request is in flight or the connection is no longer HTTP.
    fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        if self.upgraded.load(Ordering::Acquire) || self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(match *lock(&self.wait) {
            Wait::First(at) | Wait::Head(at) => at + timeouts.header,
            Wait::Idle(at) => at + timeouts.keepalive,
        })
    }

    /// Bytes came in while idle: a request head has begun.
    fn head_began(&self) {
        let mut wait = lock(&self.wait);
        if let Wait::Idle(_) = *wait {
            *wait = Wait::Head(Instant::now());
        }
    }
}

/// A request in flight, until its response is written whole (or dropped).
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // Set before the count falls, so the stream never sees an idle
        // connection with a stale start.
        *lock(&self.0.wait) = Wait::Idle(Instant::now());
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's stream, which fails its reads once the connection has
/// waited too long for a request head (the header and keep-alive
/// timeouts), and holds its places under the caps.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    timer: Option<Pin<Box<Sleep>>>,
    _slot: Slot,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(deadline) = this.activity.deadline(this.timeouts) else {
            // No deadline while a request is in flight, and none ever again
            // once upgraded: the timer goes. Kept, the header timer of every
            // WebSocket cost 2.6 KiB of each idle connection (6.25 against
            // 3.67 KiB at 10,000, official client, release builds).
            this.timer = None;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        // What has arrived is taken even past the deadline: a server too
        // busy to read in time is not the client's fault.
        if let Poll::Ready(result) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            if buf.filled().len() > before {
                this.activity.head_began();
            }
            return Poll::Ready(result);
        }
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no request within the header or keep-alive timeout",
        )))
    }
}

/// Writes go straight to the inner stream: the wrappers below watch reads
/// only.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<S: AsyncWrite + Unpin> AsyncWrite for $wrapper<S> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().inner).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

write_through!(Watched);

/// A connection's service: marks its requests in flight until their
/// responses are written, notes an upgrade, and puts a deadline on every
/// request body.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

type Answer<E> = Pin<Box<dyn Future<Output = Result<Response<Held>, E>> + Send>>;

impl<S, B> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Held>;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let busy = Busy::new(self.activity.clone());
        let timeout = self.body_timeout;
        let req = req.map(|body| {
            if body.is_end_stream() {
                Body::new(body)
            } else {
                Body::new(Deadline::new(body, timeout))
            }
        });
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                busy.0.upgraded.store(true, Ordering::Release);
            }
            Ok(response.map(|body| Held {
                inner: body,
                _busy: busy,
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is written
/// whole (hyper drops it then) or the connection goes.
pub struct Held {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that must arrive whole by a deadline; past it, its
/// reader gets [`BodyTimeout`] (a long-polling post then closes its session,
/// an admin API call is refused).
struct Deadline<B> {
    inner: B,
    timer: Pin<Box<Sleep>>,
}

impl<B> Deadline<B> {
    fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// A request body that did not arrive within `SOCKGATE_BODY_TIMEOUT`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within SOCKGATE_BODY_TIMEOUT")]
pub struct BodyTimeout;

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(this.timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(BodyTimeout.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The first bytes of every HTTP/2 connection without TLS negotiation
/// ("prior knowledge", RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Wraps an acceptor (the plain one or the TLS one) so that, unless
/// HTTP/2 is on, a connection opening with the HTTP/2 preface is closed
/// unanswered. The HTTP server behind detects HTTP/2 by that preface
/// whatever it is told, and still serves WebSocket upgrades only on
/// connections it detected that way.
#[derive(Clone)]
pub struct Http1Only<A> {
    inner: A,
    http2: bool,
}

impl<A> Http1Only<A> {
    /// `inner`, with HTTP/2 refused unless `http2`.
    pub fn new(inner: A, http2: bool) -> Self {
        Self { inner, http2 }
    }
}

type Accepted<T, U> = Pin<Box<dyn Future<Output = io::Result<(T, U)>> + Send>>;

impl<A, I, S> Accept<I, S> for Http1Only<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Preface<A::Stream>;
    type Service = A::Service;
    type Future = Accepted<Self::Stream, Self::Service>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let checking = !self.http2;
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let stream = Preface {
                inner: stream,
                seen: 0,
                checking,
            };
            Ok((stream, service))
        })
    }
}

/// A stream that fails once its first bytes are the HTTP/2 preface.
pub struct Preface<S> {
    inner: S,
    /// How many bytes of the preface have been read so far.
    seen: usize,
    /// Still reading bytes that could be the preface.
    checking: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Preface<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if this.checking {
            for &byte in &buf.filled()[before..] {
                if HTTP2_PREFACE.get(this.seen) != Some(&byte) {
                    this.checking = false;
                    break;
                }
                this.seen += 1;
            }
            if this.seen == HTTP2_PREFACE.len() {
                // A failed read hands over no bytes.
                buf.set_filled(before);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "HTTP/2 is off (SOCKGATE_HTTP2)",
                )));
            }
        }
        Poll::Ready(Ok(()))
    }
}

write_through!(Preface);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn settings(per_address: Option<usize>) -> ConnectionSettings {
        ConnectionSettings {
            max_per_address: per_address,
            ..ConnectionSettings::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_caps_count_open_connections_and_give_places_back() {
        let proxies = TrustedProxies::parse("10.0.0.1").unwrap();
        let c = Connections::new(&settings(Some(2)), 4, proxies);
        let a1 = c.admit(ip("192.0.2.1")).unwrap();
        let _a2 = c.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(c.admit(ip("192.0.2.1")).err(), Some(Cap::Address));
        assert_eq!(c.open(), 2, "a refusal gives its place back");
        // One IPv6 client is one /64.
        let _b = c.admit(ip("2001:db8::1")).unwrap();
        let _proxy = c.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(c.admit(ip("192.0.2.9")).err(), Some(Cap::Total));
        drop(a1);
        assert_eq!(c.open(), 3);
        let _a3 = c.admit(ip("192.0.2.1")).unwrap();
        // A trusted proxy carries many users: only the total holds it.
        let c = Connections::new(
            &settings(Some(1)),
            10,
            TrustedProxies::parse("10.0.0.1").unwrap(),
        );
        let proxied: Vec<_> = (0..5).map(|_| c.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(proxied.len(), 5);
        let _v6 = c.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(c.admit(ip("2001:db8::2")).err(), Some(Cap::Address));
        drop(proxied);
        assert!(
            lock(&c.shared.per_address).len() == 1,
            "no count kept for nothing"
        );
        // No per-address cap at all.
        let c = Connections::new(&settings(None), 3, TrustedProxies::default());
        let all: Vec<_> = (0..3).map(|_| c.admit(ip("192.0.2.1")).unwrap()).collect();
        assert_eq!(c.admit(ip("192.0.2.1")).err(), Some(Cap::Total));
        drop(all);
        assert_eq!(c.open(), 0);
    }

    #[test]
    fn deadlines_apply_only_while_no_request_is_in_flight() {
        let t = Timeouts {
            header: Duration::from_secs(10),
            keepalive: Duration::from_secs(60),
        };
        let activity = Arc::new(Activity::new());
        let wait = |w| *lock(&activity.wait) = w;
        let t0 = Instant::now();
        wait(Wait::First(t0));
        assert_eq!(activity.deadline(t), Some(t0 + t.header), "first head");
        activity.head_began();
        assert_eq!(
            activity.deadline(t),
            Some(t0 + t.header),
            "the first head's time runs from the accept"
        );
        let busy = Busy::new(activity.clone());
        assert_eq!(activity.deadline(t), None, "a request in flight");
        drop(busy);
        assert!(matches!(*lock(&activity.wait), Wait::Idle(at) if at >= t0));
        wait(Wait::Idle(t0));
        assert_eq!(activity.deadline(t), Some(t0 + t.keepalive), "keep-alive");
        activity.head_began();
        let Wait::Head(began) = *lock(&activity.wait) else {
            panic!("bytes while idle begin a head");
        };
        assert_eq!(
            activity.deadline(t),
            Some(began + t.header),
            "the next head's time runs from its first byte"
        );
        activity.upgraded.store(true, Ordering::Release);
        assert_eq!(activity.deadline(t), None, "a WebSocket is no longer HTTP");
    }

    async fn read_through_preface(bytes: &'static [u8], checking: bool) -> io::Result<Vec<u8>> {
        let mut stream = Preface {
            inner: bytes,
            seen: 0,
            checking,
        };
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn the_http2_preface_is_refused_unless_http2_is_on() {
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
        let err = read_through_preface(h2, true).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(read_through_preface(h2, false).await.unwrap(), h2);
        let h1 = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(read_through_preface(h1, true).await.unwrap(), h1);
        // An HTTP/1 request may start like the preface and still be one.
        let near = b"PRI * HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(read_through_preface(near, true).await.unwrap(), near);
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_fails() {
        let never = Body::from_stream(futures_util::stream::pending::<Result<Bytes, io::Error>>());
        let late = Body::new(Deadline::new(never, Duration::from_millis(50)));
        let err = axum::body::to_bytes(late, 1024).await.unwrap_err();
        assert!(err.to_string().contains("SOCKGATE_BODY_TIMEOUT"), "{err}");
        let whole = Body::new(Deadline::new(Body::from("ok"), Duration::from_secs(30)));
        assert_eq!(axum::body::to_bytes(whole, 1024).await.unwrap(), "ok");
    }
}
