#![doc = include_str!("../README.md")]

mod cluster;
mod combine;
mod config;
mod error;
mod events;
mod inbox;
mod keys;
mod lua;
mod notices;
mod outbox;
mod script;
mod store;
mod subject;

pub use config::{RedisConfig, TimeSource, redact};
pub use events::RedisEventLog;
pub use inbox::RedisInbox;
pub use keys::RedisKeyStore;
pub use outbox::RedisOutbox;
pub use store::RedisStore;

/// The Redis client this store is built on, for its configuration types
/// ([`ReconnectPolicy`](fred::types::config::ReconnectPolicy)) and the
/// [`pool`](RedisStore::pool).
pub use fred;
