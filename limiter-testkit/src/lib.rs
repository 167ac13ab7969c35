#![doc = include_str!("../README.md")]

pub mod conformance;
mod counting;
mod counting_keys;
mod event_log;
pub mod fixtures;
mod key_model;
mod model;
#[cfg(feature = "redis")]
pub mod redis;
pub mod scenarios;
pub mod strategies;

pub use counting::CountingStore;
pub use counting_keys::CountingKeyStore;
pub use event_log::ReferenceEventLog;
pub use key_model::ModelKeyStore;
pub use model::ModelStore;
