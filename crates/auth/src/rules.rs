//! The claim rules every token is checked against, whatever key signed it.

use jsonwebtoken::{Algorithm, Validation};

/// Claim checks shared by every key. Built once from configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Accepted `iss` values; `None` skips the check.
    pub issuer: Option<Vec<String>>,
    /// Accepted `aud` values; `None` skips the check.
    pub audience: Option<Vec<String>>,
    /// Clock leeway for `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Refuse tokens without `exp`.
    pub require_exp: bool,
    /// The claim naming the user (`sub` unless configured otherwise).
    pub user_claim: String,
    /// Tokens longer than this are refused before any parsing.
    pub max_token_bytes: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            leeway_secs: 0,
            require_exp: true,
            user_claim: "sub".to_owned(),
            max_token_bytes: 8 * 1024,
        }
    }
}

impl Rules {
    /// A `jsonwebtoken` validation pinned to `algorithms`.
    ///
    /// Built once per key, never per token. Issuer and audience become
    /// required claims when configured: `jsonwebtoken` alone lets a token
    /// without `iss` through even when an issuer is set.
    pub(crate) fn validation(&self, algorithms: &[Algorithm]) -> Validation {
        let mut v = Validation::new(algorithms[0]);
        v.algorithms = algorithms.to_vec();
        v.leeway = self.leeway_secs;
        v.validate_nbf = true;
        v.validate_exp = true;
        let mut required = Vec::new();
        if self.require_exp {
            required.push("exp");
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(iss);
            required.push("iss");
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(aud);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }
}
