#![doc = include_str!("../README.md")]

pub mod conformance;
mod counting;
pub mod fixtures;
mod model;
#[cfg(feature = "redis")]
pub mod redis;
pub mod strategies;

pub use counting::CountingStore;
pub use model::ModelStore;
