//! Conformance of sockgate's Engine.IO v4 and Socket.IO v5 servers to the
//! behaviour the two protocol documents describe (socketio/engine.io-protocol
//! and socketio/socket.io-protocol, `README`), over real sockets.
//!
//! Each test starts its own server on 127.0.0.1, port 0, in the test's own
//! runtime:
//!
//! - `/engine.io/`: a plain Engine.IO echo (`flood:N` and `stream` make it
//!   send more than a client reads);
//! - `/socket.io/`: Socket.IO with `/` and `/custom`, which echo events and
//!   answer acks, and `/private`, which wants a token;
//! - `/guarded/`: Socket.IO whose main namespace wants a token;
//! - `/plain/`: Socket.IO that takes no binary, as sockgate's gateway.
//!
//! Tests about the heartbeat use a short one (300 ms / 200 ms). Tests that
//! expect a session to close for another reason use a heartbeat far longer
//! than the test, so that a ping timeout cannot pass for the behaviour
//! under test. No test asserts that something happens sooner than a few
//! seconds; the few lower bounds only say "not before the server could".

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value as Json, json};
use sockgate_engine::engine::{self, CloseReason, Engine, Handler, Message};
use sockgate_engine::io::{
    self, Ack, Auth, BoxFuture, ConnectError, DisconnectReason, Io, Namespace, SioSocket,
};
use sockgate_engine::sio::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;

/// The record separator of a long-polling payload.
const SEP: char = '\u{1e}';
/// How long "eventually" may take.
const EVENTUALLY: Duration = Duration::from_secs(5);
/// The servers' `maxPayload`.
const MAX_PAYLOAD: usize = 100_000;
/// The servers' outbox bound, in packets.
const MAX_BUFFERED: usize = 64;
/// The servers' outbox bound, in bytes.
const MAX_BUFFERED_BYTES: usize = 256 * 1024;

// ---------------------------------------------------------------------------
// The servers under test
// ---------------------------------------------------------------------------

/// Heartbeat and connect-timeout settings of a test server.
#[derive(Debug, Clone, Copy)]
struct Settings {
    ping_interval: Duration,
    ping_timeout: Duration,
    connect_timeout: Duration,
}

/// A short heartbeat, for the tests about it.
const FAST: Settings = Settings {
    ping_interval: Duration::from_millis(300),
    ping_timeout: Duration::from_millis(200),
    connect_timeout: Duration::from_millis(1000),
};

/// A heartbeat no test lasts long enough to see: a session that closes
/// did so for the reason under test.
const QUIET: Settings = Settings {
    ping_interval: Duration::from_secs(60),
    ping_timeout: Duration::from_secs(60),
    connect_timeout: Duration::from_millis(1000),
};

/// What the servers' handlers saw.
#[derive(Default)]
struct Log {
    /// Why each Engine.IO echo session closed.
    closes: Mutex<Vec<CloseReason>>,
    /// Each Socket.IO socket that left, with its namespace.
    disconnects: Mutex<Vec<(String, DisconnectReason)>>,
}

impl Log {
    fn closes(&self) -> Vec<CloseReason> {
        self.closes.lock().unwrap().clone()
    }

    fn disconnects(&self) -> Vec<(String, DisconnectReason)> {
        self.disconnects.lock().unwrap().clone()
    }
}

/// The plain Engine.IO echo.
struct Echo {
    log: Arc<Log>,
}

impl Handler for Echo {
    type Data = ();

    fn open(&self, _: &Arc<engine::Socket<()>>, _: http::request::Parts) {}

    fn message(&self, socket: &Arc<engine::Socket<()>>, message: Message) {
        match message {
            Message::Text(text) if text.starts_with("flood:") => {
                // Many messages at once, more than the outbox holds.
                let count: usize = text["flood:".len()..].parse().unwrap();
                for i in 0..count {
                    socket.send_text(format!("m{i}"));
                }
            }
            Message::Text(text) if text.starts_with("big:") => {
                // A few large messages at once: more bytes than the outbox
                // holds, in fewer packets than it holds.
                let count: usize = text["big:".len()..].parse().unwrap();
                for _ in 0..count {
                    socket.send_text("y".repeat(50_000));
                }
            }
            Message::Text(text) if text == "stream" => {
                // 256 KiB a millisecond, in 16 KiB messages, while the session lives.
                let socket = socket.clone();
                tokio::spawn(async move {
                    let chunk = "x".repeat(16 * 1024);
                    while !socket.is_closed() {
                        for _ in 0..16 {
                            socket.send_text(chunk.clone());
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                });
            }
            Message::Text(text) => socket.send_text(text),
            Message::Binary(data) => socket.send_binary(data),
        }
    }

    fn close(&self, _: &Arc<engine::Socket<()>>, reason: CloseReason) {
        self.log.closes.lock().unwrap().push(reason);
    }
}

/// `/` and `/custom`: `auth` on connect with the handshake payload, events
/// echoed under their own name, acks answered with the event's arguments.
struct Echoing {
    log: Arc<Log>,
}

impl Namespace for Echoing {
    fn connect<'a>(
        &'a self,
        _: &'a Arc<SioSocket>,
        _: Auth<'a>,
        _: &'a sockgate_engine::io::RequestHead,
    ) -> BoxFuture<'a, Result<(), ConnectError>> {
        Box::pin(async { Ok(()) })
    }

    fn connected(&self, socket: &Arc<SioSocket>, auth: Auth<'_>) {
        let auth = match auth {
            Auth::Payload(value) => value.clone(),
            _ => Value::Object(Default::default()),
        };
        socket.emit("auth", vec![auth]);
    }

    fn event(&self, socket: &Arc<SioSocket>, event: String, args: Vec<Value>, ack: Option<Ack>) {
        match ack {
            Some(ack) => ack.send(args),
            None => socket.emit(&event, args),
        }
    }

    fn disconnect(&self, socket: &Arc<SioSocket>, reason: DisconnectReason) {
        let entry = (socket.namespace().to_owned(), reason);
        self.log.disconnects.lock().unwrap().push(entry);
    }
}

/// A namespace that wants `{"token":"letmein"}`: none refuses with data, a
/// wrong one refuses without.
struct Private;

impl Namespace for Private {
    fn connect<'a>(
        &'a self,
        _: &'a Arc<SioSocket>,
        auth: Auth<'a>,
        _: &'a sockgate_engine::io::RequestHead,
    ) -> BoxFuture<'a, Result<(), ConnectError>> {
        let token = match auth {
            Auth::Payload(Value::Object(map)) => match map.get("token") {
                Some(Value::String(token)) => Some(token.clone()),
                _ => None,
            },
            _ => None,
        };
        Box::pin(async move {
            match token.as_deref() {
                None => Err(ConnectError {
                    message: "UNAUTHORIZED: no token".into(),
                    data: Some(json!({ "code": "UNAUTHORIZED" })),
                    ..ConnectError::default()
                }),
                Some("letmein") => Ok(()),
                Some(_) => Err(ConnectError {
                    message: "FORBIDDEN".into(),
                    data: None,
                    ..ConnectError::default()
                }),
            }
        })
    }

    fn event(&self, socket: &Arc<SioSocket>, event: String, args: Vec<Value>, _: Option<Ack>) {
        socket.emit(&event, args);
    }
}

struct Server {
    addr: SocketAddr,
    log: Arc<Log>,
}

impl Server {
    async fn start(settings: Settings) -> Server {
        let log = Arc::new(Log::default());
        let config = engine::Config {
            ping_interval: settings.ping_interval,
            ping_timeout: settings.ping_timeout,
            max_payload: MAX_PAYLOAD,
            max_buffered: MAX_BUFFERED,
            max_buffered_bytes: MAX_BUFFERED_BYTES,
            fragment_timeout: Duration::from_secs(1),
            ..engine::Config::default()
        };
        let io_config = io::Config {
            connect_timeout: settings.connect_timeout,
            attachment_timeout: Duration::from_secs(1),
            max_packet: MAX_PAYLOAD,
            ..io::Config::default()
        };
        let echoing = || Echoing { log: log.clone() };
        let sio = Engine::new(
            config.clone(),
            Io::new(io_config.clone())
                .namespace("/", echoing())
                .namespace("/custom", echoing())
                .namespace("/private", Private),
        );
        let guarded = Engine::new(
            config.clone(),
            Io::new(io_config.clone()).namespace("/", Private),
        );
        let plain = Engine::new(
            config.clone(),
            Io::new(io::Config {
                binary: false,
                ..io_config
            })
            .namespace("/", echoing()),
        );
        let eio = Engine::new(config, Echo { log: log.clone() });

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let engines = (sio.clone(), guarded.clone(), eio.clone(), plain.clone());
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (sio, guarded, eio, plain) = engines.clone();
                    async move {
                        let path = req.uri().path();
                        let answer = if path.starts_with("/socket.io/") {
                            sio.handle(req).await
                        } else if path.starts_with("/plain/") {
                            plain.handle(req).await
                        } else if path.starts_with("/guarded/") {
                            guarded.handle(req).await
                        } else if path.starts_with("/engine.io/") {
                            eio.handle(req).await
                        } else {
                            hyper::Response::builder()
                                .status(404)
                                .body(engine::Body::default())
                                .unwrap()
                        };
                        Ok::<_, Infallible>(answer)
                    }
                });
                tokio::spawn(
                    http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades(),
                );
            }
        });
        Server { addr, log }
    }

    /// An `http://` address on the server.
    fn http(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// The `ws://` address of a WebSocket on `path`, `sid` for an upgrade.
    fn ws(&self, path: &str, sid: Option<&str>) -> String {
        let sid = sid.map(|sid| format!("&sid={sid}")).unwrap_or_default();
        format!("ws://{}{path}?EIO=4&transport=websocket{sid}", self.addr)
    }

    /// Waits until the echo has closed a session, and gives the reasons.
    async fn closed_sessions(&self) -> Vec<CloseReason> {
        within("the server to close the session", async {
            loop {
                let closes = self.log.closes();
                if !closes.is_empty() {
                    return closes;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(EVENTUALLY, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

async fn http_get(http: &reqwest::Client, url: &str) -> (u16, String) {
    within("a GET answer", async {
        let response = http.get(url).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("GET body"))
    })
    .await
}

async fn http_post(http: &reqwest::Client, url: &str, body: String) -> (u16, String) {
    within("a POST answer", async {
        let response = http.post(url).body(body).send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.text().await.expect("POST body"))
    })
    .await
}

/// The JSON of an open packet.
fn open_packet(text: &str) -> Json {
    let json = text
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("not an open packet: {text:?}"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// The error code of an HTTP refusal, which must be a 400 with a JSON body.
fn refusal_code((status, body): (u16, String)) -> i64 {
    assert_eq!(status, 400, "a refusal, not {body:?}");
    let json: Json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert!(json["message"].is_string(), "{body}");
    json["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no code: {body}"))
}

/// A long-polling session.
#[derive(Clone)]
struct Polling {
    http: reqwest::Client,
    url: String,
    sid: String,
}

impl Polling {
    /// Opens a session on `path` and gives its handshake.
    async fn open(server: &Server, path: &str) -> (Polling, Json) {
        let http = reqwest::Client::new();
        let url = server.http(&format!("{path}?EIO=4&transport=polling"));
        let (status, body) = http_get(&http, &url).await;
        assert_eq!(status, 200, "handshake refused: {body}");
        let handshake = open_packet(&body);
        let sid = handshake["sid"].as_str().expect("a sid").to_owned();
        let url = format!("{url}&sid={sid}");
        (Polling { http, url, sid }, handshake)
    }

    async fn get(&self) -> (u16, String) {
        http_get(&self.http, &self.url).await
    }

    async fn post(&self, body: impl Into<String>) -> (u16, String) {
        http_post(&self.http, &self.url, body.into()).await
    }

    /// Posts, expecting the packets accepted.
    async fn send(&self, body: impl Into<String>) {
        let (status, text) = self.post(body).await;
        assert_eq!(status, 200, "POST refused: {text}");
    }

    /// One poll, expecting packets; gives them.
    async fn poll(&self) -> Vec<String> {
        let (status, body) = self.get().await;
        assert_eq!(status, 200, "poll refused: {body}");
        body.split(SEP).map(str::to_owned).collect()
    }

    /// Polls until something other than pings comes, answering the pings;
    /// gives the rest.
    async fn recv(&self) -> Vec<String> {
        within("a message over long-polling", async {
            loop {
                let (pings, rest): (Vec<_>, Vec<_>) =
                    self.poll().await.into_iter().partition(|p| p == "2");
                if !pings.is_empty() {
                    self.send("3").await;
                }
                if !rest.is_empty() {
                    return rest;
                }
            }
        })
        .await
    }

    /// Polls until the session is gone (a 400); every answer before must
    /// be a close packet.
    async fn expect_gone(&self) {
        within("the session to be gone", async {
            loop {
                let (status, body) = self.get().await;
                if status == 400 {
                    return;
                }
                assert_eq!((status, body.as_str()), (200, "1"), "a close packet");
            }
        })
        .await
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(url: &str) -> Ws {
    let connected = within(
        "a WebSocket handshake",
        tokio_tungstenite::connect_async(url),
    )
    .await;
    connected.expect("WebSocket handshake").0
}

/// The next text or binary frame; `None` once the connection closed.
async fn next_frame(ws: &mut Ws) -> Option<Frame> {
    within("a WebSocket frame", async {
        loop {
            match ws.next().await {
                Some(Ok(frame @ (Frame::Text(_) | Frame::Binary(_)))) => return Some(frame),
                Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => {}
                Some(Ok(Frame::Close(_)) | Err(_)) | None => return None,
            }
        }
    })
    .await
}

async fn next_text(ws: &mut Ws) -> String {
    match next_frame(ws).await {
        Some(Frame::Text(text)) => text.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next frame other than a ping, answering pings.
async fn recv(ws: &mut Ws) -> Frame {
    loop {
        match next_frame(ws).await {
            Some(Frame::Text(text)) if text.as_str() == "2" => send(ws, "3").await,
            Some(frame) => return frame,
            None => panic!("the connection closed"),
        }
    }
}

async fn recv_text(ws: &mut Ws) -> String {
    match recv(ws).await {
        Frame::Text(text) => text.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn recv_binary(ws: &mut Ws) -> Vec<u8> {
    match recv(ws).await {
        Frame::Binary(data) => data.to_vec(),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

async fn send(ws: &mut Ws, text: &str) {
    within("a WebSocket send", ws.send(Frame::text(text)))
        .await
        .expect("send");
}

async fn send_binary(ws: &mut Ws, data: &[u8]) {
    within("a WebSocket send", ws.send(Frame::binary(data.to_vec())))
        .await
        .expect("send");
}

/// Waits for the server to close the connection; gives the data frames
/// that came before.
async fn expect_closed(ws: &mut Ws) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = next_frame(ws).await {
        frames.push(frame);
    }
    frames
}

/// Opens an Engine.IO session on a WebSocket; gives its handshake.
async fn ws_open(server: &Server, path: &str) -> (Ws, Json) {
    let mut ws = ws_connect(&server.ws(path, None)).await;
    let handshake = open_packet(&next_text(&mut ws).await);
    (ws, handshake)
}

/// Upgrades a long-polling session to a WebSocket: a poll waits, the probe
/// is answered, the poll ends with a noop, and `5` completes it. Pings that
/// come meanwhile are answered.
async fn upgrade(server: &Server, path: &str, polling: &Polling) -> Ws {
    let pending = tokio::spawn({
        let polling = polling.clone();
        async move {
            loop {
                let packets = polling.poll().await;
                if packets.iter().all(|p| p == "2") {
                    polling.send("3").await;
                    continue;
                }
                return packets;
            }
        }
    });
    let mut ws = ws_connect(&server.ws(path, Some(&polling.sid))).await;
    send(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    let ended = within("the pending poll to end", pending).await.unwrap();
    assert_eq!(ended, ["6"], "the pending poll ends with a noop");
    send(&mut ws, "5").await;
    ws
}

/// A Socket.IO connection over WebSocket, its Engine.IO handshake read.
async fn sio_ws(server: &Server, path: &str) -> (Ws, Json) {
    ws_open(server, path).await
}

/// The `<namespace>,` of a Socket.IO packet, empty for the main one.
fn ns_prefix(namespace: &str) -> String {
    match namespace {
        "/" => String::new(),
        other => format!("{other},"),
    }
}

/// The JSON after `prefix` in a packet's text.
fn payload(text: &str, prefix: &str) -> Json {
    let json = text
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{text:?} does not start with {prefix:?}"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// Joins `namespace` with an optional auth payload; gives the socket's id
/// and the `auth` event the namespace sends back.
async fn join(ws: &mut Ws, namespace: &str, auth: Option<&str>) -> (String, Json) {
    let prefix = ns_prefix(namespace);
    send(ws, &format!("40{prefix}{}", auth.unwrap_or(""))).await;
    let answer = payload(&recv_text(ws).await, &format!("40{prefix}"));
    let sid = answer["sid"].as_str().expect("a sid").to_owned();
    assert_eq!(answer, json!({ "sid": sid }), "only the sid");
    let event = payload(&recv_text(ws).await, &format!("42{prefix}"));
    assert_eq!(event[0], "auth");
    (sid, event[1].clone())
}

// ---------------------------------------------------------------------------
// Engine.IO: handshake
// ---------------------------------------------------------------------------

#[tokio::test]
async fn handshake_over_polling_announces_the_session() {
    let server = Server::start(FAST).await;
    let (polling, handshake) = Polling::open(&server, "/engine.io/").await;
    let keys: Vec<_> = handshake.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ],
        "{handshake}"
    );
    assert!(!polling.sid.is_empty());
    assert_eq!(handshake["upgrades"], json!(["websocket"]));
    assert_eq!(handshake["pingInterval"], 300);
    assert_eq!(handshake["pingTimeout"], 200);
    assert_eq!(handshake["maxPayload"], MAX_PAYLOAD);

    // The sid names the session: it accepts packets, and two handshakes
    // give two sessions.
    polling.send("4hi").await;
    assert_eq!(polling.recv().await, ["4hi"]);
    let (other, _) = Polling::open(&server, "/engine.io/").await;
    assert_ne!(other.sid, polling.sid);
}

#[tokio::test]
async fn handshake_over_websocket_offers_no_upgrade() {
    let server = Server::start(FAST).await;
    let (mut ws, handshake) = ws_open(&server, "/engine.io/").await;
    assert!(handshake["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(handshake["upgrades"], json!([]));
    assert_eq!(handshake["pingInterval"], 300);
    assert_eq!(handshake["pingTimeout"], 200);
    assert_eq!(handshake["maxPayload"], MAX_PAYLOAD);
    send(&mut ws, "4hi").await;
    assert_eq!(recv_text(&mut ws).await, "4hi");
}

// ---------------------------------------------------------------------------
// Engine.IO: refusals
// ---------------------------------------------------------------------------

#[tokio::test]
async fn missing_or_unsupported_eio_is_refused_with_code_5() {
    let server = Server::start(QUIET).await;
    let http = reqwest::Client::new();
    for query in [
        "transport=polling",
        "EIO=3&transport=polling",
        "EIO=abc&transport=polling",
    ] {
        let url = server.http(&format!("/engine.io/?{query}"));
        assert_eq!(refusal_code(http_get(&http, &url).await), 5, "{query}");
    }
}

#[tokio::test]
async fn unknown_transport_is_refused_with_code_0() {
    let server = Server::start(QUIET).await;
    let http = reqwest::Client::new();
    for query in ["EIO=4&transport=udp", "EIO=4"] {
        let url = server.http(&format!("/engine.io/?{query}"));
        assert_eq!(refusal_code(http_get(&http, &url).await), 0, "{query}");
    }
}

#[tokio::test]
async fn unknown_sid_is_refused_with_code_1() {
    let server = Server::start(QUIET).await;
    let http = reqwest::Client::new();
    for sid in ["abcdefghijklmnopqrst", "not-a-sid"] {
        let url = server.http(&format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
        assert_eq!(refusal_code(http_get(&http, &url).await), 1, "GET {sid}");
        let post = http_post(&http, &url, "4hi".into()).await;
        assert_eq!(refusal_code(post), 1, "POST {sid}");
    }
    // The same for a WebSocket upgrade naming no session.
    let url = server.ws("/engine.io/", Some("abcdefghijklmnopqrst"));
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn post_without_sid_is_refused_with_code_2() {
    let server = Server::start(QUIET).await;
    let http = reqwest::Client::new();
    let url = server.http("/engine.io/?EIO=4&transport=polling");
    assert_eq!(refusal_code(http_post(&http, &url, "4hi".into()).await), 2);
}

// ---------------------------------------------------------------------------
// Engine.IO: long-polling
// ---------------------------------------------------------------------------

#[tokio::test]
async fn polling_echoes_text_and_binary_packets_in_one_payload() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    // Three packets in one body: two texts (one with multi-byte UTF-8) and
    // the binary <01 02 03 04> as `b` + base64.
    polling
        .send("4hello\u{1e}4caf\u{e9} \u{20ac}\u{1e}bAQIDBA==")
        .await;
    let (status, body) = polling.get().await;
    assert_eq!(status, 200);
    assert_eq!(body, "4hello\u{1e}4caf\u{e9} \u{20ac}\u{1e}bAQIDBA==");
}

#[tokio::test]
async fn websocket_echoes_text_and_binary_frames() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    send(&mut ws, "4hello \u{20ac}").await;
    assert_eq!(recv_text(&mut ws).await, "4hello \u{20ac}");
    // A binary frame is the message as is, with no type byte.
    send_binary(&mut ws, &[0, 1, 2, 255]).await;
    assert_eq!(recv_binary(&mut ws).await, [0, 1, 2, 255]);
}

#[tokio::test]
async fn polling_invalid_packet_closes_the_session() {
    let server = Server::start(QUIET).await;
    // An unknown packet type, base64 that is not, an empty packet between
    // two separators, an open packet from the client.
    for bad in ["abc", "b!!!!", "4a\u{1e}\u{1e}4b", "0{}"] {
        let (polling, _) = Polling::open(&server, "/engine.io/").await;
        assert_eq!(polling.post(bad).await.0, 400, "{bad:?} refused");
        assert_eq!(polling.get().await.0, 400, "{bad:?} closed the session");
    }
    assert!(
        server
            .log
            .closes()
            .iter()
            .all(|r| *r == CloseReason::ProtocolError)
    );
}

#[tokio::test]
async fn polling_two_concurrent_gets_close_the_session() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    let first = tokio::spawn({
        let polling = polling.clone();
        async move { polling.get().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = polling.get().await;
    let first = within("the first poll", first).await.unwrap();
    // Whichever reached the server second is refused; the one waiting is
    // answered with a close packet.
    let mut answers = [first, second];
    answers.sort();
    assert_eq!(answers[0], (200, "1".to_owned()));
    assert_eq!(answers[1].0, 400);
    assert_eq!(polling.get().await.0, 400, "the session is closed");
    assert_eq!(server.closed_sessions().await, [CloseReason::ProtocolError]);
}

// ---------------------------------------------------------------------------
// Engine.IO: heartbeat
// ---------------------------------------------------------------------------

#[tokio::test]
async fn polling_pongs_keep_the_session() {
    let server = Server::start(FAST).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    let started = Instant::now();
    let mut pings = 0;
    let mut last_pong: Option<Instant> = None;
    // Well past pingInterval + pingTimeout, three times over.
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(polling.poll().await, ["2"], "only pings come");
        // A ping waits a pingInterval after the last pong (less a wide
        // margin: the server cannot be early, only late).
        if let Some(at) = last_pong {
            assert!(
                at.elapsed() >= Duration::from_millis(250),
                "{:?}",
                at.elapsed()
            );
        }
        last_pong = Some(Instant::now());
        polling.send("3").await;
        pings += 1;
    }
    assert!(pings >= 3, "{pings} pings");
    polling.send("4alive").await;
    assert_eq!(polling.recv().await, ["4alive"]);
    assert!(server.log.closes().is_empty());
}

#[tokio::test]
async fn polling_without_pongs_the_session_times_out() {
    let server = Server::start(FAST).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    assert_eq!(polling.poll().await, ["2"]);
    polling.expect_gone().await;
    assert_eq!(server.closed_sessions().await, [CloseReason::PingTimeout]);
}

#[tokio::test]
async fn websocket_pongs_keep_the_session() {
    let server = Server::start(FAST).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    let started = Instant::now();
    let mut pings = 0;
    let mut last_pong: Option<Instant> = None;
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(next_text(&mut ws).await, "2", "only pings come");
        if let Some(at) = last_pong {
            assert!(
                at.elapsed() >= Duration::from_millis(250),
                "{:?}",
                at.elapsed()
            );
        }
        last_pong = Some(Instant::now());
        send(&mut ws, "3").await;
        pings += 1;
    }
    assert!(pings >= 3, "{pings} pings");
    send(&mut ws, "4alive").await;
    assert_eq!(recv_text(&mut ws).await, "4alive");
    assert!(server.log.closes().is_empty());
}

#[tokio::test]
async fn websocket_without_pongs_the_socket_closes() {
    let server = Server::start(FAST).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    let frames = expect_closed(&mut ws).await;
    assert_eq!(frames, [Frame::text("2")], "one ping, then the close");
    assert_eq!(server.closed_sessions().await, [CloseReason::PingTimeout]);
}

// ---------------------------------------------------------------------------
// Engine.IO: close
// ---------------------------------------------------------------------------

#[tokio::test]
async fn polling_client_close_ends_the_pending_poll_with_noop() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    let pending = tokio::spawn({
        let polling = polling.clone();
        async move { polling.get().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    polling.send("1").await;
    let answer = within("the pending poll", pending).await.unwrap();
    assert_eq!(answer, (200, "6".to_owned()));
    assert_eq!(refusal_code(polling.get().await), 1, "the session is gone");
    assert_eq!(server.closed_sessions().await, [CloseReason::ClientClose]);
}

#[tokio::test]
async fn websocket_client_close_ends_the_session() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    send(&mut ws, "1").await;
    assert!(expect_closed(&mut ws).await.is_empty());
    assert_eq!(server.closed_sessions().await, [CloseReason::ClientClose]);
}

// ---------------------------------------------------------------------------
// Engine.IO: upgrade
// ---------------------------------------------------------------------------

#[tokio::test]
async fn upgrade_moves_the_session_to_the_websocket() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    let pending = tokio::spawn({
        let polling = polling.clone();
        async move { polling.get().await }
    });
    let mut ws = ws_connect(&server.ws("/engine.io/", Some(&polling.sid))).await;
    // No open packet on an upgrading WebSocket: the probe comes first.
    send(&mut ws, "2probe").await;
    assert_eq!(next_text(&mut ws).await, "3probe");
    let ended = within("the pending poll", pending).await.unwrap();
    assert_eq!(ended, (200, "6".to_owned()), "a noop ends the pending poll");
    // A message posted before the upgrade completes is not lost: its echo
    // goes out on the WebSocket.
    polling.send("4during").await;
    send(&mut ws, "5").await;
    assert_eq!(next_text(&mut ws).await, "4during");
    send(&mut ws, "4after").await;
    assert_eq!(next_text(&mut ws).await, "4after");
    send_binary(&mut ws, &[7, 8]).await;
    assert_eq!(recv_binary(&mut ws).await, [7, 8]);

    // The session's HTTP requests are refused from now on.
    assert_eq!(polling.get().await.0, 400);
    assert_eq!(polling.post("4x").await.0, 400);
    // ... and nothing posted went through.
    send(&mut ws, "4last").await;
    assert_eq!(next_text(&mut ws).await, "4last");
    assert!(server.log.closes().is_empty());
}

#[tokio::test]
async fn second_websocket_for_an_upgraded_session_is_closed() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    let mut ws = upgrade(&server, "/engine.io/", &polling).await;
    send(&mut ws, "4one").await;
    assert_eq!(recv_text(&mut ws).await, "4one");

    let mut second = ws_connect(&server.ws("/engine.io/", Some(&polling.sid))).await;
    send(&mut second, "2probe").await;
    assert!(
        expect_closed(&mut second).await.is_empty(),
        "no probe answer"
    );

    send(&mut ws, "4two").await;
    assert_eq!(recv_text(&mut ws).await, "4two");
    assert!(server.log.closes().is_empty());
}

#[tokio::test]
async fn failed_probe_leaves_the_session_on_polling() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    // `5` without a probe: the WebSocket is dropped, the session stays.
    let mut ws = ws_connect(&server.ws("/engine.io/", Some(&polling.sid))).await;
    send(&mut ws, "5").await;
    assert!(expect_closed(&mut ws).await.is_empty());
    polling.send("4still").await;
    assert_eq!(polling.recv().await, ["4still"]);
    // A proper upgrade still works afterwards.
    let mut ws = upgrade(&server, "/engine.io/", &polling).await;
    send(&mut ws, "4moved").await;
    assert_eq!(recv_text(&mut ws).await, "4moved");
}

#[tokio::test]
async fn heartbeat_moves_to_the_websocket_after_upgrade() {
    let server = Server::start(FAST).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    let mut ws = upgrade(&server, "/engine.io/", &polling).await;
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(next_text(&mut ws).await, "2", "only pings come");
        send(&mut ws, "3").await;
        pings += 1;
    }
    assert!(pings >= 3, "{pings} pings");
    send(&mut ws, "4alive").await;
    assert_eq!(recv_text(&mut ws).await, "4alive");
    // Without pongs, the WebSocket closes.
    let frames = expect_closed(&mut ws).await;
    assert_eq!(frames, [Frame::text("2")]);
    assert_eq!(server.closed_sessions().await, [CloseReason::PingTimeout]);
}

// ---------------------------------------------------------------------------
// Socket.IO
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sio_connect_to_main_and_custom_namespaces() {
    let server = Server::start(QUIET).await;

    let (mut ws, handshake) = sio_ws(&server, "/socket.io/").await;
    let eio_sid = handshake["sid"].as_str().unwrap().to_owned();
    let (main, auth) = join(&mut ws, "/", None).await;
    assert_eq!(auth, json!({}), "no auth payload");
    let (custom, auth) = join(&mut ws, "/custom", Some(r#"{"token":"abc"}"#)).await;
    assert_eq!(auth, json!({ "token": "abc" }));
    assert_ne!(main, custom, "one id per namespace");
    assert_ne!(main, eio_sid, "not the Engine.IO sid");
    assert_ne!(custom, eio_sid, "not the Engine.IO sid");

    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    let (_, auth) = join(&mut ws, "/", Some(r#"{"a":[1,{"b":null}]}"#)).await;
    assert_eq!(auth, json!({ "a": [1, { "b": null }] }));
    // The reference clients send `40/custom,` for an empty payload; `40/custom`
    // is accepted too.
    let (_, auth) = join(&mut ws, "/custom", None).await;
    assert_eq!(auth, json!({}));
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    send(&mut ws, "40/custom").await;
    payload(&recv_text(&mut ws).await, "40/custom,")["sid"]
        .as_str()
        .expect("a sid");
}

#[tokio::test]
async fn sio_connect_over_polling() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/socket.io/").await;
    polling.send("40").await;
    let packets = polling.recv().await;
    let mut packets = packets.into_iter();
    let connect = payload(&packets.next().unwrap(), "40");
    assert!(connect["sid"].is_string(), "{connect}");
    // The `auth` event may come in the same payload or the next.
    let auth = match packets.next() {
        Some(packet) => packet,
        None => polling.recv().await.remove(0),
    };
    assert_eq!(payload(&auth, "42"), json!(["auth", {}]));
}

#[tokio::test]
async fn sio_unknown_namespace_is_refused() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    send(&mut ws, "40/x,").await;
    let refusal = payload(&recv_text(&mut ws).await, "44/x,");
    assert_eq!(refusal, json!({ "message": "Invalid namespace" }));
    // The connection is still usable.
    join(&mut ws, "/", None).await;
}

#[tokio::test]
async fn sio_events_are_echoed_and_acks_carry_their_id() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    join(&mut ws, "/", None).await;
    join(&mut ws, "/custom", None).await;

    send(&mut ws, r#"42["hello","world",{"n":1},[true,null]]"#).await;
    let echoed = payload(&recv_text(&mut ws).await, "42");
    assert_eq!(echoed, json!(["hello", "world", { "n": 1 }, [true, null]]));

    send(&mut ws, r#"42/custom,["hi",2]"#).await;
    assert_eq!(
        payload(&recv_text(&mut ws).await, "42/custom,"),
        json!(["hi", 2])
    );

    send(&mut ws, r#"421["ask",1,"two"]"#).await;
    assert_eq!(payload(&recv_text(&mut ws).await, "431"), json!([1, "two"]));

    send(&mut ws, r#"42/custom,17["ask"]"#).await;
    assert_eq!(
        payload(&recv_text(&mut ws).await, "43/custom,17"),
        json!([])
    );

    // An id past 32 bits.
    send(&mut ws, r#"424294967296["ask",{"big":true}]"#).await;
    let ack = payload(&recv_text(&mut ws).await, "434294967296");
    assert_eq!(ack, json!([{ "big": true }]));
}

#[tokio::test]
async fn sio_binary_attachments_over_websocket() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    join(&mut ws, "/", None).await;
    join(&mut ws, "/custom", None).await;

    // A BINARY_EVENT with two attachments, each its own binary frame.
    send(
        &mut ws,
        r#"452-["bin",{"_placeholder":true,"num":0},{"file":{"_placeholder":true,"num":1}}]"#,
    )
    .await;
    send_binary(&mut ws, &[1, 2, 3]).await;
    send_binary(&mut ws, &[4, 5, 6, 7]).await;
    let echoed = payload(&recv_text(&mut ws).await, "452-");
    assert_eq!(
        echoed,
        json!(["bin", { "_placeholder": true, "num": 0 }, { "file": { "_placeholder": true, "num": 1 } }])
    );
    assert_eq!(recv_binary(&mut ws).await, [1, 2, 3]);
    assert_eq!(recv_binary(&mut ws).await, [4, 5, 6, 7]);

    // A binary event asking for an ack, in a namespace: a BINARY_ACK.
    send(
        &mut ws,
        r#"451-/custom,9["bin",{"_placeholder":true,"num":0}]"#,
    )
    .await;
    send_binary(&mut ws, &[9]).await;
    let ack = payload(&recv_text(&mut ws).await, "461-/custom,9");
    assert_eq!(ack, json!([{ "_placeholder": true, "num": 0 }]));
    assert_eq!(recv_binary(&mut ws).await, [9]);
}

#[tokio::test]
async fn sio_binary_attachments_over_polling() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/socket.io/").await;
    polling.send("40").await;
    let mut seen = polling.recv().await;
    if seen.len() < 2 {
        seen.extend(polling.recv().await);
    }
    assert!(seen[0].starts_with("40{"), "{seen:?}");
    // The event's text then its attachment <01 02 03>, in one body.
    polling
        .send("451-[\"bin\",{\"_placeholder\":true,\"num\":0}]\u{1e}bAQID")
        .await;
    let packets = polling.recv().await;
    assert_eq!(packets.len(), 2, "{packets:?}");
    let echoed = payload(&packets[0], "451-");
    assert_eq!(echoed, json!(["bin", { "_placeholder": true, "num": 0 }]));
    assert_eq!(packets[1], "bAQID");
}

#[tokio::test]
async fn sio_invalid_packets_close_the_connection() {
    let server = Server::start(QUIET).await;
    let placeholder = r#"451-["b",{"_placeholder":true,"num":0}]"#;
    let cases: [(&str, Vec<Frame>); 9] = [
        ("unknown packet type", vec![Frame::text("49")]),
        ("empty packet", vec![Frame::text("4")]),
        (
            "event payload not an array",
            vec![Frame::text(r#"42{"a":1}"#)],
        ),
        ("event payload an empty array", vec![Frame::text("42[]")]),
        ("ack id not a number", vec![Frame::text(r#"42abc["x"]"#)]),
        (
            "ack id over 64 bits",
            vec![Frame::text(r#"4218446744073709551616["x"]"#)],
        ),
        ("ack without an id", vec![Frame::text(r#"43["x"]"#)]),
        (
            "text while an attachment is due",
            vec![Frame::text(placeholder), Frame::text(r#"42["x"]"#)],
        ),
        ("attachment nobody announced", vec![Frame::binary(vec![1])]),
    ];
    for (what, frames) in &cases {
        let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
        join(&mut ws, "/", None).await;
        for frame in frames {
            within("a send", ws.send(frame.clone())).await.unwrap();
        }
        assert!(expect_closed(&mut ws).await.is_empty(), "{what}");
    }
    // Each socket left its namespace with the connection.
    let disconnects = server.log.disconnects();
    assert_eq!(disconnects.len(), cases.len(), "{disconnects:?}");
    assert!(
        disconnects
            .iter()
            .all(|(ns, reason)| ns == "/" && matches!(reason, DisconnectReason::Closed(_))),
        "{disconnects:?}"
    );
}

#[tokio::test]
async fn sio_without_connect_the_connection_closes() {
    let server = Server::start(QUIET).await;

    // Over WebSocket: closed after the connect timeout (1 s), not before
    // half of it.
    let started = Instant::now();
    let (mut idle, _) = sio_ws(&server, "/socket.io/").await;
    // A connection that joins in time is kept.
    let (mut joined, _) = sio_ws(&server, "/socket.io/").await;
    join(&mut joined, "/", None).await;
    assert!(expect_closed(&mut idle).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(500));

    // Over long-polling: the pending poll gets a close packet, then the
    // session is gone.
    let (polling, _) = Polling::open(&server, "/socket.io/").await;
    polling.expect_gone().await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&mut joined, r#"42["still"]"#).await;
    assert_eq!(
        payload(&recv_text(&mut joined).await, "42"),
        json!(["still"])
    );
}

#[tokio::test]
async fn sio_disconnect_leaves_only_that_namespace() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    let (first, _) = join(&mut ws, "/", None).await;
    join(&mut ws, "/custom", None).await;

    send(&mut ws, "41").await;
    // The main namespace no longer answers; `/custom` does, and nothing
    // came in between (no answer to the DISCONNECT, no echo).
    send(&mut ws, r#"42["ghost"]"#).await;
    send(&mut ws, r#"42/custom,["real"]"#).await;
    assert_eq!(recv_text(&mut ws).await, r#"42/custom,["real"]"#);
    assert_eq!(
        server.log.disconnects(),
        [("/".to_owned(), DisconnectReason::ClientDisconnect)]
    );

    // Joining again gives a new socket.
    let (again, _) = join(&mut ws, "/", None).await;
    assert_ne!(again, first);
    send(&mut ws, r#"42["back"]"#).await;
    assert_eq!(recv_text(&mut ws).await, r#"42["back"]"#);

    // And the same the other way round.
    send(&mut ws, "41/custom,").await;
    send(&mut ws, r#"42/custom,["ghost"]"#).await;
    send(&mut ws, r#"42["real"]"#).await;
    assert_eq!(recv_text(&mut ws).await, r#"42["real"]"#);
}

#[tokio::test]
async fn sio_connect_error_carries_the_namespace_data() {
    let server = Server::start(QUIET).await;

    // In the main namespace: `44{...}`.
    let (mut ws, _) = sio_ws(&server, "/guarded/").await;
    send(&mut ws, "40").await;
    let refusal = payload(&recv_text(&mut ws).await, "44");
    assert_eq!(
        refusal,
        json!({ "message": "UNAUTHORIZED: no token", "data": { "code": "UNAUTHORIZED" } })
    );
    // No data: no `data` field.
    send(&mut ws, r#"40{"token":"nope"}"#).await;
    assert_eq!(
        payload(&recv_text(&mut ws).await, "44"),
        json!({ "message": "FORBIDDEN" })
    );
    // A refusal leaves the connection usable.
    send(&mut ws, r#"40{"token":"letmein"}"#).await;
    assert!(payload(&recv_text(&mut ws).await, "40")["sid"].is_string());

    // In another namespace: `44/private,{...}`.
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    send(&mut ws, "40/private,").await;
    let refusal = payload(&recv_text(&mut ws).await, "44/private,");
    assert_eq!(
        refusal,
        json!({ "message": "UNAUTHORIZED: no token", "data": { "code": "UNAUTHORIZED" } })
    );
    // A refused namespace is not joined: its events get nothing.
    join(&mut ws, "/", None).await;
    send(&mut ws, r#"42/private,["ghost"]"#).await;
    send(&mut ws, r#"42["real"]"#).await;
    assert_eq!(recv_text(&mut ws).await, r#"42["real"]"#);
}

// ---------------------------------------------------------------------------
// Bounds
// ---------------------------------------------------------------------------

#[tokio::test]
async fn polling_post_over_max_payload_closes_the_session() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    // Exactly maxPayload bytes is accepted.
    let largest = format!("4{}", "a".repeat(MAX_PAYLOAD - 1));
    polling.send(largest.clone()).await;
    assert_eq!(polling.recv().await, [largest]);
    // One more byte is refused, and ends the session.
    let (status, _) = polling.post(format!("4{}", "a".repeat(MAX_PAYLOAD))).await;
    assert!((400..500).contains(&status), "refused, not {status}");
    assert_eq!(polling.get().await.0, 400);
    assert_eq!(server.closed_sessions().await, [CloseReason::TooLarge]);
}

#[tokio::test]
async fn websocket_frame_over_max_payload_closes_the_connection() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    let largest = format!("4{}", "a".repeat(MAX_PAYLOAD - 1));
    send(&mut ws, &largest).await;
    assert_eq!(recv_text(&mut ws).await, largest);
    send(&mut ws, &format!("4{}", "a".repeat(MAX_PAYLOAD))).await;
    assert!(expect_closed(&mut ws).await.is_empty());
    assert_eq!(server.closed_sessions().await.len(), 1);
}

#[tokio::test]
async fn polling_client_that_does_not_poll_is_closed_at_max_buffered() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    let count = MAX_BUFFERED * 4;
    let (status, _) = polling.post(format!("4flood:{count}")).await;
    assert!(status == 200 || status == 400, "{status}");
    // What was buffered may still be handed out, never more than the
    // bound; then the session is gone.
    let mut received = 0;
    within("the session to close", async {
        loop {
            let (status, body) = polling.get().await;
            if status == 400 {
                return;
            }
            received += body.split(SEP).filter(|p| p.starts_with("4m")).count();
        }
    })
    .await;
    assert!(received <= MAX_BUFFERED, "{received} messages got out");
    assert_eq!(server.closed_sessions().await, [CloseReason::Backpressure]);
}

#[tokio::test]
async fn websocket_flood_past_max_buffered_closes_the_connection() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    send(&mut ws, &format!("4flood:{}", MAX_BUFFERED * 4)).await;
    let frames = expect_closed(&mut ws).await;
    assert!(
        frames.len() <= MAX_BUFFERED,
        "{} messages got out",
        frames.len()
    );
    assert_eq!(server.closed_sessions().await, [CloseReason::Backpressure]);
}

#[tokio::test]
async fn websocket_client_that_stops_reading_is_closed() {
    let server = Server::start(FAST).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    // The server streams large messages; this client reads none of them
    // (nor its pings) until the server gave up on it.
    send(&mut ws, "4stream").await;
    let reasons = within("the server to give up", async {
        loop {
            let closes = server.log.closes();
            if !closes.is_empty() {
                return closes;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        matches!(
            reasons.as_slice(),
            [CloseReason::Backpressure | CloseReason::PingTimeout]
        ),
        "{reasons:?}"
    );
    // The server let go of the connection too, rather than wait for this
    // client to take its close frame: once it has had a pingTimeout (five
    // times over) to give up, what the kernel buffered ends. The outbox's
    // bound in bytes may close it before the socket's buffers are full:
    // then the close frame fits in them, and says "try again later".
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut close_codes = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(frame)) = ws.next().await {
            if let Frame::Close(close) = frame {
                close_codes.push(close.map(|c| u16::from(c.code)));
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the connection was left open");
    assert!(
        close_codes.iter().all(|c| *c == Some(1013)),
        "{close_codes:?}"
    );
}

// ---------------------------------------------------------------------------
// Hardening: what a stranger can make the server hold or do
// ---------------------------------------------------------------------------

use tokio_tungstenite::tungstenite::protocol::frame::Frame as RawFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Waits for the server's close frame; gives its code.
async fn close_code(ws: &mut Ws) -> u16 {
    within("the server's close frame", async {
        loop {
            match ws.next().await {
                Some(Ok(Frame::Close(Some(close)))) => return u16::from(close.code),
                Some(Ok(Frame::Close(None))) => return 1005,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("the connection failed without a close frame: {e}"),
                None => panic!("the connection ended without a close frame"),
            }
        }
    })
    .await
}

async fn send_raw(ws: &mut Ws, frame: RawFrame) {
    within("a WebSocket send", ws.send(Frame::Frame(frame)))
        .await
        .expect("send");
}

#[tokio::test]
async fn a_repeated_sid_is_refused_and_names_no_session() {
    let server = Server::start(QUIET).await;
    let (victim, _) = Polling::open(&server, "/engine.io/").await;
    let http = reqwest::Client::new();
    let twice = format!(
        "/engine.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA&sid={}",
        victim.sid
    );
    assert_eq!(refusal_code(http_get(&http, &server.http(&twice)).await), 3);
    let posted = http_post(&http, &server.http(&twice), "4stolen".into()).await;
    assert_eq!(refusal_code(posted), 3);
    // The victim's session neither lost its outbox nor got the post.
    victim.send("4mine").await;
    assert_eq!(victim.recv().await, ["4mine"]);
}

#[tokio::test]
async fn a_websocket_opens_on_get_only() {
    let server = Server::start(QUIET).await;
    let http = reqwest::Client::new();
    let url = server.http("/engine.io/?EIO=4&transport=websocket");
    let answer = http
        .post(&url)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    assert_eq!(refusal_code((status, answer.text().await.unwrap())), 2);
}

#[tokio::test]
async fn sio_nothing_but_a_connect_before_a_namespace_is_joined() {
    let server = Server::start(QUIET).await;
    for first in [
        r#"42["hello"]"#,
        "41",
        r#"31[]"#,
        r#"451-["x",{"_placeholder":true,"num":0}]"#,
    ] {
        let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
        send(&mut ws, first).await;
        assert_eq!(close_code(&mut ws).await, 1002, "{first}");
    }
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    send_binary(&mut ws, b"\x01\x02").await;
    assert_eq!(
        close_code(&mut ws).await,
        1002,
        "an attachment nobody announced"
    );
    // Nor a fragmented message, however small: it is closed at its first
    // fragment, not at the fragment timeout.
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    send_raw(
        &mut ws,
        RawFrame::message(&b"40"[..], OpCode::Data(Data::Text), false),
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 1002, "a first fragment");
    // A whole message over the CONNECT's bound is refused before it is read.
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    send(&mut ws, &format!("42[\"{}\"]", "x".repeat(20_000))).await;
    assert_eq!(close_code(&mut ws).await, 1009, "a big message");
}

#[tokio::test]
async fn sio_a_connect_is_small() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    let auth = json!({ "token": "t".repeat(17_000) });
    send(&mut ws, &format!("40{auth}")).await;
    assert_eq!(close_code(&mut ws).await, 1009);
    // A token of several KB is fine.
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    let (id, _) = join(
        &mut ws,
        "/",
        Some(&json!({ "token": "t".repeat(12_000) }).to_string()),
    )
    .await;
    assert_eq!(id.len(), 20, "joined");
}

#[tokio::test]
async fn sio_one_connect_per_namespace() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    join(&mut ws, "/", None).await;
    send(&mut ws, "40").await;
    assert_eq!(close_code(&mut ws).await, 1002);
    // Over long-polling, many in one body: one socket at most, and the
    // session ends.
    let (polling, _) = Polling::open(&server, "/socket.io/").await;
    let body = vec!["40"; 20].join(&SEP.to_string());
    let (status, _) = polling.post(body).await;
    assert_eq!(status, 400);
    polling.expect_gone().await;
}

#[tokio::test]
async fn sio_leaving_the_last_namespace_closes_the_transport() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    join(&mut ws, "/", None).await;
    join(&mut ws, "/custom", None).await;
    send(&mut ws, "41/custom,").await;
    send(&mut ws, r#"42["still"]"#).await;
    assert_eq!(recv_text(&mut ws).await, r#"42["still"]"#);
    send(&mut ws, "41").await;
    assert_eq!(close_code(&mut ws).await, 1000);
}

#[tokio::test]
async fn sio_binary_is_refused_where_none_is_taken() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = sio_ws(&server, "/plain/").await;
    send(&mut ws, r#"451-["x",{"_placeholder":true,"num":0}]"#).await;
    assert_eq!(close_code(&mut ws).await, 1003, "before CONNECT");
    let (mut ws, _) = sio_ws(&server, "/plain/").await;
    join(&mut ws, "/", None).await;
    send(&mut ws, r#"451-["x",{"_placeholder":true,"num":0}]"#).await;
    assert_eq!(close_code(&mut ws).await, 1003, "an event");
    let (mut ws, _) = sio_ws(&server, "/plain/").await;
    join(&mut ws, "/", None).await;
    send_binary(&mut ws, b"\x01").await;
    assert_eq!(close_code(&mut ws).await, 1003, "a binary message");
    // Over long-polling: the body is refused and the session ends.
    let (polling, _) = Polling::open(&server, "/plain/").await;
    polling.send("40").await;
    let (status, _) = polling
        .post(format!(
            "451-[\"x\",{{\"_placeholder\":true,\"num\":0}}]{SEP}bAQI="
        ))
        .await;
    assert_eq!(status, 400);
    polling.expect_gone().await;
}

#[tokio::test]
async fn sio_attachments_count_against_the_packet_bound_and_a_deadline() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    join(&mut ws, "/", None).await;
    let two = r#"452-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    send(&mut ws, two).await;
    send_binary(&mut ws, &vec![1; MAX_PAYLOAD / 2 + 1]).await;
    send_binary(&mut ws, &vec![2; MAX_PAYLOAD / 2 + 1]).await;
    assert_eq!(close_code(&mut ws).await, 1009);
    // Announced, never finished: the connection ends at the deadline.
    let (mut ws, _) = sio_ws(&server, "/socket.io/").await;
    join(&mut ws, "/", None).await;
    send(&mut ws, two).await;
    send_binary(&mut ws, b"one of two").await;
    close_code(&mut ws).await;
}

#[tokio::test]
async fn sio_an_event_is_decided_on_its_name_before_its_arguments() {
    // A name the namespace drops is not parsed: its arguments may be
    // anything, even what is not JSON, and the connection goes on.
    let head = sockgate_engine::sio::peek_event(r#"2/chat,12["typing",{"x":[1,2"#).unwrap();
    assert_eq!(
        (head.namespace, head.id, head.name.as_str()),
        ("/chat", Some(12), "typing")
    );
    assert!(sockgate_engine::sio::peek_event(r#"2[42,"x"]"#).is_err());
    assert!(sockgate_engine::sio::peek_event(r#"0{"token":"x"}"#).is_err());
}

#[tokio::test]
async fn websocket_unfinished_fragments_close_after_the_fragment_timeout() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    send_raw(
        &mut ws,
        RawFrame::message(&b"4hel"[..], OpCode::Data(Data::Text), false),
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 1002);
    assert_eq!(server.closed_sessions().await, [CloseReason::ProtocolError]);
}

#[tokio::test]
async fn websocket_fragments_are_put_together_under_the_payload_bound() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    send_raw(
        &mut ws,
        RawFrame::message(&b"4hel"[..], OpCode::Data(Data::Text), false),
    )
    .await;
    send_raw(
        &mut ws,
        RawFrame::message(&b"lo"[..], OpCode::Data(Data::Continue), true),
    )
    .await;
    assert_eq!(recv_text(&mut ws).await, "4hello");
    let half = vec![b'a'; MAX_PAYLOAD / 2 + 1];
    let mut first = b"4".to_vec();
    first.extend_from_slice(&half);
    send_raw(
        &mut ws,
        RawFrame::message(first, OpCode::Data(Data::Text), false),
    )
    .await;
    send_raw(
        &mut ws,
        RawFrame::message(half, OpCode::Data(Data::Continue), true),
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 1009);
}

#[tokio::test]
async fn websocket_protocol_errors_and_bad_text_say_why() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    send(&mut ws, "9").await;
    assert_eq!(close_code(&mut ws).await, 1002, "an unknown packet type");
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    send_raw(
        &mut ws,
        RawFrame::message(&b"4\xff\xfe"[..], OpCode::Data(Data::Text), true),
    )
    .await;
    assert_eq!(
        close_code(&mut ws).await,
        1007,
        "a text frame that is not UTF-8"
    );
}

#[tokio::test]
async fn websocket_outbox_is_bounded_in_bytes() {
    let server = Server::start(QUIET).await;
    let (mut ws, _) = ws_open(&server, "/engine.io/").await;
    // 10 messages of 50 KB: fewer packets than the outbox holds, more
    // bytes.
    send(&mut ws, "4big:10").await;
    assert_eq!(close_code(&mut ws).await, 1013);
    assert_eq!(server.closed_sessions().await, [CloseReason::Backpressure]);
}

#[tokio::test]
async fn polling_body_is_bounded_in_packets_and_one_at_a_time() {
    let server = Server::start(QUIET).await;
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    let body = vec!["4x"; 300].join(&SEP.to_string());
    let (status, _) = polling.post(body).await;
    assert_eq!(status, 400);
    polling.expect_gone().await;
    // A second body while the first is still arriving.
    let (polling, _) = Polling::open(&server, "/engine.io/").await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let path = polling
        .url
        .trim_start_matches(&format!("http://{}", server.addr));
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: 100\r\n\r\n4part",
        server.addr
    );
    tokio::io::AsyncWriteExt::write_all(&mut slow, head.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = polling.post("4second").await;
    assert_eq!(status, 400);
    polling.expect_gone().await;
}
