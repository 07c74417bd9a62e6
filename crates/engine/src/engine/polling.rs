//! HTTP long-polling: `GET` waits for the outbox, `POST` delivers packets.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{
    Body, CloseReason, Engine, Handler, Message, Outgoing, Refusal, Socket, Transport, text,
};
use crate::eio::{self, Packet, SEPARATOR};

/// A long-polling answer carrying `packets`, in their wire form.
pub(super) fn answer<'a>(packets: impl IntoIterator<Item = &'a Outgoing>) -> Response<Body> {
    text(
        StatusCode::OK,
        "text/plain; charset=UTF-8",
        payload(packets),
    )
}

/// A long-polling answer carrying one packet of the engine's own.
pub(super) fn answer_one(packet: Packet) -> Response<Body> {
    answer([&Outgoing::packet(packet)])
}

/// The packets joined by the record separator, binary in base64.
fn payload<'a>(packets: impl IntoIterator<Item = &'a Outgoing>) -> Bytes {
    use base64::Engine as _;
    let mut body = Vec::new();
    for (index, packet) in packets.into_iter().enumerate() {
        if index > 0 {
            body.push(SEPARATOR as u8);
        }
        match packet {
            // A text holding the separator cannot be framed: such a message
            // ends the session at the sender's side (the layer above never
            // produces one).
            Outgoing::Text(text) if text.contains(&(SEPARATOR as u8)) => {
                return Bytes::from_static(b"1");
            }
            Outgoing::Text(text) => body.extend_from_slice(text),
            Outgoing::Binary(data) => {
                body.push(b'b');
                let encoded = base64::engine::general_purpose::STANDARD.encode(data);
                body.extend_from_slice(encoded.as_bytes());
            }
        }
    }
    body.into()
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
            return answer_one(Packet::Noop);
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
            return answer(packets.make_contiguous().iter());
        }
        if socket.is_probed() {
            return answer_one(Packet::Noop);
        }
        if socket.is_closed() {
            engine.forget(socket);
            return answer_one(Packet::Close);
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
    if !socket.begin_post() {
        // Two bodies at once: the client is confused or it is not the client.
        engine.close(socket, CloseReason::ProtocolError);
        return Refusal::BadRequest.response();
    }
    let _slot = Posting(socket);
    let config = &engine.config;
    let collect = Limited::new(req.into_body(), config.max_payload).collect();
    let body = match tokio::time::timeout(config.body_timeout, collect).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            engine.close(socket, CloseReason::TooLarge);
            return text(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", Bytes::new());
        }
        // The body failed or came too slowly (here, or in a layer below
        // that bounds it in time).
        Ok(Err(_)) | Err(_) => {
            engine.close(socket, CloseReason::TransportError);
            return text(StatusCode::REQUEST_TIMEOUT, "text/plain", Bytes::new());
        }
    };
    // Counted before decoding: each packet may cost the layer above a
    // handshake, so a body of tens of thousands must not get that far.
    let packets = body.iter().filter(|&&b| b == SEPARATOR as u8).count() + 1;
    if packets > config.max_payload_packets {
        engine.close(socket, CloseReason::ProtocolError);
        return Refusal::BadRequest.response();
    }
    let packets = match eio::decode_payload(&body, config.max_payload) {
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

/// Frees the `POST` slot however the request ends.
struct Posting<'a, D>(&'a Socket<D>);

impl<D> Drop for Posting<'_, D> {
    fn drop(&mut self) {
        self.0.end_post();
    }
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
    // The layer above refused what it was given: the rest of the body is
    // not read, and the client learns it from this request.
    match socket.must_close() {
        Some(reason) if reason.is_violation() => {
            engine.close(socket, reason);
            false
        }
        _ => true,
    }
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
