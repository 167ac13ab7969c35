#![doc = include_str!("../README.md")]

mod config;
mod error;
mod key_cache;
mod keys;
mod store;

pub use config::MemoryConfig;
pub use key_cache::{CachedKeyStore, KeyCacheConfig};
pub use keys::MemoryKeyStore;
pub use store::{MemoryStats, MemoryStore};
