//! Fetching a JWKS key set over HTTP(S) for [`sockgate_auth::Jwks`].

use std::time::Duration;

use sockgate_auth::jsonwebtoken::jwk::JwkSet;
use sockgate_auth::jwks::{FetchFuture, JwksFetcher};

/// Largest key set accepted; real ones are a few KiB.
const MAX_BODY: usize = 1024 * 1024;

pub struct HttpJwks {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl HttpJwks {
    pub fn new(url: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".to_owned());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client, url })
    }

    async fn get(&self) -> Result<JwkSet, String> {
        let mut res = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("endpoint answered {}", res.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| format!("read failed: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(format!("key set larger than {MAX_BODY} bytes"));
            }
        }
        serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))
    }
}

impl JwksFetcher for HttpJwks {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(self.get())
    }
}
