//! What the gateway keeps on disk: revocations, in SQLite ([`sqlite`]).

pub mod sqlite;

pub use sockgate_core::Revocations;
pub use sqlite::{OnDisk, SqliteStore};
