//! Fetching a JWKS key set over HTTP(S) for [`sockgate_auth::Jwks`], and
//! what the gateway's HTTP clients (this one and the authorization
//! webhook's) share: where they may be redirected and how their errors are
//! shown.

use std::time::Duration;

use reqwest::redirect;
use sockgate_auth::jsonwebtoken::jwk::JwkSet;
use sockgate_auth::jwks::{FetchFuture, JwksFetcher};

/// Largest key set accepted; real ones are a few KiB.
const MAX_BODY: usize = 1024 * 1024;
/// Most redirects followed (each within the URL's own origin).
const MAX_REDIRECTS: usize = 5;

/// A [`JwksFetcher`] that GETs the key set from a URL: 5 s per request (3 s
/// to connect), a body of at most 1 MiB, redirects only within the URL's
/// origin.
pub struct HttpJwks {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl HttpJwks {
    /// A fetcher for `url`; fails unless it is an `http` or `https` URL.
    pub fn new(url: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".to_owned());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .redirect(same_origin_redirects(&url))
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
            .map_err(|e| format!("request failed: {}", describe(e)))?;
        if res.status().is_redirection() {
            return Err(format!(
                "endpoint answered {} with a redirect to another origin; not followed",
                res.status()
            ));
        }
        if !res.status().is_success() {
            return Err(format!("endpoint answered {}", res.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| format!("read failed: {}", describe(e)))?
        {
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

/// Follows redirects only within `url`'s origin (scheme, host and port), at
/// most `MAX_REDIRECTS`. A redirect elsewhere is not followed: the 3xx
/// answer itself comes back (and is not a key set), so nobody who can make
/// the identity provider redirect can choose the keys, and an `https` URL
/// is never downgraded to `http`.
pub fn same_origin_redirects(url: &reqwest::Url) -> redirect::Policy {
    let origin = url.origin();
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS || attempt.url().origin() != origin {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// `url` as it may be shown in a log line or an error: without its query,
/// fragment, user name and password, which often carry keys.
pub fn redacted(url: &reqwest::Url) -> reqwest::Url {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown
}

/// A request error for a log line: reqwest's sentence with the URL
/// [`redacted`], then its causes (`connection refused`, a timeout).
pub fn describe(mut e: reqwest::Error) -> String {
    if let Some(url) = e.url_mut() {
        *url = redacted(url);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_only_what_names_the_endpoint() {
        let url = reqwest::Url::parse(
            "https://user:hunter2@id.example:8443/tenant/jwks.json?api_key=s3cret&x=1#frag",
        )
        .unwrap();
        let shown = redacted(&url).to_string();
        assert_eq!(shown, "https://id.example:8443/tenant/jwks.json");
    }

    #[tokio::test]
    async fn request_errors_never_show_the_query_or_credentials() {
        // Port 9 (discard) on localhost: nothing listens, the connection is refused.
        let url = "http://user:hunter2@127.0.0.1:9/jwks?api_key=s3cret";
        let jwks = HttpJwks::new(url).unwrap();
        let err = jwks.get().await.unwrap_err();
        assert!(err.contains("127.0.0.1:9/jwks"), "{err}");
        for secret in ["s3cret", "hunter2", "api_key", "user"] {
            assert!(!err.contains(secret), "{err}");
        }
    }
}
