//! Which browser origins may connect (`SOCKGATE_ALLOWED_ORIGINS`).
//!
//! An entry is an exact origin (`https://app.example.com`) or, for
//! development servers that move between ports, an origin whose port is
//! `*` (`http://localhost:*`): any port of that scheme and host. `*` alone is
//! no origin: credentials (cookies) may be involved, so the list is explicit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The origins `serve --dev` allows when none are configured: the usual
/// two-server setup (an app on :3000, sockgate on :3001) works at once.
pub const DEV_ORIGINS: &str = "http://localhost:*,http://127.0.0.1:*,http://[::1]:*";

/// The allowed origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins(Vec<String>);

impl Origins {
    /// Parses a comma-separated list; `None` when it holds no origin.
    pub fn parse(list: &str) -> Result<Option<Self>, String> {
        let entries: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if entries.iter().any(|e| e == "*") {
            return Err("`*` is not an origin; list the origins that may connect".into());
        }
        Ok((!entries.is_empty()).then_some(Self(entries)))
    }

    /// Whether `origin` (an `Origin` header value) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|entry| match entry.strip_suffix(":*") {
            Some(base) => origin
                .strip_prefix(base)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())),
            None => entry == origin,
        })
    }

    /// The entries, as configured.
    pub fn entries(&self) -> &[String] {
        &self.0
    }
}

/// Whether a request comes from a page of another origin than the server's
/// own (its `Origin` names another authority than its `Host`).
pub fn is_cross_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
    host != Some(authority)
}

/// How often the same refused origin is logged.
const WARN_EVERY: Duration = Duration::from_secs(600);
/// Most origins remembered; a flood of made-up origins cannot grow it.
const MAX_REMEMBERED: usize = 256;

/// Remembers which refused origins were logged, so that each is logged
/// once per `WARN_EVERY` (10 minutes), not on every poll.
#[derive(Debug, Default)]
pub struct RefusedOrigins(Mutex<HashMap<String, Instant>>);

impl RefusedOrigins {
    /// True when `origin` should be logged now.
    pub fn first_in_a_while(&self, origin: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = seen.get(origin)
            && at.elapsed() < WARN_EVERY
        {
            return false;
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, at| at.elapsed() < WARN_EVERY);
            if seen.len() >= MAX_REMEMBERED {
                return false;
            }
        }
        seen.insert(origin.to_owned(), Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_origins_and_any_port() {
        let o = Origins::parse("https://app.example, http://localhost:*")
            .unwrap()
            .unwrap();
        assert!(o.allows("https://app.example"));
        assert!(!o.allows("https://app.example:8443"));
        assert!(!o.allows("https://app.example.evil"));
        assert!(o.allows("http://localhost:3000"));
        assert!(!o.allows("http://localhost"));
        assert!(!o.allows("http://localhost:"));
        assert!(!o.allows("http://localhost:3000.evil.example"));
        assert!(!o.allows("http://localhost.evil:3000"));
        assert!(!o.allows("https://localhost:3000"));
        assert!(Origins::parse("*").is_err());
        assert_eq!(Origins::parse(" , ").unwrap(), None);
    }

    #[test]
    fn cross_origin_is_another_authority() {
        assert!(!is_cross_origin(
            "http://127.0.0.1:3001",
            Some("127.0.0.1:3001")
        ));
        assert!(is_cross_origin(
            "http://127.0.0.1:3000",
            Some("127.0.0.1:3001")
        ));
        assert!(is_cross_origin("http://127.0.0.1:3000", None));
    }

    #[test]
    fn a_refused_origin_is_logged_once_in_a_while() {
        let r = RefusedOrigins::default();
        assert!(r.first_in_a_while("http://a"));
        assert!(!r.first_in_a_while("http://a"));
        assert!(r.first_in_a_while("http://b"));
        for i in 0..1000 {
            r.first_in_a_while(&format!("http://x{i}"));
        }
        assert!(r.0.lock().unwrap().len() <= MAX_REMEMBERED);
    }
}
