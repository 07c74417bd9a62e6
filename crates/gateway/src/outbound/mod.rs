//! What the gateway asks of other services over HTTP: the issuer's key set
//! ([`jwks`]) and the room authorization webhook ([`webhook`]).

pub mod jwks;
pub mod webhook;
