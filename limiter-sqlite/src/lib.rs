#![doc = include_str!("../README.md")]

mod blocking;
mod config;
mod error;
mod events;
mod inbox;
mod keys;
mod outbox;
mod schema;
mod store;
mod worker;

pub use config::SqliteConfig;
pub use events::SqliteEventLog;
pub use inbox::SqliteInbox;
pub use keys::SqliteKeyStore;
pub use outbox::SqliteOutbox;
pub use store::SqliteStore;

/// The schema version this version of the crate writes (`PRAGMA user_version`). Files at a
/// lower version are migrated when opened; files at a higher one are refused.
pub const SCHEMA_VERSION: usize = schema::LATEST;
