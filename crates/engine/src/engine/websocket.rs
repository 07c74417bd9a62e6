//! WebSocket: a session opened on one, or upgraded to one from
//! long-polling. One task per connection reads frames, writes the outbox
//! and runs the heartbeat.
//!
//! The framing, and permessage-deflate (RFC 7692) when the client offers
//! it and the engine has it on, are yawc's: tungstenite, used before,
//! refuses every frame with RSV1 set, which is how a compressed one is
//! marked.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use yawc::close::CloseCode;
use yawc::streaming::Streaming;
use yawc::{
    CompressionLevel, DeflatePool, Frame, HttpStream, OpCode, Options, UpgradeFut, WebSocket,
    WebSocketError,
};

use super::{
    Body, CloseReason, Config, Engine, Handler, Intake, Message, Outgoing, Refusal, Socket,
    Transport,
};
use crate::eio::{self, Packet};

/// A WebSocket during its setup (the open packet, the upgrade's probe).
type Ws = WebSocket<HttpStream>;

/// A WebSocket once set up: frames as they come, fragments included. The
/// engine puts a fragmented message together itself, so that it can bound
/// the time its fragments take: yawc checks its fragment timeout only when
/// the next fragment arrives, and one that never comes held a borrowed
/// inflate context and the fragments read (about 300 KiB a connection
/// over permessage-deflate) for as long as the connection lived.
type Wire = Streaming<HttpStream>;

/// Write buffer of a WebSocket, in bytes, as it is kept between writes
/// (yawc's default, 8 KiB, would be most of an idle connection). 256 held
/// 0.12 KiB more of every idle connection than 64, measured.
const WRITE_BUFFER: usize = 64;

/// Compression contexts kept for reuse, per window size: about as many as
/// messages compressed at the same moment (one per worker thread), not as
/// connections.
const POOLED_CONTEXTS: usize = 16;

/// Deflate level (1 to 9): the fastest. Deflate is miniz_oxide, flate2's
/// default. yawc's `zlib` feature (zlib-rs) took 35% less CPU per
/// compressed echo, but cost 0.26 KiB more of every idle connection,
/// compression on or off (3.87 → 4.13 KiB at 10k, official client).
const COMPRESSION_LEVEL: u32 = 1;

/// The WebSocket settings of `config`.
pub(super) fn options(config: &Config) -> Options {
    let base = Options::default()
        // yawc refuses a payload of this size or more.
        .with_max_payload_read(config.max_payload + 1)
        // A fragmented message is put together by the engine (see `Wire`),
        // under the same bound as a whole one.
        .with_max_read_buffer(config.max_payload + 1)
        .with_read_buffer_capacity(config.ws_read_buffer)
        .with_write_buffer_capacity(WRITE_BUFFER)
        .with_utf8();
    let Some(compression) = &config.ws_compression else {
        return base;
    };
    let base = base
        .with_low_latency_compression()
        .with_compression_level(CompressionLevel::new(COMPRESSION_LEVEL))
        .with_compression_threshold(compression.threshold);
    if compression.context_takeover {
        return base;
    }
    // Imposed on the client too, which RFC 7692 allows: its messages then
    // need no context kept between them either.
    base.server_no_context_takeover()
        .client_no_context_takeover()
        .with_deflate_pool(DeflatePool::new(POOLED_CONTEXTS))
}

/// Answers a WebSocket request: 101 and a task for the connection, or a
/// refusal. `existing` is the long-polling session it upgrades.
pub(super) fn open<H: Handler, B>(
    engine: Arc<Engine<H>>,
    mut req: Request<B>,
    existing: Option<Arc<Socket<H::Data>>>,
) -> Response<Body> {
    let upgrade_header = req
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok());
    if !upgrade_header.is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Refusal::BadRequest.response();
    }
    // The key, the version and the extensions offered are checked, and the
    // extensions agreed on written in the answer, by yawc.
    let Ok((answer, upgrade)) = WebSocket::upgrade_with_options(&mut req, engine.ws.clone()) else {
        return Refusal::BadRequest.response();
    };
    // A second WebSocket for a session that has one (or is probing one) is
    // accepted and closed at once: the session stays where it is.
    let refused = existing.as_ref().is_some_and(|s| !s.begin_upgrade());
    // Only the head goes on, to the handler of a new session; the engine
    // keeps nothing of it.
    let (head, _) = req.into_parts();
    tokio::spawn(setup(engine, upgrade, head, existing, refused));
    let (parts, _) = answer.into_parts();
    Response::from_parts(parts, Full::default())
}

/// Finishes the upgrade and hands the connection to its own task. This
/// task is short-lived: what only the setup needs (the request head, the
/// upgrade's future, the probe) is freed before the connection idles, and
/// the connection's task holds `drive`'s state alone.
async fn setup<H: Handler>(
    engine: Arc<Engine<H>>,
    upgrade: UpgradeFut,
    head: http::request::Parts,
    existing: Option<Arc<Socket<H::Data>>>,
    refused: bool,
) {
    let Ok(mut ws) = upgrade.await else {
        if let Some(socket) = existing.filter(|_| !refused) {
            socket.abort_upgrade();
        }
        return;
    };
    if refused {
        let _ = ws.close().await;
        return;
    }
    let socket = match existing {
        None => {
            let Some(socket) = fresh(&engine, &mut ws, head).await else {
                return;
            };
            socket
        }
        Some(socket) => {
            drop(head);
            if !upgrade_to(&engine, &socket, &mut ws).await {
                return;
            }
            socket
        }
    };
    tokio::spawn(drive(engine, socket, ws.into_streaming()));
}

/// A session opened on the WebSocket: registered, told its open packet,
/// and handed to the handler.
async fn fresh<H: Handler>(
    engine: &Arc<Engine<H>>,
    ws: &mut Ws,
    head: http::request::Parts,
) -> Option<Arc<Socket<H::Data>>> {
    let socket = engine.register(Transport::WebSocket);
    let open = socket.open_packet(&engine.config, false);
    if ws.send(frame(Outgoing::packet(open))).await.is_err() {
        engine.close(&socket, CloseReason::TransportError);
        return None;
    }
    engine.handler.open(&socket, head);
    Some(socket)
}

/// A long-polling session probing this WebSocket: `2probe` → `3probe`, a
/// noop to end the pending poll, then `5` hands the session over. True
/// once it has.
async fn upgrade_to<H: Handler>(engine: &Engine<H>, socket: &Socket<H::Data>, ws: &mut Ws) -> bool {
    let limit = engine.config.ping_interval + engine.config.ping_timeout;
    let probed = tokio::time::timeout(limit, probe(engine, socket, ws)).await;
    if !matches!(probed, Ok(true)) {
        socket.abort_upgrade();
        let _ = ws.close().await;
        return false;
    }
    socket.finish_upgrade();
    true
}

async fn probe<H: Handler>(engine: &Engine<H>, socket: &Socket<H::Data>, ws: &mut Ws) -> bool {
    let max = engine.config.max_payload;
    let mut probed = false;
    while let Some(incoming) = ws.next().await {
        if incoming.opcode() != OpCode::Text {
            continue;
        }
        let Ok(text) = std::str::from_utf8(incoming.payload()) else {
            return false;
        };
        match (eio::decode_text(text, max), probed) {
            (Ok(Packet::PingProbe), false) => {
                if ws
                    .send(frame(Outgoing::packet(Packet::PongProbe)))
                    .await
                    .is_err()
                {
                    return false;
                }
                socket.probe_done();
                probed = true;
            }
            (Ok(Packet::Upgrade), true) => return true,
            _ => return false,
        }
    }
    false
}

/// The heartbeat's next step.
enum Beat {
    /// Ping at the deadline.
    Ping,
    /// The ping went out; the deadline is its pong's.
    Pong,
}

/// What woke a connection's task.
enum Woke {
    /// A frame, or why there is none (closed, a read error).
    Frame(Result<Frame, WebSocketError>),
    /// Something was queued, or the session is to close.
    Outbox,
    /// The timer: the heartbeat's deadline, the session's, or a fragmented
    /// message's.
    Timer,
}

/// A fragmented message being put together. Boxed in the connection's
/// state: only the pointer is there while no message is fragmented.
struct Fragments {
    text: bool,
    data: BytesMut,
    /// When the connection closes unless the last fragment came.
    deadline: Instant,
}

/// How a connection's task ends.
enum Ending {
    /// The server closes it, saying why in its close frame.
    Close(CloseReason),
    /// The client sent its close frame (yawc answers it by itself).
    ClientClosed,
    /// yawc refused what it read and sent the close frame saying why.
    Refused(CloseReason),
}

/// Serves a session on its WebSocket until it closes: the connection's one
/// task for as long as it lives, so what it holds is what an idle
/// connection costs. It holds the stream whole (no split halves and their
/// shared lock) and one timer, reset rather than rebuilt.
///
/// A plain function returning an `async` block, not an `async fn`: an
/// `async fn` keeps its arguments twice in its state (as given, and moved
/// into its body), which for the stream alone is 328 bytes.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn drive<H: Handler>(
    engine: Arc<Engine<H>>,
    socket: Arc<Socket<H::Data>>,
    mut ws: Wire,
) -> impl Future<Output = ()> + Send {
    async move {
        let config = &engine.config;
        let mut beat = Beat::Ping;
        let mut beat_at = Instant::now() + config.ping_interval;
        let mut fragments: Option<Box<Fragments>> = None;
        // The one timer: the earliest of the heartbeat's next step, the
        // session's deadline (see `Socket::close_at`) and the fragmented
        // message's.
        let mut armed = earliest(beat_at, socket.deadline());
        let timer = tokio::time::sleep_until(armed);
        tokio::pin!(timer);
        let ending = loop {
            let woken = socket.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if socket.is_closed() {
                break Ending::Close(CloseReason::ServerClose);
            }
            if let Some(reason) = socket.must_close() {
                // What was queued before the close goes out first (a reason
                // for the client, say); not to a client that does not read.
                if reason != CloseReason::Backpressure {
                    let _ = Box::pin(tokio::time::timeout(
                        config.ping_timeout,
                        flush(&socket, &mut ws),
                    ))
                    .await;
                }
                break Ending::Close(reason);
            }
            // A client that takes no write for a pingTimeout does not read:
            // waiting on it would stall the heartbeat and the outbox's bound.
            // The write is boxed, as are this task's other rare awaits (the
            // last flush, the closing handshake): its future (a timer and a
            // frame in flight, 264 bytes) would otherwise be part of every
            // connection's state, idle or not; an allocation per write is
            // the cheaper side.
            // Checked first, and drained inside the boxed write: a drained
            // list held here would stay in this task's state (32 bytes more,
            // measured), for one lock saved per write.
            if socket.has_queued() {
                match Box::pin(tokio::time::timeout(
                    config.ping_timeout,
                    flush(&socket, &mut ws),
                ))
                .await
                {
                    Ok(Flushed::Done) => {}
                    Ok(Flushed::Failed) => break Ending::Close(CloseReason::TransportError),
                    Ok(Flushed::Overflowed) | Err(_) => {
                        break Ending::Close(CloseReason::Backpressure);
                    }
                }
            }
            let at = earliest(beat_at, socket.deadline());
            let at = fragments.as_ref().map_or(at, |f| f.deadline.min(at));
            if at != armed {
                timer.as_mut().reset(at);
                armed = at;
            }
            // Reading is cancel-safe: a frame half read stays in the stream's
            // buffer when the outbox or the timer wins.
            let woke = tokio::select! {
                incoming = std::future::poll_fn(|cx| ws.poll_next_frame(cx)) => Woke::Frame(incoming),
                () = &mut woken => Woke::Outbox,
                () = &mut timer => Woke::Timer,
            };
            match woke {
                Woke::Frame(Ok(frame)) => match read(&engine, &socket, &mut fragments, frame) {
                    Read::Go => {}
                    Read::Pong => {
                        beat = Beat::Ping;
                        beat_at = Instant::now() + config.ping_interval;
                    }
                    Read::End(reason) => break Ending::Close(reason),
                    Read::Closed => break Ending::ClientClosed,
                },
                Woke::Frame(Err(error)) => break refused(&error),
                Woke::Outbox => {}
                Woke::Timer => {
                    let now = Instant::now();
                    if socket.deadline().is_some_and(|d| d <= now) {
                        break Ending::Close(CloseReason::ServerClose);
                    }
                    if fragments.as_ref().is_some_and(|f| f.deadline <= now) {
                        break Ending::Close(CloseReason::ProtocolError);
                    }
                    if beat_at > now {
                        continue;
                    }
                    if let Beat::Pong = beat {
                        break Ending::Close(CloseReason::PingTimeout);
                    }
                    // Through the outbox: the next turn writes it, under the
                    // same write timeout as any packet.
                    socket.pinged();
                    socket.push(Packet::Ping);
                    beat = Beat::Pong;
                    beat_at = Instant::now() + config.ping_timeout;
                }
            }
        };
        drop(fragments);
        let reason = match ending {
            Ending::Close(reason) | Ending::Refused(reason) => reason,
            Ending::ClientClosed => CloseReason::TransportError,
        };
        engine.close(&socket, reason);
        let wait = config.ping_timeout.min(CLOSE_WAIT);
        let _ = Box::pin(tokio::time::timeout(wait, goodbye(&mut ws, ending))).await;
    }
}

/// The closing handshake: our close frame, then the client's (what it
/// still sends meanwhile is read and dropped). Dropping the connection
/// with the client's frames unread would make the kernel reset it, and a
/// reset can discard what the client had not read yet: the reason for the
/// close, say. Bounded by the caller: a client that does not read or answer
/// gets the connection dropped.
///
/// yawc answers a client's close frame by itself, even one that answers
/// ours, and sends its own when it refuses a frame: then nothing more is
/// sent, or a browser would see a second close ("Close received after
/// close", an error in its console).
async fn goodbye(ws: &mut Wire, ending: Ending) {
    let code = match ending {
        Ending::ClientClosed => {
            // Only yawc's answer is left to send: it goes out when the sink
            // is next made ready.
            let _ = std::future::poll_fn(|cx| ws.poll_ready_unpin(cx)).await;
            let _ = ws.flush().await;
            return;
        }
        Ending::Refused(_) => None,
        Ending::Close(reason) => Some(close_code(reason)),
    };
    match code {
        Some(code) => {
            let _ = ws.send(Frame::close(code, [])).await;
        }
        None => {
            let _ = std::future::poll_fn(|cx| ws.poll_ready_unpin(cx)).await;
            let _ = ws.flush().await;
        }
    }
    while let Some(frame) = ws.next().await {
        if frame.opcode() == OpCode::Close {
            break;
        }
    }
}

/// The close code (RFC 6455, 7.4.1) that tells the client why.
fn close_code(reason: CloseReason) -> CloseCode {
    match reason {
        CloseReason::ProtocolError => CloseCode::Protocol,
        CloseReason::TooLarge => CloseCode::Size,
        CloseReason::Unsupported => CloseCode::Unsupported,
        CloseReason::InvalidUtf8 => CloseCode::Invalid,
        // 1013, "try again later": the client is welcome back, reading.
        CloseReason::Backpressure => CloseCode::Again,
        CloseReason::ClientClose
        | CloseReason::ServerClose
        | CloseReason::PingTimeout
        | CloseReason::TransportError => CloseCode::Normal,
    }
}

/// What yawc's refusal of a frame means for the session. yawc has sent
/// its close frame with the matching code already, except when the
/// connection itself failed.
fn refused(error: &WebSocketError) -> Ending {
    let reason = match error {
        WebSocketError::FrameTooLarge => CloseReason::TooLarge,
        WebSocketError::InvalidUTF8 => CloseReason::InvalidUtf8,
        WebSocketError::InvalidOpCode(_) => CloseReason::Unsupported,
        WebSocketError::ReservedBitsNotZero
        | WebSocketError::ControlFrameFragmented
        | WebSocketError::PingFrameTooLarge
        | WebSocketError::InvalidFragment
        | WebSocketError::InvalidCloseFrame
        | WebSocketError::InvalidCloseCode
        | WebSocketError::FragmentTimeout
        | WebSocketError::InvalidContinuationFrame
        | WebSocketError::CompressionNotSupported => CloseReason::ProtocolError,
        _ => return Ending::Close(CloseReason::TransportError),
    };
    Ending::Refused(reason)
}

/// The earlier of `at` and `deadline`.
fn earliest(at: Instant, deadline: Option<Instant>) -> Instant {
    deadline.map_or(at, |d| d.min(at))
}

/// Longest wait for the client's half of the closing handshake.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How a write of the outbox ended.
enum Flushed {
    Done,
    /// The connection failed.
    Failed,
    /// The outbox overflowed while a write waited on the client: it does
    /// not read, and waiting for the write timeout would keep what it was
    /// sent for that long (17 s, measured, for 30 members of a room).
    Overflowed,
}

/// Writes the outbox, one write per packet (as a Socket.IO server written
/// on Node.js does: a client may rely on a handler seeing one message
/// before the next arrives).
async fn flush<D>(socket: &Socket<D>, ws: &mut Wire) -> Flushed {
    for packet in socket.drain() {
        tokio::select! {
            sent = ws.send(frame(packet)) => {
                if sent.is_err() {
                    return Flushed::Failed;
                }
            }
            () = overflowed(socket) => return Flushed::Overflowed,
        }
    }
    Flushed::Done
}

/// Resolves once the outbox has overflowed.
async fn overflowed<D>(socket: &Socket<D>) {
    loop {
        let woken = socket.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if socket.must_close() == Some(CloseReason::Backpressure) {
            return;
        }
        woken.await;
    }
}

enum Read {
    Go,
    /// The client's close frame.
    Closed,
    Pong,
    End(CloseReason),
}

/// Handles one frame: a whole message goes to the layer above, a fragment
/// joins the message being put together.
fn read<H: Handler>(
    engine: &Engine<H>,
    socket: &Arc<Socket<H::Data>>,
    fragments: &mut Option<Box<Fragments>>,
    frame: Frame,
) -> Read {
    let (opcode, fin, payload) = frame.into_parts();
    let (text, data) = match opcode {
        // yawc answers pings; a close is echoed by it, and ends the session.
        OpCode::Close => return Read::Closed,
        OpCode::Ping | OpCode::Pong => return Read::Go,
        // A new message before the last one ended.
        OpCode::Text | OpCode::Binary if fragments.is_some() => {
            return Read::End(CloseReason::ProtocolError);
        }
        OpCode::Text | OpCode::Binary => match engine.handler.intake(socket) {
            // A stranger sends small, whole messages: a fragment it starts
            // would hold an inflate context and what it inflated to (177
            // KiB a connection, measured) until the fragment timeout.
            Intake::Guarded(max) if payload.len() > max => return Read::End(CloseReason::TooLarge),
            Intake::Guarded(_) if !fin => return Read::End(CloseReason::ProtocolError),
            _ if fin => (opcode == OpCode::Text, payload),
            _ => {
                start(engine, fragments, opcode, &payload);
                return Read::Go;
            }
        },
        OpCode::Continuation => {
            // A continuation of no message.
            let Some(mut partial) = fragments.take() else {
                return Read::End(CloseReason::ProtocolError);
            };
            if partial.data.len() + payload.len() > engine.config.max_payload {
                return Read::End(CloseReason::TooLarge);
            }
            partial.data.extend_from_slice(&payload);
            if !fin {
                *fragments = Some(partial);
                return Read::Go;
            }
            (partial.text, partial.data.freeze())
        }
    };
    message(engine, socket, text, data)
}

/// Starts putting a fragmented message together.
fn start<H: Handler>(
    engine: &Engine<H>,
    fragments: &mut Option<Box<Fragments>>,
    opcode: OpCode,
    payload: &[u8],
) {
    let deadline = Instant::now() + engine.config.fragment_timeout;
    let mut data = BytesMut::new();
    data.extend_from_slice(payload);
    *fragments = Some(Box::new(Fragments {
        text: opcode == OpCode::Text,
        data,
        deadline,
    }));
}

/// Hands a whole message to the layer above.
fn message<H: Handler>(
    engine: &Engine<H>,
    socket: &Arc<Socket<H::Data>>,
    text: bool,
    data: Bytes,
) -> Read {
    let max = engine.config.max_payload;
    let packet = if text {
        let Ok(text) = std::str::from_utf8(&data) else {
            return Read::End(CloseReason::InvalidUtf8);
        };
        eio::decode_text(text, max)
    } else {
        eio::decode_binary(data, max)
    };
    match packet {
        Ok(Packet::Message(text)) => engine.handler.message(socket, Message::Text(text)),
        Ok(Packet::Binary(data)) => engine.handler.message(socket, Message::Binary(data)),
        Ok(Packet::Pong) => {
            socket.ponged();
            return Read::Pong;
        }
        Ok(Packet::Close) => return Read::End(CloseReason::ClientClose),
        Err(eio::Error::TooLarge { .. }) => return Read::End(CloseReason::TooLarge),
        _ => return Read::End(CloseReason::ProtocolError),
    }
    Read::Go
}

fn frame(packet: Outgoing) -> Frame {
    match packet {
        Outgoing::Text(text) => Frame::text(text),
        Outgoing::Binary(data) => Frame::binary(data),
    }
}
