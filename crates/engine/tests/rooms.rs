//! Rooms and the opening request's head, over real sockets: what the
//! gateway builds on (room broadcasts that skip the publisher, server-side
//! emits to rooms, and the handshake reading the request's headers).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sockgate_engine::engine::{self, Engine};
use sockgate_engine::io::{
    self, Ack, Auth, BoxFuture, ConnectError, Io, Missed, Namespace, Offset, RequestHead, SioSocket,
};
use sockgate_engine::sio::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// `join`/`leave` a room, `say` to a room (everyone there but the sayer);
/// CONNECT needs the header `x-pass: yes` on the opening request.
struct Chat;

impl Namespace for Chat {
    fn connect<'a>(
        &'a self,
        _: &'a Arc<SioSocket>,
        _: Auth<'a>,
        request: &'a RequestHead,
    ) -> BoxFuture<'a, Result<(), ConnectError>> {
        let pass = request.headers.get("x-pass").is_some_and(|v| v == "yes");
        Box::pin(async move {
            match pass {
                true => Ok(()),
                false => Err(ConnectError {
                    message: "UNAUTHORIZED: no pass".into(),
                    data: None,
                    ..ConnectError::default()
                }),
            }
        })
    }

    fn event(&self, socket: &Arc<SioSocket>, event: String, args: Vec<Value>, ack: Option<Ack>) {
        let room = match args.first() {
            Some(Value::String(room)) => room.clone(),
            _ => return,
        };
        match event.as_str() {
            "join" => socket.join(&room),
            "leave" => socket.leave(&room),
            "say" => {
                let reached = socket.rooms().emit(&[&room], Some(socket), "said", args);
                if let Some(ack) = ack {
                    ack.send(vec![Value::from(serde_json::json!(reached))]);
                }
                return;
            }
            _ => return,
        }
        if let Some(ack) = ack {
            ack.send(vec![]);
        }
    }
}

/// Recovers every socket as `RECOVERED`, in room `r`, having missed
/// broadcasts 1 and 2, while broadcasts 2 and 3 reach it live during its
/// handshake: it gets 1, 2 and 3, once each.
struct Recovering;

const RECOVERED: &str = "RecoveredSocketId000";

impl Namespace for Recovering {
    fn connect<'a>(
        &'a self,
        socket: &'a Arc<SioSocket>,
        _: Auth<'a>,
        _: &'a RequestHead,
    ) -> BoxFuture<'a, Result<(), ConnectError>> {
        Box::pin(async move {
            socket.join("r");
            for n in [2u64, 3] {
                let args = vec![Value::from(serde_json::json!(n))];
                socket
                    .rooms()
                    .emit_at(&["r"], None, "news", args, Some(Offset(n, 0)));
            }
            let missed = [1u64, 2].map(|n| Missed {
                offset: Offset(n, 0),
                event: "news".into(),
                args: vec![Value::from(serde_json::json!(n))],
            });
            socket.set_pid("the-pid".into());
            assert!(socket.recover(RECOVERED, missed.to_vec(), Offset(2, 0)));
            assert!(
                !socket.recover("AnotherSocketId00000", vec![], Offset(9, 0)),
                "once"
            );
            Ok(())
        })
    }

    fn event(&self, _: &Arc<SioSocket>, _: String, _: Vec<Value>, _: Option<Ack>) {}
}

async fn start() -> (String, Arc<Engine<Io>>) {
    let io = Io::new(io::Config::default())
        .namespace("/", Chat)
        .namespace("/recovering", Recovering);
    serve(io).await
}

async fn serve(io: Io) -> (String, Arc<Engine<Io>>) {
    let config = engine::Config {
        ping_interval: Duration::from_secs(60),
        ping_timeout: Duration::from_secs(60),
        ..engine::Config::default()
    };
    let engine = Engine::new(config, io);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = engine.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let engine = served.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let engine = engine.clone();
                    async move { Ok::<_, Infallible>(engine.handle(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (
        format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
        engine,
    )
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket with `x-pass` set as given, past the Engine.IO open.
async fn open(url: &str, pass: &str) -> Ws {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-pass", pass.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let opened = next_text(&mut ws).await;
    assert!(opened.starts_with('0'), "{opened}");
    ws
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .unwrap();
        if let Frame::Text(text) = frame {
            return text.to_string();
        }
    }
}

/// A connected Socket.IO client.
async fn client(url: &str) -> Ws {
    let mut ws = open(url, "yes").await;
    ws.send(Frame::text("40")).await.unwrap();
    let connected = next_text(&mut ws).await;
    assert!(connected.starts_with("40{\"sid\""), "{connected}");
    ws
}

/// Sends an event with ack id `id` and waits for its ack.
async fn call(ws: &mut Ws, id: u64, event: &str, room: &str) -> String {
    let text = format!(r#"42{id}["{event}","{room}"]"#);
    ws.send(Frame::text(text)).await.unwrap();
    let prefix = format!("43{id}");
    loop {
        let text = next_text(ws).await;
        if text.starts_with(&prefix) {
            return text;
        }
    }
}

#[tokio::test]
async fn the_handshake_reads_the_opening_requests_head() {
    let (url, _) = start().await;
    let mut refused = open(&url, "no").await;
    refused.send(Frame::text("40")).await.unwrap();
    assert_eq!(
        next_text(&mut refused).await,
        r#"44{"message":"UNAUTHORIZED: no pass"}"#
    );
    client(&url).await;
}

#[tokio::test]
async fn a_room_message_reaches_the_room_but_not_the_sayer() {
    let (url, engine) = start().await;
    let (mut a, mut b, mut c) = (client(&url).await, client(&url).await, client(&url).await);
    call(&mut a, 1, "join", "lobby").await;
    call(&mut b, 1, "join", "lobby").await;
    call(&mut c, 1, "join", "other").await;
    let rooms = engine.handler().rooms("/").unwrap().clone();
    assert_eq!(rooms.len("lobby"), 2);
    assert_eq!(call(&mut a, 2, "say", "lobby").await, "432[1]", "b only");
    assert_eq!(next_text(&mut b).await, r#"42["said","lobby"]"#);
    // c is elsewhere and a said it: neither hears it (a's next frame is the
    // answer to its next call, not the message).
    assert_eq!(call(&mut c, 2, "say", "other").await, "432[0]");
    assert_eq!(call(&mut a, 3, "leave", "lobby").await, "433[]");
    assert_eq!(rooms.len("lobby"), 1);
    // A server-side emit reaches everyone in the room, once each.
    assert_eq!(rooms.emit(&["lobby", "lobby"], None, "news", vec![]), 1);
    assert_eq!(next_text(&mut b).await, r#"42["news"]"#);
}

#[tokio::test]
async fn a_closed_connection_leaves_its_rooms() {
    let (url, engine) = start().await;
    let mut a = client(&url).await;
    call(&mut a, 1, "join", "lobby").await;
    let rooms = engine.handler().rooms("/").unwrap().clone();
    assert_eq!(rooms.len("lobby"), 1);
    a.close(None).await.unwrap();
    for _ in 0..100 {
        if rooms.len("lobby") == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the room still holds the closed socket");
}

#[tokio::test]
async fn a_recovered_socket_gets_its_old_id_and_what_it_missed_before_the_rest_once() {
    let (url, _) = start().await;
    let mut ws = open(&url, "yes").await;
    ws.send(Frame::text("40/recovering,")).await.unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        format!(r#"40/recovering,{{"pid":"the-pid","sid":"{RECOVERED}"}}"#)
    );
    for n in 1..=3 {
        let expected = format!(r#"42/recovering,["news",{n},"{n}-0"]"#);
        assert_eq!(next_text(&mut ws).await, expected);
    }
}

#[tokio::test]
async fn namespaces_sharing_rooms_and_a_pattern_each_get_their_own_packets() {
    let shared = Arc::new(io::SocketRooms::new());
    let io = Io::new(io::Config::default())
        .namespace_in("/", Chat, shared.clone())
        .namespaces_matching(|ns| ns.starts_with("/t-"), Chat, shared.clone());
    let (url, engine) = serve(io).await;
    let mut main = client(&url).await;
    let mut tenant = open(&url, "yes").await;
    tenant.send(Frame::text("40/t-1,")).await.unwrap();
    assert!(next_text(&mut tenant).await.starts_with("40/t-1,{\"sid\""));
    // A name no pattern matches is refused, and the connection goes on.
    tenant.send(Frame::text("40/other,")).await.unwrap();
    assert_eq!(
        next_text(&mut tenant).await,
        r#"44/other,{"message":"Invalid namespace"}"#
    );
    call(&mut main, 1, "join", "lobby").await;
    tenant
        .send(Frame::text(r#"42/t-1,1["join","lobby"]"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut tenant).await, "43/t-1,1[]");
    assert_eq!(shared.len("lobby"), 2);
    assert!(Arc::ptr_eq(
        engine.handler().rooms("/t-9").unwrap(),
        &shared
    ));
    // One broadcast, written once in each namespace.
    assert_eq!(shared.emit(&["lobby"], None, "news", vec![]), 2);
    assert_eq!(next_text(&mut main).await, r#"42["news"]"#);
    assert_eq!(next_text(&mut tenant).await, r#"42/t-1,["news"]"#);
}

#[tokio::test]
async fn a_connection_may_not_open_more_namespaces_than_its_bound() {
    let shared = Arc::new(io::SocketRooms::new());
    let config = io::Config {
        max_namespaces: 3,
        ..io::Config::default()
    };
    let io = Io::new(config).namespaces_matching(|ns| ns.starts_with("/t-"), Chat, shared);
    let (url, _) = serve(io).await;
    let mut ws = open(&url, "yes").await;
    for n in 1..=3 {
        ws.send(Frame::text(format!("40/t-{n},"))).await.unwrap();
        assert!(
            next_text(&mut ws)
                .await
                .starts_with(&format!("40/t-{n},{{\"sid\""))
        );
    }
    // A fourth namespace on the same connection: the transport is closed.
    ws.send(Frame::text("40/t-4,")).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => return,
                Some(Ok(Frame::Text(text))) => assert!(!text.starts_with("40/t-4"), "{text}"),
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was closed");
}
