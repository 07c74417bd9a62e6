//! The server's admin HTTP API (`/api/publish`, `/api/revocations`), with a
//! Bearer key. One keep-alive connection is reused across calls.

use std::time::Duration;

use serde_json::Value;

/// An API client for one server.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// An answer: status and JSON body (`Null` when the body is not JSON; the
/// text is in `text`).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body parsed as JSON; `Null` when it is not JSON.
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `HTTP 404: {...}`, shortened.
    pub fn describe(&self) -> String {
        let mut text = self.text.trim().to_owned();
        if text.len() > 200 {
            text.truncate(200);
            text.push('…');
        }
        format!("HTTP {}: {text}", self.status)
    }
}

impl Api {
    /// `base` is `http://host:port`.
    pub fn new(base: &str, key: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        })
    }

    /// `POST {base}{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer, String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| format!("POST {path}: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, body, text })
    }
}
