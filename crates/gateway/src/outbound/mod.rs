//! What the gateway asks of other services over HTTP: the issuer's key set
//! ([`jwks`]), the room authorization webhook ([`webhook`]) and the app's
//! backend ([`app`]), all through one [`client`].

pub mod app;
pub mod client;
pub mod jwks;
pub mod lifecycle;
pub mod webhook;
