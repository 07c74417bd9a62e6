//! The HTTP client every outbound call goes through: the authorization
//! webhook and the app's event proxy.

use std::time::Duration;

pub use super::jwks::describe;

/// A client whose requests end within `timeout` (the body read included),
/// that keeps connections alive for reuse and never follows a redirect: a
/// redirected POST would carry a user's claims wherever the redirect
/// points, and a 301/302/303 would turn it into a GET whose 200 (a login
/// page, say) reads as a yes.
pub fn build(timeout: Duration) -> Result<reqwest::Client, String> {
    builder(timeout).build().map_err(|e| e.to_string())
}

/// [`build`]'s client, on HTTP/2 over cleartext from the first byte
/// (`h2c://` URLs): one connection carries every call at once. `https://`
/// URLs get HTTP/2 from the TLS handshake (ALPN) when the server offers it.
pub fn build_h2c(timeout: Duration) -> Result<reqwest::Client, String> {
    builder(timeout)
        .http2_prior_knowledge()
        .build()
        .map_err(|e| e.to_string())
}

fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
}
