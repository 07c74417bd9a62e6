//! What the gateway keeps on disk: revocations, in SQLite ([`sqlite`]).

pub mod live;
pub mod sqlite;

pub use sockgate_core::Revocations;
pub use sqlite::{OnDisk, SqliteStore};
