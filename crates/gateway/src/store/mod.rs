//! What the gateway keeps on disk, in SQLite: revocations ([`sqlite`]),
//! and a single node's recovery history ([`history`]).

pub mod history;
pub mod live;
pub mod sqlite;

pub use sockgate_core::Revocations;
pub use sqlite::{OnDisk, SqliteStore};
