//! One gRPC endpoint of the app's backend (`grpc://host:port`): the calls
//! of `proto/sockgate/v1/app.proto`, whose messages are written out here
//! (the file is the contract for backend authors; a test backend loads it
//! with `@grpc/proto-loader`, so the two cannot drift unseen).
//!
//! The answers are turned into the JSON answers of the HTTP form, so that
//! one reader ([`super::reply`], [`super::connect`]) checks both.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use serde_json::{Value, json};
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_core::hooks::Event;
use tonic::transport::Channel;

use super::http::sign;

pub use messages::*;

/// The messages of `app.proto`, field for field (their meaning is
/// documented there).
#[allow(missing_docs)]
pub mod messages {
    use std::collections::HashMap;

    /// `sockgate.v1.EventRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EventRequest {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub event: String,
        #[prost(string, tag = "3")]
        pub args_json: String,
        #[prost(string, tag = "4")]
        pub user_id: String,
        #[prost(string, tag = "5")]
        pub session_id: String,
        #[prost(string, tag = "6")]
        pub claims_json: String,
        #[prost(string, repeated, tag = "7")]
        pub rooms: Vec<String>,
        #[prost(string, tag = "8")]
        pub transport: String,
        #[prost(string, tag = "9")]
        pub remote_addr: String,
        #[prost(uint64, tag = "10")]
        pub ts: u64,
    }

    /// `sockgate.v1.EventReply`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EventReply {
        #[prost(string, tag = "1")]
        pub ack_json: String,
        #[prost(message, optional, tag = "2")]
        pub error: Option<Error>,
        #[prost(string, repeated, tag = "3")]
        pub join: Vec<String>,
        #[prost(string, repeated, tag = "4")]
        pub leave: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub emit: Vec<Emit>,
        #[prost(message, repeated, tag = "6")]
        pub publish: Vec<Publish>,
        #[prost(message, optional, tag = "7")]
        pub disconnect: Option<Disconnect>,
    }

    /// `sockgate.v1.Error`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Error {
        #[prost(string, tag = "1")]
        pub code: String,
        #[prost(string, tag = "2")]
        pub message: String,
    }

    /// `sockgate.v1.Emit`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Emit {
        #[prost(string, tag = "1")]
        pub event: String,
        #[prost(string, tag = "2")]
        pub data_json: String,
    }

    /// `sockgate.v1.Publish`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Publish {
        #[prost(string, tag = "1")]
        pub room: String,
        #[prost(string, repeated, tag = "2")]
        pub rooms: Vec<String>,
        #[prost(string, tag = "3")]
        pub user: String,
        #[prost(string, tag = "4")]
        pub event: String,
        #[prost(string, tag = "5")]
        pub data_json: String,
    }

    /// `sockgate.v1.Disconnect`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Disconnect {
        #[prost(string, tag = "1")]
        pub message: String,
    }

    /// `sockgate.v1.ConnectRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConnectRequest {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub auth_json: String,
        #[prost(map = "string, string", tag = "3")]
        pub headers: HashMap<String, String>,
        #[prost(string, tag = "4")]
        pub remote_addr: String,
        #[prost(string, tag = "5")]
        pub transport: String,
        #[prost(message, optional, tag = "6")]
        pub renew: Option<Renew>,
    }

    /// `sockgate.v1.Renew`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Renew {
        #[prost(string, tag = "1")]
        pub user_id: String,
        #[prost(string, tag = "2")]
        pub session_id: String,
        #[prost(string, tag = "3")]
        pub claims_json: String,
        #[prost(uint64, tag = "4")]
        pub expires_at: u64,
    }

    /// `sockgate.v1.ConnectReply`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConnectReply {
        #[prost(string, tag = "1")]
        pub user_id: String,
        #[prost(uint64, tag = "2")]
        pub expires_at: u64,
        #[prost(string, tag = "3")]
        pub claims_json: String,
        #[prost(string, repeated, tag = "4")]
        pub rooms: Vec<String>,
        #[prost(message, optional, tag = "5")]
        pub error: Option<Error>,
    }
}

/// A gRPC endpoint: one HTTP/2 channel, reused by every call.
pub struct Endpoint {
    channel: Channel,
    key: hmac::Key,
    timeout: Duration,
}

impl Endpoint {
    /// An endpoint at `grpc://host:port`, answering within `timeout`,
    /// signing with `secret`. The channel connects on first use.
    pub fn new(url: &str, secret: &[u8], timeout: Duration) -> Result<Self, String> {
        let authority = url
            .strip_prefix("grpc://")
            .ok_or_else(|| "a gRPC URL is grpc://host:port".to_owned())?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| format!("not a URL: {e}"))?
            .timeout(timeout)
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            channel,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            timeout,
        })
    }

    /// The event call; its answer as the HTTP form's JSON.
    pub async fn event(&self, event: &Event<'_>) -> Result<Vec<u8>, AuthError> {
        let request = EventRequest {
            id: event.id.clone(),
            event: event.name.to_owned(),
            args_json: event.args.get().to_owned(),
            user_id: event.user_id.to_owned(),
            session_id: event.session_id.to_owned(),
            claims_json: Value::Object(event.claims.clone()).to_string(),
            rooms: event.rooms.clone(),
            transport: event.transport.to_owned(),
            remote_addr: event.remote_addr.clone().unwrap_or_default(),
            ts: event.ts,
        };
        let id = request.id.clone();
        let reply: EventReply = self.unary("/sockgate.v1.App/Event", &id, request).await?;
        Ok(event_answer(reply)?.to_string().into_bytes())
    }

    /// The connect call (a handshake or a renewal); its answer as the HTTP
    /// form's JSON.
    pub async fn connect(&self, request: ConnectRequest) -> Result<Vec<u8>, AuthError> {
        let id = request.id.clone();
        let reply: ConnectReply = self.unary("/sockgate.v1.App/Connect", &id, request).await?;
        Ok(connect_answer(reply)?.to_string().into_bytes())
    }

    async fn unary<Q, R>(&self, path: &'static str, id: &str, message: Q) -> Result<R, AuthError>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|_| unavailable())?;
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        let signature = sign(&self.key, unix_now(), id.as_bytes());
        request.metadata_mut().insert(
            "sockgate-signature",
            signature.parse().expect("a signature is ASCII"),
        );
        let codec = tonic_prost::ProstCodec::<Q, R>::default();
        let path = axum::http::uri::PathAndQuery::from_static(path);
        grpc.unary(request, path, codec)
            .await
            .map(tonic::Response::into_inner)
            .map_err(status_error)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unavailable() -> AuthError {
    AuthError::new(
        ErrorCode::BackendUnavailable,
        "the app's backend could not be reached",
    )
}

/// A gRPC status as the codes of the HTTP form.
fn status_error(status: tonic::Status) -> AuthError {
    match status.code() {
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => AuthError::new(
            ErrorCode::BackendTimeout,
            "the app's backend did not answer in time",
        ),
        tonic::Code::Unavailable => unavailable(),
        code => AuthError::new(
            ErrorCode::BackendError,
            format!("the app's backend answered gRPC status {code:?}"),
        ),
    }
}

/// JSON text of a `*_json` field, `None` when empty; `BACKEND_ERROR` when
/// it is not JSON.
fn json_field(text: &str) -> Result<Option<Value>, AuthError> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|_| {
        AuthError::new(
            ErrorCode::BackendError,
            "a *_json field of the answer is not JSON",
        )
    })
}

fn event_answer(r: EventReply) -> Result<Value, AuthError> {
    let mut answer = serde_json::Map::new();
    if let Some(ack) = json_field(&r.ack_json)? {
        answer.insert("ack".into(), ack);
    }
    if let Some(e) = r.error {
        answer.insert(
            "error".into(),
            json!({ "code": e.code, "message": e.message }),
        );
    }
    answer.insert("join".into(), json!(r.join));
    answer.insert("leave".into(), json!(r.leave));
    let mut emit = Vec::with_capacity(r.emit.len());
    for e in r.emit {
        emit.push(json!({ "event": e.event, "data": json_field(&e.data_json)? }));
    }
    answer.insert("emit".into(), Value::Array(emit));
    let publish: Vec<Value> = r
        .publish
        .into_iter()
        .map(publish_answer)
        .collect::<Result<_, _>>()?;
    answer.insert("publish".into(), Value::Array(publish));
    if let Some(d) = r.disconnect {
        answer.insert("disconnect".into(), json!({ "message": d.message }));
    }
    Ok(Value::Object(answer))
}

fn publish_answer(p: Publish) -> Result<Value, AuthError> {
    let mut publish = serde_json::Map::new();
    if !p.room.is_empty() {
        publish.insert("room".into(), json!(p.room));
    }
    if !p.rooms.is_empty() {
        publish.insert("rooms".into(), json!(p.rooms));
    }
    if !p.user.is_empty() {
        publish.insert("user".into(), json!(p.user));
    }
    publish.insert("event".into(), json!(p.event));
    if let Some(data) = json_field(&p.data_json)? {
        publish.insert("data".into(), data);
    }
    Ok(Value::Object(publish))
}

fn connect_answer(r: ConnectReply) -> Result<Value, AuthError> {
    if let Some(e) = r.error {
        return Ok(json!({ "error": { "code": e.code, "message": e.message } }));
    }
    let mut answer = serde_json::Map::new();
    if !r.user_id.is_empty() {
        answer.insert("userId".into(), json!(r.user_id));
    }
    if r.expires_at > 0 {
        answer.insert("expiresAt".into(), json!(r.expires_at));
    }
    if let Some(claims) = json_field(&r.claims_json)? {
        answer.insert("claims".into(), claims);
    }
    answer.insert("rooms".into(), json!(r.rooms));
    Ok(Value::Object(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_the_http_form() {
        let reply = EventReply {
            ack_json: r#"{"id":7}"#.into(),
            join: vec!["chat:1".into()],
            publish: vec![Publish {
                user: "bob".into(),
                event: "ping".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            event_answer(reply).unwrap(),
            json!({ "ack": { "id": 7 }, "join": ["chat:1"], "leave": [], "emit": [],
                    "publish": [{ "user": "bob", "event": "ping" }] })
        );
        let refused = ConnectReply {
            error: Some(Error {
                code: "NOT_LOGGED_IN".into(),
                message: "no".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            connect_answer(refused).unwrap(),
            json!({ "error": { "code": "NOT_LOGGED_IN", "message": "no" } })
        );
        assert_eq!(
            json_field("not json").unwrap_err().code,
            ErrorCode::BackendError
        );
    }
}
