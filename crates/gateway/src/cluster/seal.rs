//! Announcements on the control channel are sealed with an HMAC.
//!
//! Anyone who can `PUBLISH` to Redis could otherwise kick any user or
//! persist a forged revocation on every node. A sealed announcement is
//! `{at}.{mac}.{json}`: `at` is when it was made (Unix milliseconds), `mac`
//! the hex HMAC-SHA256 of `{at}.{json}` under the cluster secret. A node
//! applies only announcements whose seal verifies and that are recent (a
//! recorded one cannot be replayed later).

use std::time::Duration;

use aws_lc_rs::hmac;

use sockgate_core::clock::unix_now_ms;

/// How old an announcement may be when it arrives. Nodes' clocks must agree
/// within this.
const MAX_AGE: Duration = Duration::from_secs(30);

/// The key announcements are sealed with.
pub struct Seal {
    key: hmac::Key,
}

impl Seal {
    /// From the cluster secret shared by every node.
    pub fn new(secret: &[u8]) -> Self {
        // A fixed label, so the same secret used elsewhere (the JWT secret,
        // when no cluster secret is set) yields an unrelated key.
        let derive = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let key = hmac::sign(&derive, b"sockgate cluster control v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
        }
    }

    /// `json` sealed for the control channel.
    pub fn seal(&self, json: &[u8]) -> Vec<u8> {
        self.seal_at(unix_now_ms(), json)
    }

    fn seal_at(&self, at: u64, json: &[u8]) -> Vec<u8> {
        let signed = [at.to_string().as_bytes(), b".", json].concat();
        let mac = hex(hmac::sign(&self.key, &signed).as_ref());
        [at.to_string().as_bytes(), b".", mac.as_bytes(), b".", json].concat()
    }

    /// The JSON of a sealed announcement whose seal verifies and that is
    /// recent; `None` for anything else.
    pub fn open<'a>(&self, sealed: &'a [u8]) -> Option<&'a [u8]> {
        self.open_within(sealed, MAX_AGE)
    }

    /// [`Seal::open`] for what may be kept longer: the history's messages,
    /// read back for a recovery within `max_age` of their sealing.
    pub fn open_within<'a>(&self, sealed: &'a [u8], max_age: Duration) -> Option<&'a [u8]> {
        let mut parts = sealed.splitn(3, |b| *b == b'.');
        let (at, mac, json) = (parts.next()?, parts.next()?, parts.next()?);
        let at_ms: u64 = std::str::from_utf8(at).ok()?.parse().ok()?;
        let mac = unhex(mac)?;
        let signed = [at, b".", json].concat();
        hmac::verify(&self.key, &signed, &mac).ok()?;
        let age = unix_now_ms().abs_diff(at_ms);
        (age <= max_age.as_millis() as u64).then_some(json)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[u8] = br#"{"kind":"end_user","user_id":"alice"}"#;

    #[test]
    fn a_sealed_announcement_opens_with_the_same_secret_only() {
        let seal = Seal::new(b"a cluster secret of at least 32 bytes!");
        let sealed = seal.seal(JSON);
        assert_eq!(seal.open(&sealed), Some(JSON));
        let other = Seal::new(b"another cluster secret of 32 bytes!!!");
        assert_eq!(other.open(&sealed), None);
    }

    #[test]
    fn forged_tampered_and_replayed_announcements_are_refused() {
        let seal = Seal::new(b"a cluster secret of at least 32 bytes!");
        // What a Redis writer could publish without the secret.
        assert_eq!(seal.open(JSON), None);
        assert_eq!(seal.open(b"1.00.{}"), None);
        let mut tampered = seal.seal(JSON);
        let last = tampered.len() - 3;
        tampered[last] = b'b';
        assert_eq!(seal.open(&tampered), None);
        let old = seal.seal_at(unix_now_ms() - 60_000, JSON);
        assert_eq!(seal.open(&old), None, "a replay a minute later");
    }
}
