#![doc = include_str!("../README.md")]

mod config;
mod error;
mod store;

pub use config::MemoryConfig;
pub use store::{MemoryStats, MemoryStore};
