//! HTTP long-polling: `GET` waits for the outbox, `POST` delivers packets.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::{Body, CloseReason, Engine, Handler, Message, Refusal, Socket, Transport, text};
use crate::eio::{self, Packet};

/// A long-polling answer carrying `packets`.
pub(super) fn answer(packets: &[Packet]) -> Response<Body> {
    // Texts holding the separator cannot be framed; such a message ends the
    // session at the sender's side (the layer above never produces one).
    let body = eio::encode_payload(packets).unwrap_or_else(|_| "1".to_owned());
    text(StatusCode::OK, "text/plain; charset=UTF-8", body)
}

/// A request naming a long-polling session.
pub(super) async fn serve<H, B>(
    engine: &Arc<Engine<H>>,
    socket: &Arc<Socket<H::Data>>,
    req: Request<B>,
) -> Response<Body>
where
    H: Handler,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Once upgraded, the session's HTTP requests are ignored.
    if socket.transport() != Transport::Polling {
        return Refusal::BadRequest.response();
    }
    match *req.method() {
        Method::GET => poll(engine, socket).await,
        Method::POST => post(engine, socket, req).await,
        _ => Refusal::BadRequest.response(),
    }
}

/// Frees the `GET` slot however the request ends (a client that gives up
/// drops it mid-wait).
struct Polling<'a, D>(&'a Socket<D>);

impl<D> Drop for Polling<'_, D> {
    fn drop(&mut self) {
        self.0.end_poll();
    }
}

async fn poll<H: Handler>(
    engine: &Arc<Engine<H>>,
    socket: &Arc<Socket<H::Data>>,
) -> Response<Body> {
    if !socket.begin_poll() {
        // Two polls at once: the client is confused or it is not the client.
        engine.close(socket, CloseReason::ProtocolError);
        return Refusal::BadRequest.response();
    }
    let _slot = Polling(socket);
    loop {
        let woken = socket.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        // Upgraded: what waits goes out on the WebSocket, in order.
        if socket.transport() != Transport::Polling {
            return answer(&[Packet::Noop]);
        }
        if let Some(reason) = socket.must_close() {
            // Ended here; this poll still takes what waits (a reason for
            // the client, say) and the next one the close.
            engine.end(socket, reason);
        }
        let mut packets = socket.drain();
        if !packets.is_empty() {
            if socket.closes_after_poll() {
                engine.forget(socket);
            }
            return answer(packets.make_contiguous());
        }
        if socket.is_probed() {
            return answer(&[Packet::Noop]);
        }
        if socket.is_closed() {
            engine.forget(socket);
            return answer(&[Packet::Close]);
        }
        woken.await;
    }
}

async fn post<H, B>(
    engine: &Arc<Engine<H>>,
    socket: &Arc<Socket<H::Data>>,
    req: Request<B>,
) -> Response<Body>
where
    H: Handler,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let max = engine.config.max_payload;
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            engine.close(socket, CloseReason::ProtocolError);
            return text(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", Bytes::new());
        }
    };
    let packets = match eio::decode_payload(&body, max) {
        Ok(packets) => packets,
        Err(_) => {
            engine.close(socket, CloseReason::ProtocolError);
            return Refusal::BadRequest.response();
        }
    };
    for packet in packets {
        if !deliver(engine, socket, packet) {
            return Refusal::BadRequest.response();
        }
    }
    text(StatusCode::OK, "text/html", "ok")
}

/// Applies one packet a client posted; false when it broke the protocol
/// (the session is then closed).
fn deliver<H: Handler>(
    engine: &Arc<Engine<H>>,
    socket: &Arc<Socket<H::Data>>,
    packet: Packet,
) -> bool {
    match packet {
        Packet::Message(text) => engine.handler.message(socket, Message::Text(text)),
        Packet::Binary(data) => engine.handler.message(socket, Message::Binary(data)),
        Packet::Pong => socket.ponged(),
        Packet::Close => {
            // The session ends now; the poll ends cleanly, with a noop: the
            // one waiting now, or the next one (which may race this
            // request), and the session is forgotten with it.
            socket.client_closed();
            engine.end(socket, CloseReason::ClientClose);
        }
        _ => {
            engine.close(socket, CloseReason::ProtocolError);
            return false;
        }
    }
    true
}

/// The heartbeat of a long-polling session, until it closes or upgrades
/// (the WebSocket's task then runs it).
///
/// Deadlines count from the session's opening, not from when this task
/// first runs: a client timing its own pings sees the server's on time.
pub(super) async fn heartbeat<H: Handler>(
    engine: Arc<Engine<H>>,
    socket: Arc<Socket<H::Data>>,
    opened: tokio::time::Instant,
) {
    let config = engine.config.clone();
    let mut ping_at = opened + config.ping_interval;
    loop {
        idle(&socket, ping_at).await;
        let now = tokio::time::Instant::now();
        if socket.deadline().is_some_and(|d| d <= now) {
            socket.close();
        }
        if let Some(reason) = socket.must_close() {
            // The next poll still takes what waits, then the close.
            engine.end(&socket, reason);
            return;
        }
        if socket.is_closed() || socket.transport() != Transport::Polling {
            return;
        }
        if now < ping_at {
            // The deadline moved away meanwhile.
            continue;
        }
        socket.pinged();
        socket.push(Packet::Ping);
        let _ = tokio::time::timeout_at(ping_at + config.ping_timeout, pong_of(&socket)).await;
        if let Some(reason) = socket.must_close() {
            // The next poll still takes what waits, then the close.
            engine.end(&socket, reason);
            return;
        }
        if socket.is_closed() || socket.transport() != Transport::Polling {
            return;
        }
        if socket.awaiting_pong() {
            engine.close(&socket, CloseReason::PingTimeout);
            return;
        }
        ping_at = tokio::time::Instant::now() + config.ping_interval;
    }
}

/// Waits until `until` (or the session's deadline, if earlier), or less
/// when the session must end or has upgraded.
async fn idle<D>(socket: &Socket<D>, until: tokio::time::Instant) {
    loop {
        let woken = socket.pong.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let until = socket.deadline().map_or(until, |d| d.min(until));
        let ends = socket.is_closed()
            || socket.must_close().is_some()
            || socket.transport() != Transport::Polling;
        if ends || tokio::time::timeout_at(until, woken).await.is_err() {
            return;
        }
    }
}

/// Resolves once the last ping is answered, or the session is closed or
/// upgraded.
async fn pong_of<D>(socket: &Socket<D>) {
    loop {
        let ponged = socket.pong.notified();
        tokio::pin!(ponged);
        ponged.as_mut().enable();
        let done = !socket.awaiting_pong()
            || socket.is_closed()
            || socket.must_close().is_some()
            || socket.transport() != Transport::Polling;
        if done {
            return;
        }
        ponged.await;
    }
}
