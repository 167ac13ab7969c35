//! The [`Worker`] that claims due notices from an outbox, hands them to every sink and settles
//! each attempt; its [`WorkerConfig`] (leases, batches, retries with backoff).

mod config;
mod run;

pub use config::WorkerConfig;
pub use run::{Counts, Worker, WorkerBuilder};
