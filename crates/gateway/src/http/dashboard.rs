//! The live dashboard at `/dashboard`, and the figures behind it.
//!
//! The page (`dashboard/index.html`, built into the binary) holds no data
//! and no key. Logging in posts the admin API key once, as a plain form;
//! sockgate answers with a random session cookie (`HttpOnly`,
//! `SameSite=Strict`, path `/dashboard`), never the key. The data comes over
//! Server-Sent Events (`/dashboard/events`): the last 15 minutes of points,
//! then a point, the figures and the top rooms every second. A
//! `SameSite=Strict` cookie is not sent on another site's requests, the
//! event stream sends no CORS headers, and the login and logout posts must
//! come from the dashboard's own origin: no other site can read the data or
//! act as the operator.
//!
//! Guessing the key is slowed per client address (after trusted proxies):
//! a wrong key holds its address's turn for a second, so one address tries
//! about one key a second however many connections it opens. A post from
//! another origin, or one that is not a login form, is refused before any
//! turn is taken: junk from one address never holds up the operator at
//! another.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use sockgate_core::limits::budget_key;
use sockgate_core::session::random_alphanumeric;
use sockgate_core::stats::{Point, Summary};

use crate::Gateway;
use crate::config::Secret;

const PAGE: &str = include_str!("dashboard/index.html");
const COOKIE: &str = "sockgate_dashboard";
/// How long a dashboard login lasts.
const LOGIN_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most dashboard logins at once; the oldest goes first.
const MAX_LOGINS: usize = 64;
/// How long a wrong key keeps its address's login turn.
const WRONG_KEY_PAUSE: Duration = Duration::from_secs(1);
/// Most addresses whose turn is held at once. Held turns last a second, so
/// only that many addresses trying within one second fill it; past it,
/// logins are refused until turns free up.
const MAX_TURNS: usize = 4096;
/// The largest login form read (the key is at most a few hundred bytes).
const LOGIN_FORM_MAX: usize = 4096;
/// Top rooms shown.
const TOP_ROOMS: usize = 10;

/// The dashboard's state: who is logged in, and the once-a-second ticks.
pub struct Board {
    gw: Arc<Gateway>,
    key: Secret,
    logins: Mutex<HashMap<String, Instant>>,
    ticks: broadcast::Sender<Arc<str>>,
    /// The addresses whose login turn is held, until when (see `login`).
    turns: Mutex<HashMap<IpAddr, Instant>>,
}

/// What each tick sends.
#[derive(Serialize)]
struct Tick<'a> {
    point: &'a Point,
    stats: &'a Summary,
    rooms: Vec<Room>,
}

#[derive(Serialize)]
struct Room {
    room: String,
    members: usize,
}

/// The routes under `/dashboard`, and the task that feeds them.
pub fn router(gateway: Arc<Gateway>, key: Secret) -> Router {
    let (ticks, _) = broadcast::channel(16);
    let board = Arc::new(Board {
        gw: gateway.clone(),
        key,
        logins: Mutex::default(),
        ticks,
        turns: Mutex::default(),
    });
    tokio::spawn(run_ticks(board.clone()));
    let login = post(login).layer(DefaultBodyLimit::max(LOGIN_FORM_MAX));
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/login", login)
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/session", get(session))
        .route("/dashboard/events", get(events))
        .with_state(board)
}

async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Login {
    key: String,
}

/// A form post from anywhere but the dashboard's own origin is refused:
/// no other site may log an operator in (or out).
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        // Browsers send Origin with every form post; other clients may not.
        (None, _) => get("sec-fetch-site").is_none_or(|s| s == "same-origin"),
        _ => false,
    }
}

async fn login(
    State(board): State<Arc<Board>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<Login>, axum::extract::rejection::FormRejection>,
) -> Response {
    // Checked before any turn is taken: they say nothing about the key.
    if !same_origin(&headers) {
        tracing::info!(target: "sockgate::dashboard", outcome = "ORIGIN_FORBIDDEN", "dashboard login refused");
        return Redirect::to("/dashboard?denied").into_response();
    }
    let Ok(Form(form)) = form else {
        tracing::info!(target: "sockgate::dashboard", outcome = "INVALID_REQUEST", "dashboard login refused");
        return (
            StatusCode::BAD_REQUEST,
            "a login is a form with one field, key",
        )
            .into_response();
    };
    // One key is checked at a time per address, and a wrong one keeps the
    // address's turn for WRONG_KEY_PAUSE: one address guesses one key a
    // second however many connections it opens. A try that finds its turn
    // taken is not checked.
    let client =
        peer.map(|Extension(ConnectInfo(peer))| board.gw.proxies.client(peer.ip(), &headers));
    let Some(turn) = board.take_turn(client) else {
        let retry = [(header::RETRY_AFTER, "1")];
        return (
            StatusCode::TOO_MANY_REQUESTS,
            retry,
            "a login from this address is being checked; retry in a second",
        )
            .into_response();
    };
    if !bool::from(form.key.as_bytes().ct_eq(board.key.expose().as_bytes())) {
        tracing::info!(target: "sockgate::dashboard", outcome = "UNAUTHORIZED", "dashboard login refused");
        // The turn stays held until it expires, even if this answer is
        // never waited for; the pause keeps an honest client from retrying
        // into a 429.
        tokio::time::sleep(WRONG_KEY_PAUSE).await;
        return Redirect::to("/dashboard?denied").into_response();
    }
    board.release_turn(turn);
    let token = board.open_login();
    tracing::info!(target: "sockgate::dashboard", outcome = "OK", "dashboard login");
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={}",
        LOGIN_TTL.as_secs()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response()
}

async fn logout(State(board): State<Arc<Board>>, headers: HeaderMap) -> Response {
    if same_origin(&headers)
        && let Some(token) = login_cookie(&headers)
    {
        board
            .logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token);
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response()
}

async fn session(State(board): State<Arc<Board>>, headers: HeaderMap) -> Response {
    if board.logged_in(&headers) {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "ok": true })),
        )
            .into_response()
    } else {
        unauthorized()
    }
}

fn unauthorized() -> Response {
    let body =
        serde_json::json!({ "ok": false, "code": "UNAUTHORIZED", "message": "log in first" });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

async fn events(State(board): State<Arc<Board>>, headers: HeaderMap) -> Response {
    let Some(token) = login_cookie(&headers).filter(|t| board.is_login(t)) else {
        return unauthorized();
    };
    let history = serde_json::json!({ "points": board.gw.node.stats().history() }).to_string();
    let first = tokio_stream::once(Ok::<_, Infallible>(
        Event::default().event("history").data(history),
    ));
    let watcher = board.clone();
    let ticks = BroadcastStream::new(board.ticks.subscribe())
        // A stream lives as long as its login: a logout (in any tab) or the
        // login's expiry ends it at the next tick.
        .take_while(move |_| watcher.is_login(&token))
        // A subscriber too slow for a tick skips it.
        .filter_map(|tick| tick.ok())
        .map(|json| Ok(Event::default().event("tick").data(&*json)));
    Sse::new(first.chain(ticks))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn login_cookie(headers: &HeaderMap) -> Option<String> {
    let header = headers.get(header::COOKIE)?.to_str().ok()?;
    cookie::Cookie::split_parse(header)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

impl Board {
    /// Takes `client`'s login turn for WRONG_KEY_PAUSE, or `None` while it
    /// is held (or while too many addresses hold one). Requests without a
    /// known address share one turn.
    fn take_turn(&self, client: Option<IpAddr>) -> Option<IpAddr> {
        let key = client.map_or(IpAddr::from([0, 0, 0, 0]), budget_key);
        let now = Instant::now();
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        if turns.get(&key).is_some_and(|until| *until > now) {
            return None;
        }
        if turns.len() >= MAX_TURNS {
            turns.retain(|_, until| *until > now);
            if turns.len() >= MAX_TURNS {
                return None;
            }
        }
        turns.insert(key, now + WRONG_KEY_PAUSE);
        Some(key)
    }

    /// The right key: its address may log in again at once.
    fn release_turn(&self, key: IpAddr) {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        turns.remove(&key);
    }

    fn open_login(&self) -> String {
        let token = random_alphanumeric(32);
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        logins.retain(|_, at| at.elapsed() < LOGIN_TTL);
        if logins.len() >= MAX_LOGINS
            && let Some(oldest) = logins
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, _)| t.clone())
        {
            logins.remove(&oldest);
        }
        logins.insert(token.clone(), Instant::now());
        token
    }

    fn logged_in(&self, headers: &HeaderMap) -> bool {
        login_cookie(headers).is_some_and(|token| self.is_login(&token))
    }

    fn is_login(&self, token: &str) -> bool {
        let logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        logins.get(token).is_some_and(|at| at.elapsed() < LOGIN_TTL)
    }
}

/// Once a second: the node's tick (a point of the series, the overdue
/// reconnections settled, its figures shared), and a tick for the pages
/// watching.
async fn run_ticks(board: Arc<Board>) {
    let node = &board.gw.node;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let point = node.tick().await;
        // The cluster's figures are read only for pages that watch.
        if board.ticks.receiver_count() == 0 {
            continue;
        }
        let summary = node.summary().await;
        let rooms = node
            .top_rooms(TOP_ROOMS)
            .into_iter()
            .map(|(room, members)| Room { room, members })
            .collect();
        let tick = Tick {
            point: &point,
            stats: &summary,
            rooms,
        };
        if let Ok(json) = serde_json::to_string(&tick) {
            let _ = board.ticks.send(json.into());
        }
    }
}
