//! `auth:ticket` → `{ ok: true, ticket, expiresIn }`.

use serde::Serialize;

/// `auth:ticket`: no payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket;

/// The answer to `auth:ticket`: `{ ok: true, ticket, expiresIn }`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TicketAck<'a> {
    /// Always `true`: failures are `{ ok: false, code, message }`.
    pub ok: bool,
    /// The single-use ticket for `POST /auth/refresh`.
    pub ticket: &'a str,
    /// Seconds the ticket stays valid.
    pub expires_in: u64,
}
