//! In-process integration tests: the gateway app over a real TCP socket,
//! and JWKS fetched from a real local HTTP server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sockgate::outbound::jwks::HttpJwks;
use sockgate::store::{OnDisk, Revocations};
use sockgate::{Gateway, Lifecycle, app};
use sockgate_auth::{ErrorCode, Jwks, Rules, SourcePolicy, Verifier, VerifyKey};
use sockgate_core::session::{LimitPolicy, SessionLimit};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "integration-secret-integration-secret";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

fn hs256(sub: &str) -> String {
    let claims = json!({ "sub": sub, "exp": now() + 60 });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Speaks just enough Engine.IO v4 / Socket.IO v5 to connect to `/`.
async fn raw_connect(addr: SocketAddr, auth: &str) -> String {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(
        open.to_text().unwrap().starts_with('0'),
        "engine.io open: {open}"
    );
    ws.send(Message::text(format!("40{auth}"))).await.unwrap();
    let reply = loop {
        let msg = ws
            .next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .to_string();
        if msg != "2" {
            break msg;
        }
        ws.send(Message::text("3")).await.unwrap(); // engine.io pong
    };
    // Keep the connection open for the rest of the test.
    tokio::spawn(async move { while ws.next().await.is_some() {} });
    reply
}

async fn gateway(lifecycle: Lifecycle) -> Arc<Gateway> {
    let rules = Rules::default();
    let key = VerifyKey::hmac(SECRET.as_bytes(), &rules).unwrap();
    let dir = std::env::temp_dir().join(format!("sockgate-it-{}", rand_suffix()));
    let revocations = Revocations::open(&dir).await.unwrap();
    let verifier = Verifier::new(rules).with_hmac(key);
    Arc::new(Gateway::new(
        verifier,
        SourcePolicy::default(),
        revocations,
        lifecycle,
    ))
}

fn rand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn connected_sockets_join_their_user_room() {
    let gw = gateway(Lifecycle::default()).await;
    let (router, io) = app(gw.clone(), None);
    let addr = serve(router).await;

    let reply = raw_connect(addr, &json!({ "token": hs256("alice") }).to_string()).await;
    assert!(reply.starts_with("40{\"sid\""), "connect: {reply}");
    let reply = raw_connect(addr, "{\"token\":\"junk\"}").await;
    let refusal: serde_json::Value =
        serde_json::from_str(reply.strip_prefix("44").unwrap()).unwrap();
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .starts_with("TOKEN_INVALID: "),
        "refusal: {reply}"
    );
    assert_eq!(refusal["data"]["code"], "TOKEN_INVALID", "refusal: {reply}");

    let rooms = io.handler().rooms("/").unwrap();
    assert_eq!(rooms.len("user:alice"), 1, "alice is in her user room");
    assert_eq!(gw.node.session_count(), 1, "refused sockets must not stay");
}

#[tokio::test]
async fn sessions_own_exactly_their_deadlines() {
    let gw = gateway(Lifecycle {
        session_limit: Some(SessionLimit {
            max: 1,
            policy: LimitPolicy::EvictOldest,
        }),
        ..Lifecycle::default()
    })
    .await;
    let (router, _io) = app(gw.clone(), None);
    let addr = serve(router).await;
    let auth = json!({ "token": hs256("eve") }).to_string();
    raw_connect(addr, &auth).await;
    wait_until(|| gw.node.deadline_count() == 2).await;
    // The second session evicts the first: only its own two deadlines remain.
    // (Each handshake also schedules a check, a second later, that its socket
    // connected; those leave the set once done.)
    raw_connect(addr, &auth).await;
    wait_until(|| gw.node.session_count() == 1 && gw.node.deadline_count() == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gw.node.deadline_count(), 2);
}

async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached in 2 s");
}

/// A local identity provider whose key set and health the test controls.
#[derive(Clone, Default)]
struct Idp {
    set: Arc<Mutex<JwkSet>>,
    down: Arc<Mutex<bool>>,
}

impl Idp {
    fn publish(&self, kid: &str, private_pem: &str) {
        let key = EncodingKey::from_rsa_pem(&fixture(private_pem)).unwrap();
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        *self.set.lock().unwrap() = JwkSet { keys: vec![jwk] };
    }

    fn router(&self) -> Router {
        let idp = self.clone();
        Router::new().route(
            "/jwks.json",
            get(move || {
                let idp = idp.clone();
                async move {
                    if *idp.down.lock().unwrap() {
                        return Err(StatusCode::SERVICE_UNAVAILABLE);
                    }
                    Ok(axum::Json(idp.set.lock().unwrap().clone()))
                }
            }),
        )
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn rs256(kid: &str, private_pem: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(&fixture(private_pem)).unwrap();
    jsonwebtoken::encode(&header, &json!({ "sub": "bob", "exp": now() + 60 }), &key).unwrap()
}

fn jwks_verifier(url: &str) -> (Verifier, Arc<Jwks>) {
    let fetcher = HttpJwks::new(url).unwrap();
    let jwks = Arc::new(Jwks::new(fetcher, Rules::default(), Duration::ZERO));
    (
        Verifier::new(Rules::default()).with_jwks(jwks.clone()),
        jwks,
    )
}

#[tokio::test]
async fn jwks_over_http_with_rotation_and_outage() {
    let idp = Idp::default();
    idp.publish("k1", "rsa.key");
    let addr = serve(idp.router()).await;
    let (verifier, jwks) = jwks_verifier(&format!("http://{addr}/jwks.json"));
    assert_eq!(jwks.refresh().await, Ok(1));

    let id = verifier.verify(&rs256("k1", "rsa.key")).await.unwrap();
    assert_eq!(id.user_id, "bob");

    // The provider rotates to k2: the unknown kid makes the gateway refetch.
    idp.publish("k2", "rsa2.key");
    assert_eq!(
        verifier
            .verify(&rs256("k2", "rsa2.key"))
            .await
            .unwrap()
            .user_id,
        "bob"
    );

    // The provider goes down: the last good set keeps serving.
    *idp.down.lock().unwrap() = true;
    assert!(jwks.refresh().await.unwrap_err().contains("503"));
    assert_eq!(
        verifier
            .verify(&rs256("k2", "rsa2.key"))
            .await
            .unwrap()
            .user_id,
        "bob"
    );
    let unknown = verifier.verify(&rs256("k3", "rsa.key")).await.unwrap_err();
    assert_eq!(unknown.code, ErrorCode::TokenInvalid);
}

#[tokio::test]
async fn unreachable_jwks_is_auth_unavailable() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (verifier, jwks) = jwks_verifier(&format!("http://127.0.0.1:{port}/jwks.json"));
    assert!(jwks.refresh().await.is_err());
    let err = verifier.verify(&rs256("k1", "rsa.key")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthUnavailable);
}

/// A whole gateway in-process: `serve_until` on a port-0 listener, stopped
/// by a channel instead of a signal. The stop drains like SIGTERM: the
/// client gets `session:end SERVER_SHUTDOWN` with `reconnect: true`, and
/// `serve_until` returns.
#[tokio::test]
async fn serve_until_runs_a_gateway_and_drains_it_on_shutdown() {
    let dir = std::env::temp_dir().join(format!("sockgate-until-{}", rand_suffix()));
    let settings = sockgate::Settings {
        jwt_secret: Some(sockgate::config::Secret(SECRET.into())),
        data_dir: Some(dir),
        drain_window: Some(0.0),
        shutdown_timeout: Some(1),
        ..Default::default()
    };
    let config = sockgate::Config::from_settings(settings, false).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sockgate::serve_until(listener, config, async {
        let _ = stopped.await;
    }));

    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let _open = ws.next().await.unwrap().unwrap();
    let auth = json!({ "token": hs256("alice") });
    ws.send(Message::text(format!("40{auth}"))).await.unwrap();
    let connected = loop {
        let frame = ws.next().await.unwrap().unwrap().into_text().unwrap();
        if frame != "2" {
            break frame;
        }
        ws.send(Message::text("3")).await.unwrap(); // engine.io pong
    };
    assert!(connected.starts_with("40{"), "CONNECT: {connected}");

    stop.send(()).unwrap();
    let end = loop {
        let frame = ws.next().await.unwrap().unwrap().into_text().unwrap();
        if frame.starts_with("42[\"session:end\"") {
            break frame.to_string();
        }
    };
    assert!(end.contains("\"SERVER_SHUTDOWN\""), "{end}");
    assert!(end.contains("\"reconnect\":true"), "{end}");
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve_until returns after the drain")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}
