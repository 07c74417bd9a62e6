//! WebSocket: a session opened on one, or upgraded to one from
//! long-polling. One task per connection reads frames, writes the outbox
//! and runs the heartbeat.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message as Frame};

use super::{Body, CloseReason, Engine, Handler, Message, Refusal, Socket, Transport};
use crate::eio::{self, Packet};

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Answers a WebSocket request: 101 and a task for the connection, or a
/// refusal. `existing` is the long-polling session it upgrades.
pub(super) fn open<H: Handler, B>(
    engine: Arc<Engine<H>>,
    mut req: Request<B>,
    existing: Option<Arc<Socket<H::Data>>>,
) -> Response<Body> {
    let header_is = |name, value: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case(value))
    };
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (header_is(header::UPGRADE, "websocket"), key) else {
        return Refusal::BadRequest.response();
    };
    // A second WebSocket for a session that has one (or is probing one) is
    // accepted and closed at once: the session stays where it is.
    let refused = existing.as_ref().is_some_and(|s| !s.begin_upgrade());
    let upgrade = hyper::upgrade::on(&mut req);
    // Only the head goes on, to the handler of a new session; the engine
    // keeps nothing of it.
    let (head, _) = req.into_parts();
    tokio::spawn(setup(engine, upgrade, head, existing, refused));
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        )
        .body(Full::default())
        .expect("a valid response")
}

/// Finishes the upgrade and hands the connection to its own task. This
/// task is short-lived: what only the setup needs (the request head, the
/// upgrade's future, the probe) is freed before the connection idles, and
/// the connection's task holds `drive`'s state alone.
async fn setup<H: Handler>(
    engine: Arc<Engine<H>>,
    upgrade: hyper::upgrade::OnUpgrade,
    head: http::request::Parts,
    existing: Option<Arc<Socket<H::Data>>>,
    refused: bool,
) {
    let Ok(upgraded) = upgrade.await else {
        if let Some(socket) = existing.filter(|_| !refused) {
            socket.abort_upgrade();
        }
        return;
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer)
        .max_message_size(Some(engine.config.max_payload))
        .max_frame_size(Some(engine.config.max_payload));
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    if refused {
        let _ = ws.close(None).await;
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
    tokio::spawn(drive(engine, socket, ws));
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
    if ws.send(frame(open)).await.is_err() {
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
        let _ = ws.close(None).await;
        return false;
    }
    socket.finish_upgrade();
    true
}

async fn probe<H: Handler>(engine: &Engine<H>, socket: &Socket<H::Data>, ws: &mut Ws) -> bool {
    let max = engine.config.max_payload;
    let mut probed = false;
    while let Some(Ok(incoming)) = ws.next().await {
        let Frame::Text(text) = incoming else {
            continue;
        };
        match (eio::decode_text(text.as_str(), max), probed) {
            (Ok(Packet::PingProbe), false) => {
                if ws.send(frame(Packet::PongProbe)).await.is_err() {
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
    /// A frame, the end of the stream, or a read error.
    Frame(Option<Result<Frame, tokio_tungstenite::tungstenite::Error>>),
    /// Something was queued, or the session is to close.
    Outbox,
    /// The heartbeat's deadline.
    Timer,
}

/// Serves a session on its WebSocket until it closes: the connection's one
/// task for as long as it lives, so what it holds is what an idle
/// connection costs. It holds the stream whole (no split halves and their
/// shared lock) and one heartbeat timer, reset rather than rebuilt.
///
/// A plain function returning an `async` block, not an `async fn`: an
/// `async fn` keeps its arguments twice in its state (as given, and moved
/// into its body), which for the stream alone is 328 bytes.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn drive<H: Handler>(
    engine: Arc<Engine<H>>,
    socket: Arc<Socket<H::Data>>,
    mut ws: Ws,
) -> impl Future<Output = ()> + Send {
    async move {
        let config = &engine.config;
        let mut beat = Beat::Ping;
        let mut beat_at = Instant::now() + config.ping_interval;
        // The one timer: the earlier of the heartbeat's next step and the
        // session's deadline (see `Socket::close_at`).
        let mut armed = earliest(beat_at, socket.deadline());
        let timer = tokio::time::sleep_until(armed);
        tokio::pin!(timer);
        let reason = loop {
            let woken = socket.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if socket.is_closed() {
                break CloseReason::ServerClose;
            }
            if let Some(reason) = socket.must_close() {
                // What was queued before the close goes out first (a reason
                // for the client, say).
                let _ = Box::pin(tokio::time::timeout(
                    config.ping_timeout,
                    flush(&socket, &mut ws),
                ))
                .await;
                break reason;
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
                    Ok(true) => {}
                    Ok(false) => break CloseReason::TransportError,
                    Err(_) => break CloseReason::Backpressure,
                }
            }
            let at = earliest(beat_at, socket.deadline());
            if at != armed {
                timer.as_mut().reset(at);
                armed = at;
            }
            // Reading is cancel-safe: a frame half read stays in the stream's
            // buffer when the outbox or the timer wins.
            let woke = tokio::select! {
                incoming = ws.next() => Woke::Frame(incoming),
                () = &mut woken => Woke::Outbox,
                () = &mut timer => Woke::Timer,
            };
            match woke {
                Woke::Frame(incoming) => match read(&engine, &socket, incoming) {
                    Read::Go => {}
                    Read::Pong => {
                        beat = Beat::Ping;
                        beat_at = Instant::now() + config.ping_interval;
                    }
                    Read::End(reason) => break reason,
                },
                Woke::Outbox => {}
                Woke::Timer => {
                    let now = Instant::now();
                    if socket.deadline().is_some_and(|d| d <= now) {
                        break CloseReason::ServerClose;
                    }
                    if beat_at > now {
                        continue;
                    }
                    if let Beat::Pong = beat {
                        break CloseReason::PingTimeout;
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
        engine.close(&socket, reason);
        // The closing handshake: our close frame, then the client's (what it
        // still sends meanwhile is read and dropped). Dropping the connection
        // with the client's frames unread would make the kernel reset it, and a
        // reset can discard what the client had not read yet: the reason for
        // the close, say. Bounded too: a client that does not read or answer
        // gets the connection dropped.
        let goodbye = async {
            let _ = ws.send(Frame::Close(None)).await;
            while let Some(Ok(frame)) = ws.next().await {
                if matches!(frame, Frame::Close(_)) {
                    break;
                }
            }
            let _ = ws.close(None).await;
        };
        let wait = config.ping_timeout.min(CLOSE_WAIT);
        let _ = Box::pin(tokio::time::timeout(wait, goodbye)).await;
    }
}

/// The earlier of `at` and `deadline`.
fn earliest(at: Instant, deadline: Option<Instant>) -> Instant {
    deadline.map_or(at, |d| d.min(at))
}

/// Longest wait for the client's half of the closing handshake.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes the outbox, one write per packet (as a Socket.IO server written
/// on Node.js does: a client may rely on a handler seeing one message
/// before the next arrives); false when the connection failed.
async fn flush<D>(socket: &Socket<D>, ws: &mut Ws) -> bool {
    for packet in socket.drain() {
        if ws.send(frame(packet)).await.is_err() {
            return false;
        }
    }
    true
}

enum Read {
    Go,
    Pong,
    End(CloseReason),
}

fn read<H: Handler>(
    engine: &Engine<H>,
    socket: &Arc<Socket<H::Data>>,
    incoming: Option<Result<Frame, tokio_tungstenite::tungstenite::Error>>,
) -> Read {
    let max = engine.config.max_payload;
    let packet = match incoming {
        Some(Ok(Frame::Text(text))) => eio::decode_text(text.as_str(), max),
        Some(Ok(Frame::Binary(data))) => eio::decode_binary(data, max),
        Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => return Read::Go,
        Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => {
            return Read::End(CloseReason::TransportError);
        }
    };
    match packet {
        Ok(Packet::Message(text)) => engine.handler.message(socket, Message::Text(text)),
        Ok(Packet::Binary(data)) => engine.handler.message(socket, Message::Binary(data)),
        Ok(Packet::Pong) => {
            socket.ponged();
            return Read::Pong;
        }
        Ok(Packet::Close) => return Read::End(CloseReason::ClientClose),
        _ => return Read::End(CloseReason::ProtocolError),
    }
    Read::Go
}

fn frame(packet: Packet) -> Frame {
    match eio::encode_frame(packet) {
        eio::Frame::Text(text) => Frame::text(text),
        eio::Frame::Binary(data) => Frame::Binary(Bytes::from(data.to_vec())),
    }
}
