#![doc = include_str!("../README.md")]

mod config;
mod denials;
mod entry;
mod error;
mod events;
mod fingerprint;
mod inbox;
mod key_cache;
mod keys;
mod outbox;
mod shard;
mod store;
mod table;

pub use config::{AtCapacity, MemoryConfig};
pub use denials::{DEFAULT_MAX_ENTRIES, DEFAULT_MAX_HOLD, LocalDenials};
pub use events::MemoryEventLog;
pub use inbox::MemoryInbox;
pub use key_cache::{CachedKeyStore, KeyCacheConfig};
pub use keys::MemoryKeyStore;
pub use outbox::MemoryOutbox;
pub use store::{MemoryStats, MemoryStore};
