//! The admin HTTP API under `/api`, for the backend: list and end sessions,
//! revoke tokens and users.
//!
//! Mounted only when an API key is configured; every request must carry
//! `Authorization: Bearer <key>`, compared in constant time. JSON in and
//! out; errors are `{ "error": { "code", "message" } }` with the stable
//! codes of `docs/errors.md`. Reference: `docs/api.md`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use sockgate_auth::{AuthError, ErrorCode};
use subtle::ConstantTimeEq;

use sockgate_core::Revoked;
use sockgate_core::clock::unix_now;
use sockgate_core::revocation::{MAX_API_TIME, RevocationList};
use sockgate_core::rooms::{self, UserRoom};
use sockgate_core::stats::Summary;

use crate::Gateway;
use crate::config::Secret;
use sockgate_protocol::publish::{PublishRequest, Published, Target};
use sockgate_protocol::requests::MAX_HISTORY_LIMIT;
use sockgate_protocol::rooms::{MAIN_NAMESPACE, RoomKey, Sockets, SocketsRequest};

/// Largest request body accepted (`/api/publish` allows the publish limit
/// plus room for the envelope instead).
pub const MAX_BODY: usize = 64 * 1024;
/// Most rooms one `/api/publish` may name.
/// Longest `jti` or user id accepted in a revocation.
const MAX_ID: usize = 256;

/// The API routes, guarded by `key`; the server nests them under `/api`.
pub fn router(gateway: Arc<Gateway>, key: Secret) -> Router {
    let key = Arc::new(key);
    let publish_limit = MAX_BODY.max(gateway.node.limits().max_payload + 16 * 1024);
    Router::new()
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", delete(end_session))
        .route("/users/{user_id}/disconnect", post(disconnect_user))
        .route("/revocations", post(revoke).get(list_revocations))
        .route(
            "/publish",
            // Room for the publish limit plus the envelope around `data`.
            post(publish).layer(DefaultBodyLimit::max(publish_limit)),
        )
        .route("/rooms/{room}/members", get(room_members))
        .route("/rooms/{room}/history", get(room_history))
        .route("/rooms/{room}/join", post(sockets_join))
        .route("/rooms/{room}/leave", post(sockets_leave))
        .route("/stats", get(stats))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(publish_limit, read_body))
        .layer(middleware::from_fn_with_state(key, require_key))
        .with_state(gateway)
}

/// The routes of `router` behind the admin key, for routes outside `/api`
/// (`/metrics`). A route layer: unknown paths stay 404s.
pub fn behind_key(router: Router, key: Secret) -> Router {
    router.route_layer(middleware::from_fn_with_state(Arc::new(key), require_key))
}

async fn require_key(State(key): State<Arc<Secret>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(key.expose().as_bytes())) {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or wrong API key",
        )
        .into_response()
    }
}

/// How much of an oversized body is read and thrown away before the answer,
/// and for how long at most.
const DISCARD_MAX: usize = 8 << 20;
const DISCARD_TIME: Duration = Duration::from_secs(5);

/// Reads the whole body before a handler runs; one larger than `limit` is
/// answered `413 PAYLOAD_TOO_LARGE`.
///
/// The rest of an oversized body is read and thrown away first (up to
/// [`DISCARD_MAX`] bytes or [`DISCARD_TIME`]): a client still writing when
/// the server closes the connection gets a broken pipe instead of the
/// answer. Node's HTTP client did, 18 times out of 20, posting 3 MB.
async fn read_body(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::bad_request("the body could not be read").into_response();
        };
        if read.len() + chunk.len() > limit {
            let _ = tokio::time::timeout(DISCARD_TIME, discard(&mut stream)).await;
            let mut answer = ApiError::too_large(limit).into_response();
            answer
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return answer;
        }
        read.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(read))).await
}

/// Reads up to [`DISCARD_MAX`] bytes of what is left of a body.
async fn discard(stream: &mut axum::body::BodyDataStream) {
    let mut discarded = 0;
    while discarded < DISCARD_MAX {
        match stream.next().await {
            Some(Ok(chunk)) => discarded += chunk.len(),
            _ => return,
        }
    }
}

/// An API error: HTTP status plus the stable code.
pub struct ApiError {
    status: StatusCode,
    error: AuthError,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            error: AuthError::new(code, message.into()),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("body larger than {limit} bytes"),
        )
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "revocation store failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "revocation store failed",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.error.code, "message": self.error.message } });
        (self.status, Json(body)).into_response()
    }
}

/// Bodies over a route's own limit (every body is read whole first, see
/// `read_body`) are 413 like those over the API's.
impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::too_large(MAX_BODY);
        }
        Self::bad_request(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionQuery {
    user: Option<String>,
}

async fn list_sessions(
    State(gw): State<Arc<Gateway>>,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query?;
    let mut sessions = gw.node.list_sessions(query.user.as_deref()).await;
    sessions.sort_by(|a, b| (a.connected_at, &a.session_id).cmp(&(b.connected_at, &b.session_id)));
    Ok(Json(json!({ "sessions": sessions })))
}

async fn end_session(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such session",
        )
    };
    if !gw.node.kick(&id).await {
        return Err(not_found());
    }
    Ok(Json(json!({ "ended": 1 })))
}

async fn disconnect_user(
    State(gw): State<Arc<Gateway>>,
    Path(user_id): Path<String>,
) -> Json<serde_json::Value> {
    Json(json!({ "ended": gw.node.kick_user(&user_id).await }))
}

/// `{ jti, expiresAt }` or `{ userId, issuedBefore? }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RevocationRequest {
    jti: Option<String>,
    expires_at: Option<u64>,
    user_id: Option<String>,
    issued_before: Option<u64>,
}

async fn revoke(
    State(gw): State<Arc<Gateway>>,
    body: Result<Json<RevocationRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(req) = body?;
    match (req.jti, req.user_id) {
        (Some(jti), None) => {
            check_id("jti", &jti)?;
            if req.issued_before.is_some() {
                return Err(ApiError::bad_request(
                    "issuedBefore goes with userId, not jti",
                ));
            }
            let expires_at = req.expires_at.ok_or_else(|| {
                ApiError::bad_request(
                    "expiresAt (the token's exp, Unix seconds) is required with jti",
                )
            })?;
            check_time("expiresAt", expires_at)?;
            let done = gw
                .node
                .revoke_token(&jti, expires_at)
                .await
                .map_err(ApiError::internal)?;
            let revoked = json!({ "jti": jti, "expiresAt": done.expires_at });
            Ok((StatusCode::CREATED, Json(revocation_answer(revoked, done))))
        }
        (None, Some(user_id)) => {
            check_user_id("userId", &user_id)?;
            if req.expires_at.is_some() {
                return Err(ApiError::bad_request("expiresAt goes with jti, not userId"));
            }
            let issued_before = req.issued_before.unwrap_or_else(|| unix_now() + 1);
            check_time("issuedBefore", issued_before)?;
            let done = gw
                .node
                .revoke_user(&user_id, issued_before)
                .await
                .map_err(ApiError::internal)?;
            let revoked = json!({ "userId": user_id, "issuedBefore": issued_before });
            Ok((StatusCode::CREATED, Json(revocation_answer(revoked, done))))
        }
        _ => Err(ApiError::bad_request(
            "give either { jti, expiresAt } or { userId, issuedBefore }",
        )),
    }
}

/// `{ revoked, ended }`, and in a cluster `shared`: whether the other nodes
/// were told now (`false`: Redis is unreachable; they are told when it is back).
fn revocation_answer(revoked: serde_json::Value, done: Revoked) -> serde_json::Value {
    let mut answer = json!({ "revoked": revoked, "ended": done.ended });
    if let Some(shared) = done.shared {
        answer["shared"] = shared.into();
    }
    answer
}

/// Latest time accepted: the end of year 9999. Larger values (up to 2^64)
/// wrapped negative in the store and were lost at restart.
const MAX_TIME: u64 = MAX_API_TIME;

fn check_time(field: &str, value: u64) -> Result<(), ApiError> {
    if value > MAX_TIME {
        return Err(ApiError::bad_request(format!(
            "{field} must be a Unix time in seconds, at most {MAX_TIME}"
        )));
    }
    Ok(())
}

/// The rules the handshake applies to the user claim.
fn check_user_id(field: &str, value: &str) -> Result<(), ApiError> {
    if !sockgate_auth::identity::is_valid_user_id(value) {
        return Err(ApiError::bad_request(format!(
            "{field} must be 1 to {MAX_ID} bytes, without whitespace or control characters"
        )));
    }
    Ok(())
}

fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_ID {
        return Err(ApiError::bad_request(format!(
            "{field} must be 1 to {MAX_ID} bytes"
        )));
    }
    Ok(())
}

async fn list_revocations(State(gw): State<Arc<Gateway>>) -> Json<RevocationList> {
    Json(gw.node.revocations().list())
}

async fn publish(
    State(gw): State<Arc<Gateway>>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<Published>, ApiError> {
    let Json(req) = body?;
    let publish = req.into_publish().map_err(ApiError::bad_request)?;
    if publish.except_session.is_some() {
        return Err(ApiError::bad_request(
            "exceptSession is for the app's replies (the sender of an event); a publish here reaches every socket of its target",
        ));
    }
    let foreign = match &publish.target {
        Target::Room(room) => foreign_user_room(std::slice::from_ref(room), gw.node.user_room()),
        Target::Rooms(rooms) => foreign_user_room(rooms, gw.node.user_room()),
        Target::User(_) => None,
    };
    let published = gw.node.publish(publish).await.map_err(|error| ApiError {
        status: match error.code {
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BackendUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        },
        error,
    })?;
    crate::telemetry::message_out("publish", published.delivered as u64);
    if let Some(room) = foreign.filter(|_| published.delivered == 0 && !published.duplicate) {
        hint_user_room(&gw, &room);
    }
    Ok(Json(published))
}

/// A publish that reached no one, to a room named like another server's
/// per-user rooms (`user-42` where sockgate's are `user:42`), is most
/// likely an app that moved here with its old names: said once, in the log.
fn hint_user_room(gw: &Gateway, room: &str) {
    let ours = gw.node.user_room();
    if gw.hinted_user_room.swap(true, Ordering::Relaxed) {
        return;
    }
    tracing::warn!(
        target: "sockgate::api",
        room = %room,
        user_room = %ours.template(),
        "a publish to {room} reached no one: users' own rooms here are named {}; \
         publish with {{\"user\": id}}, or set SOCKGATE_USER_ROOM to your app's template \
         (for example user-{{id}})",
        ours.template()
    );
}

/// The first of `rooms` named like another server's per-user rooms.
fn foreign_user_room(rooms: &[String], ours: &UserRoom) -> Option<String> {
    rooms
        .iter()
        .find(|room| looks_like_a_user_room(room, ours))
        .cloned()
}

/// `user-42`, `user_42`, `users:42`, `user.42`, `user/42`: `user` or
/// `users`, one separator, an id; and not a room of our own template.
fn looks_like_a_user_room(room: &str, ours: &UserRoom) -> bool {
    if ours.is_user_room(room) {
        return false;
    }
    let lower = room.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("users")
        .or_else(|| lower.strip_prefix("user"));
    let mut chars = rest.unwrap_or_default().chars();
    matches!(chars.next(), Some('-' | '_' | ':' | '.' | '/' | '#')) && chars.next().is_some()
}

fn room_error(e: AuthError) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        error: e,
    }
}

/// `POST /api/rooms/{room}/join { user | sessionId | room }`: the sockets
/// named, on every node, join `{room}` (`{ room }`: every socket in that
/// room, `socketsJoin`). Answers `{ moved }`, the sockets moved on this
/// node.
async fn sockets_join(
    State(gw): State<Arc<Gateway>>,
    Path(room): Path<String>,
    body: Result<Json<SocketsRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    move_sockets(&gw, &room, body?.0, true).await
}

/// `POST /api/rooms/{room}/leave { user | sessionId | room }`: the sockets
/// named, on every node, leave `{room}` (`socketsLeave`).
async fn sockets_leave(
    State(gw): State<Arc<Gateway>>,
    Path(room): Path<String>,
    body: Result<Json<SocketsRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    move_sockets(&gw, &room, body?.0, false).await
}

async fn move_sockets(
    gw: &Gateway,
    room: &str,
    who: SocketsRequest,
    join: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ns = who.namespace().map(str::to_owned);
    let key = room_key(gw, ns.as_deref(), room)?;
    let who = match who.into_sockets().map_err(ApiError::bad_request)? {
        Sockets::Room(from) => Sockets::Room(room_key(gw, ns.as_deref(), &from)?),
        who => who,
    };
    let moved = gw
        .node
        .move_sockets(who, &key, join)
        .await
        .map_err(|error| ApiError {
            status: match error.code {
                ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            },
            error,
        })?;
    Ok(Json(json!({ "moved": moved })))
}

async fn room_members(
    State(gw): State<Arc<Gateway>>,
    Path(room): Path<String>,
    query: Result<Query<InNamespace>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query?;
    let key = room_key(&gw, query.namespace.as_deref(), &room)?;
    Ok(Json(
        json!({ "room": room, "members": gw.node.room_members(&key).await }),
    ))
}

/// `?namespace=`: the namespace of the room named in the path (`/` when
/// not given).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InNamespace {
    namespace: Option<String>,
}

/// The key of `room` of namespace `ns`: `ROOM_INVALID` for a bad name,
/// `INVALID_REQUEST` for a namespace that is not served.
fn room_key(gw: &Gateway, ns: Option<&str>, room: &str) -> Result<String, ApiError> {
    rooms::validate(room).map_err(room_error)?;
    let ns = ns.unwrap_or(MAIN_NAMESPACE);
    if gw.node.namespaces().find(ns).is_none() {
        return Err(ApiError::bad_request(format!(
            "namespace {ns:?} is not served"
        )));
    }
    Ok(RoomKey::new(ns, room).key())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    since: Option<String>,
    limit: Option<usize>,
    namespace: Option<String>,
}

/// `GET /api/rooms/{room}/history?since=&limit=`: the newest messages kept
/// of the room, as `room:history` answers its members (without `ok`).
async fn room_history(
    State(gw): State<Arc<Gateway>>,
    Path(room): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(MAX_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit must be an integer from 1 to 100",
        ));
    }
    let key = room_key(&gw, query.namespace.as_deref(), &room)?;
    let history = gw
        .node
        .room_history(&key, query.since.as_deref(), limit)
        .await
        .map_err(|e| {
            let status = match e.code {
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::BackendUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError { status, error: e }
        })?;
    Ok(Json(history.into_ack(&room, None)).into_response())
}

/// `GET /api/stats`: the figures of every node and their sum (see
/// [`sockgate_core::stats`]).
async fn stats(State(gw): State<Arc<Gateway>>) -> Json<Summary> {
    Json(gw.node.summary().await)
}
