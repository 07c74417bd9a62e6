//! One HTTP endpoint of the app's backend: `POST` a signed JSON body, read
//! a bounded reply.
//!
//! Every request carries `Sockgate-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>.<body>")>`: a backend that checks it refuses
//! forged calls, and one that also bounds `t` refuses replayed ones.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use serde::Serialize;
use serde_json::value::RawValue;
use sockgate_auth::{AuthError, ErrorCode};
use sockgate_core::hooks::Event;

use crate::outbound::client::{self, describe};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "sockgate-signature";

/// An endpoint: where, and the key its requests are signed with.
pub struct Endpoint {
    client: reqwest::Client,
    url: reqwest::Url,
    key: hmac::Key,
    /// The largest reply read; a longer one is `BACKEND_ERROR`.
    max_reply: usize,
}

/// The body of an event call.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    id: &'a str,
    event: &'a str,
    args: &'a RawValue,
    user_id: &'a str,
    session_id: &'a str,
    claims: &'a serde_json::Map<String, serde_json::Value>,
    rooms: &'a [String],
    namespace: &'a str,
    transport: &'a str,
    remote_addr: Option<&'a str>,
    ts: u64,
}

impl Endpoint {
    /// An endpoint at `url`, answering within `timeout`, signing with
    /// `secret`, reading replies of at most `max_reply` bytes.
    pub fn new(
        url: &str,
        secret: &[u8],
        timeout: Duration,
        max_reply: usize,
    ) -> Result<Self, String> {
        // `h2c://` is plain `http://` spoken as HTTP/2 from the start.
        let (url, h2c) = match url.strip_prefix("h2c://") {
            Some(rest) => (format!("http://{rest}"), true),
            None => (url.to_owned(), false),
        };
        let url = reqwest::Url::parse(&url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "the scheme {} is not http, https, h2c or grpc",
                url.scheme()
            ));
        }
        let client = match h2c {
            true => client::build_h2c(timeout)?,
            false => client::build(timeout)?,
        };
        Ok(Self {
            client,
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            max_reply,
        })
    }

    /// Sends `event` and returns the reply's body, or the code of what
    /// went wrong: `BACKEND_TIMEOUT`, `BACKEND_UNAVAILABLE` (unreachable,
    /// a 5xx), `BACKEND_ERROR` (any other status, a reply too large).
    pub async fn call(&self, event: &Event<'_>) -> Result<Vec<u8>, AuthError> {
        self.post(&Body {
            id: &event.id,
            event: event.name,
            args: event.args,
            user_id: event.user_id,
            session_id: event.session_id,
            claims: &event.claims,
            rooms: &event.rooms,
            namespace: event.namespace,
            transport: event.transport,
            remote_addr: event.remote_addr.as_deref(),
            ts: event.ts,
        })
        .await
    }

    /// POSTs `body` as signed JSON and returns the reply's body.
    pub async fn post(&self, body: &impl Serialize) -> Result<Vec<u8>, AuthError> {
        let body = serde_json::to_vec(body).expect("call bodies serialize");
        let signature = sign(&self.key, unix_now(), &body);
        let mut res = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(failed)?;
        let status = res.status();
        if status.is_server_error() {
            return Err(AuthError::new(
                ErrorCode::BackendUnavailable,
                format!("the app's backend answered HTTP {}", status.as_u16()),
            ));
        }
        if !status.is_success() {
            return Err(AuthError::new(
                ErrorCode::BackendError,
                format!(
                    "the app's backend answered HTTP {} (redirects are not followed)",
                    status.as_u16()
                ),
            ));
        }
        let mut reply = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(failed)? {
            if reply.len() + chunk.len() > self.max_reply {
                return Err(AuthError::new(
                    ErrorCode::BackendError,
                    format!("the reply is larger than {} bytes", self.max_reply),
                ));
            }
            reply.extend_from_slice(&chunk);
        }
        Ok(reply)
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`.
pub fn sign(key: &hmac::Key, t: u64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let mut hex = String::with_capacity(64);
    for b in tag.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("t={t},v1={hex}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A request that got no (whole) answer.
fn failed(e: reqwest::Error) -> AuthError {
    if e.is_timeout() {
        return AuthError::new(
            ErrorCode::BackendTimeout,
            "the app's backend did not answer in time",
        );
    }
    tracing::debug!(target: "sockgate::app", error = %describe(e), "call failed");
    AuthError::new(
        ErrorCode::BackendUnavailable,
        "the app's backend could not be reached",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value a backend computes (Python's `hmac.new(b"k" * 32,
    /// b"1700000000.{}", hashlib.sha256).hexdigest()`, Node's `createHmac`
    /// gives the same).
    #[test]
    fn the_signature_is_hmac_sha256_of_t_dot_body() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, "k".repeat(32).as_bytes());
        assert_eq!(
            sign(&key, 1_700_000_000, b"{}"),
            "t=1700000000,v1=0b3b35525c10b3757ffa78df69037021fc3168d8390a51a4fcb4a8d56a25b557"
        );
    }
}
