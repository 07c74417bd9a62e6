//! The reference server of the Socket.IO project's public compliance
//! suites (socketio/socket.io-protocol and socketio/engine.io-protocol,
//! `test-suite/`), on 127.0.0.1:3000:
//!
//! - `/socket.io/`: the main namespace emits `auth` with the handshake
//!   payload, answers `message` with `message-back` and acks
//!   `message-with-ack`; `/custom` emits `auth`;
//! - `/engine.io/`: a plain Engine.IO echo.
//!
//! `pingInterval` 300 ms, `pingTimeout` 200 ms, `maxPayload` 1,000,000
//! bytes, `connectTimeout` 1,000 ms, as the suites expect.
//!
//! ```text
//! cargo run -p sockgate-engine --example protocol-suite
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sockgate_engine::engine::{self, CloseReason, Engine, Handler, Message};
use sockgate_engine::io::{self, Ack, Auth, BoxFuture, ConnectError, Io, Namespace, SioSocket};
use sockgate_engine::sio::Value;
use tokio::net::TcpListener;

/// `/`: `auth` back on connect, `message` → `message-back`, and acks.
struct Main;

impl Namespace for Main {
    fn connect<'a>(
        &'a self,
        socket: &'a Arc<SioSocket>,
        auth: Auth<'a>,
        _: &'a sockgate_engine::io::RequestHead,
    ) -> BoxFuture<'a, Result<(), ConnectError>> {
        let _ = (socket, auth);
        Box::pin(async { Ok(()) })
    }

    fn connected(&self, socket: &Arc<SioSocket>, auth: Auth<'_>) {
        send_auth(socket, auth);
    }

    fn event(&self, socket: &Arc<SioSocket>, event: String, args: Vec<Value>, ack: Option<Ack>) {
        match (event.as_str(), ack) {
            ("message", _) => socket.emit("message-back", args),
            ("message-with-ack", Some(ack)) => ack.send(args),
            _ => {}
        }
    }
}

/// `/custom`: `auth` back on connect.
struct Custom;

impl Namespace for Custom {
    fn connect<'a>(
        &'a self,
        _: &'a Arc<SioSocket>,
        _: Auth<'a>,
        _: &'a sockgate_engine::io::RequestHead,
    ) -> BoxFuture<'a, Result<(), ConnectError>> {
        Box::pin(async { Ok(()) })
    }

    fn connected(&self, socket: &Arc<SioSocket>, auth: Auth<'_>) {
        send_auth(socket, auth);
    }

    fn event(&self, _: &Arc<SioSocket>, _: String, _: Vec<Value>, _: Option<Ack>) {}
}

/// `auth` with the handshake payload, `{}` without one.
fn send_auth(socket: &Arc<SioSocket>, auth: Auth<'_>) {
    let auth = match auth {
        Auth::Payload(value) => value.clone(),
        _ => Value::Object(Default::default()),
    };
    socket.emit("auth", vec![auth]);
}

/// A plain Engine.IO echo.
struct Echo;

impl Handler for Echo {
    type Data = ();

    fn open(&self, _: &Arc<engine::Socket<()>>, _: http::request::Parts) {}

    fn message(&self, socket: &Arc<engine::Socket<()>>, message: Message) {
        match message {
            Message::Text(text) => socket.send_text(text),
            Message::Binary(data) => socket.send_binary(data),
        }
    }

    fn close(&self, _: &Arc<engine::Socket<()>>, _: CloseReason) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let config = engine::Config {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        ..engine::Config::default()
    };
    let io_config = io::Config {
        connect_timeout: Duration::from_millis(1000),
        ..io::Config::default()
    };
    let sio = Engine::new(
        config.clone(),
        Io::new(io_config)
            .namespace("/", Main)
            .namespace("/custom", Custom),
    );
    let eio = Engine::new(config, Echo);
    let listener = TcpListener::bind("127.0.0.1:3000").await?;
    println!("protocol-suite server on http://127.0.0.1:3000");
    loop {
        let (stream, _) = listener.accept().await?;
        let (sio, eio) = (sio.clone(), eio.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (sio, eio) = (sio.clone(), eio.clone());
                async move {
                    let path = req.uri().path();
                    let answer = if path.starts_with("/socket.io/") {
                        sio.handle(req).await
                    } else if path.starts_with("/engine.io/") {
                        eio.handle(req).await
                    } else {
                        not_found()
                    };
                    Ok::<_, Infallible>(answer)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn not_found() -> hyper::Response<engine::Body> {
    hyper::Response::builder()
        .status(404)
        .body(engine::Body::default())
        .expect("a valid response")
}
