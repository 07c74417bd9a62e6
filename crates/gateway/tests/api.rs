//! The admin API and the dashboard's endpoints, called in-process on the
//! `app()` router with `oneshot`: no socket, no port.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use sockgate::config::Secret;
use sockgate::store::{OnDisk, Revocations};
use sockgate::{Gateway, Lifecycle, app};
use sockgate_auth::{Rules, SourcePolicy, Verifier, VerifyKey};
use tower::ServiceExt;

const SECRET: &str = "oneshot-secret-oneshot-secret-oneshot";
const KEY: &str = "oneshot-api-key-oneshot";

async fn router() -> Router {
    let rules = Rules::default();
    let key = VerifyKey::hmac(SECRET.as_bytes(), &rules).unwrap();
    let verifier = Verifier::new(rules).with_hmac(key);
    let dir = std::env::temp_dir().join(format!(
        "sockgate-oneshot-{}-{}",
        std::process::id(),
        sockgate_core::session::random_alphanumeric(8)
    ));
    let revocations = Revocations::open(&dir).await.unwrap();
    let gw = Gateway::new(
        verifier,
        SourcePolicy::default(),
        revocations,
        Lifecycle::default(),
    );
    app(Arc::new(gw), Some(Secret(KEY.into()))).0
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let res = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_endpoint_needs_the_key() {
    let r = router().await;
    for (method, path) in [
        (Method::GET, "/api/sessions"),
        (Method::GET, "/api/revocations"),
        (Method::GET, "/api/stats"),
        (Method::POST, "/api/users/alice/disconnect"),
        (Method::DELETE, "/api/sessions/x"),
    ] {
        for key in [None, Some("wrong-key-wrong-key-wrong")] {
            let (status, body) = call(&r, method.clone(), path, key, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(code(&body), "UNAUTHORIZED");
        }
    }
    let (status, body) = call(&r, Method::GET, "/api/sessions", Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "sessions": [] }));
}

#[tokio::test]
async fn a_user_revocation_is_answered_and_listed() {
    let r = router().await;
    let revoke = json!({ "userId": "alice", "issuedBefore": 1_795_261_000u64 });
    let (status, body) = call(
        &r,
        Method::POST,
        "/api/revocations",
        Some(KEY),
        Some(revoke),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["revoked"]["userId"], "alice");
    assert_eq!(body["ended"], 0);
    let (status, body) = call(&r, Method::GET, "/api/revocations", Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["users"][0]["userId"], "alice");
}

#[tokio::test]
async fn bad_bodies_are_invalid_requests_and_change_nothing() {
    let r = router().await;
    for bad in [
        json!({}),
        json!({ "jti": "x" }),
        json!({ "userId": "alice", "jti": "x", "expiresAt": 1 }),
        json!({ "userId": 5 }),
        json!({ "userId": "alice", "surprise": true }),
        json!({ "jti": "x", "expiresAt": 253_402_300_800u64 }),
    ] {
        let (status, body) = call(
            &r,
            Method::POST,
            "/api/revocations",
            Some(KEY),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(code(&body), "INVALID_REQUEST", "{bad}");
    }
    let (_, listed) = call(&r, Method::GET, "/api/revocations", Some(KEY), None).await;
    assert_eq!(listed, json!({ "tokens": [], "users": [] }));
}

#[tokio::test]
async fn reserved_events_cannot_be_published_and_unknown_things_are_not_found() {
    let r = router().await;
    for event in [
        "session:end",
        "auth:expiring",
        "room:message",
        "connect",
        "disconnect",
    ] {
        let publish = json!({ "user": "alice", "event": event, "data": {} });
        let (status, body) = call(&r, Method::POST, "/api/publish", Some(KEY), Some(publish)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{event}");
        assert_eq!(code(&body), "INVALID_REQUEST");
    }
    let (status, body) = call(
        &r,
        Method::DELETE,
        "/api/sessions/no-such-session",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "NOT_FOUND");
    let (status, body) = call(&r, Method::GET, "/api/no-such-endpoint", Some(KEY), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "NOT_FOUND");
}

#[tokio::test]
async fn stats_start_empty_and_the_dashboard_needs_its_own_login() {
    let r = router().await;
    let (status, stats) = call(&r, Method::GET, "/api/stats", Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["connections"], 0);
    assert_eq!(stats["handshakes"], json!({ "ok": 0, "refused": {} }));
    assert_eq!(stats["authSuccessRate"], Value::Null);
    assert_eq!(stats["nodes"][0]["redis"], "off");
    // The API key is no dashboard login.
    let (status, _) = call(&r, Method::GET, "/dashboard/session", Some(KEY), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&r, Method::GET, "/dashboard/events", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A dashboard login post from the dashboard's own origin, from `from`
/// (none: a request without a known address, as `oneshot` makes them).
fn login(key: &str, from: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/dashboard/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "sockgate.test")
        .header(header::ORIGIN, "http://sockgate.test")
        .body(Body::from(format!("key={key}")))
        .unwrap();
    if let Some(ip) = from {
        let peer: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
    }
    req
}

#[tokio::test]
async fn dashboard_logins_are_checked_one_at_a_time_per_address_and_wrong_keys_are_slow() {
    let r = router().await;
    let started = std::time::Instant::now();
    let (first, second, elsewhere) = tokio::join!(
        r.clone()
            .oneshot(login("a-wrong-guess-a-wrong-guess", Some("192.0.2.1"))),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            r.clone()
                .oneshot(login("another-guess-another-guess", Some("192.0.2.1")))
                .await
        },
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            r.clone().oneshot(login(KEY, Some("192.0.2.2"))).await
        }
    );
    let (first, second, elsewhere) = (first.unwrap(), second.unwrap(), elsewhere.unwrap());
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.headers()[header::LOCATION], "/dashboard?denied");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "a wrong key takes its second"
    );
    assert_eq!(
        second.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "not checked while the first held its address's turn"
    );
    // Another address is not held up by it: the right key logs in, with a cookie.
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
    assert_eq!(elsewhere.headers()[header::LOCATION], "/dashboard");
    let cookie = elsewhere.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains(KEY));
    // Once the turn is free, the right key logs in from the first address too.
    let ok = r
        .clone()
        .oneshot(login(KEY, Some("192.0.2.1")))
        .await
        .unwrap();
    assert_eq!(ok.headers()[header::LOCATION], "/dashboard");
    // Without a known address, requests share one turn.
    let (a, b) = tokio::join!(
        r.clone().oneshot(login("wrong-wrong-wrong-wrong", None)),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            r.clone().oneshot(login(KEY, None)).await
        }
    );
    assert_eq!(a.unwrap().headers()[header::LOCATION], "/dashboard?denied");
    assert_eq!(b.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn dashboard_junk_takes_no_login_turn() {
    let r = router().await;
    let mut foreign = login(KEY, Some("192.0.2.1"));
    foreign
        .headers_mut()
        .insert(header::ORIGIN, "http://elsewhere.test".parse().unwrap());
    let refused = r.clone().oneshot(foreign).await.unwrap();
    assert_eq!(refused.headers()[header::LOCATION], "/dashboard?denied");
    let mut not_a_form = login(KEY, Some("192.0.2.1"));
    *not_a_form.body_mut() = Body::from("nokey=1");
    let refused = r.clone().oneshot(not_a_form).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    // Neither took the address's turn: the right key logs in at once.
    let ok = r
        .clone()
        .oneshot(login(KEY, Some("192.0.2.1")))
        .await
        .unwrap();
    assert_eq!(ok.headers()[header::LOCATION], "/dashboard");
}
